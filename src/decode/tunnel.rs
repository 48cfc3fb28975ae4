//! Encapsulations inside IP: GRE, VXLAN, Geneve, Teredo, AYIYA, GTP-U, IP-in-IP.
// STUB: the decode helper replaces this file.
