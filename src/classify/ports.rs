//! The port-number table: IANA's service registry (compiled in from `data/iana-ports.tsv`)
//! with the service names sessionscope reports, which follow Zeek's where Zeek has a name for
//! the same protocol (see [`ZEEK_NAMES`]).
//!
//! Promise: the data is parsed once, on first use, into per-transport arrays sorted by port;
//! each lookup is a binary search that allocates nothing and returns `&'static str`s borrowed
//! from the compiled-in text.

use crate::session::Proto;
use std::sync::OnceLock;

/// The registry's port assignments that carry a service name: `proto<TAB>port<TAB>name` lines
/// after a `#` header saying where they came from (regenerate with `scripts/gen-iana-ports.py`).
pub(crate) const IANA_PORTS_TSV: &str = include_str!("../../data/iana-ports.tsv");

/// IANA name -> the name reported for it over TCP and over UDP: Zeek's service name for the
/// same protocol (Zeek names a service after the analyser that recognised it, which is why some
/// differ by transport, e.g. `krb_tcp`/`krb`). Two rows (`stun-behavior`, `stun-behaviors`) undo
/// the data source's habit of keeping the last of several names IANA lists for one port.
/// IANA names not listed here are reported unchanged.
pub const ZEEK_NAMES: &[(&str, &str, &str)] = &[
    // (IANA name, name on TCP, name on UDP)
    ("domain", "dns", "dns"),
    ("www-http", "http", "http"),
    ("http-alt", "http", "http"),
    // HTTPS over UDP is HTTP/3, which runs on QUIC.
    ("https", "ssl", "quic"),
    ("bootps", "dhcp", "dhcp"),
    ("bootpc", "dhcp", "dhcp"),
    ("microsoft-ds", "smb", "smb"),
    ("kerberos", "krb_tcp", "krb"),
    ("ms-wbt-server", "rdp", "rdpeudp"),
    ("ldap", "ldap_tcp", "ldap_udp"),
    // Active Directory's global catalog speaks LDAP.
    ("msft-gc", "ldap_tcp", "ldap_udp"),
    ("mbap", "modbus", "modbus"),
    ("dnp", "dnp3_tcp", "dnp3_udp"),
    ("xmpp-client", "xmpp", "xmpp"),
    ("xmpp-server", "xmpp", "xmpp"),
    ("ircu", "irc", "irc"),
    ("auth", "ident", "ident"),
    ("snmptrap", "snmp", "snmp"),
    ("radius-acct", "radius", "radius"),
    ("gtp-user", "gtpv1", "gtpv1"),
    ("gtp-control", "gtpv1", "gtpv1"),
    ("login", "rlogin", "rlogin"),
    ("shell", "rsh", "rsh"),
    ("epmap", "dce_rpc", "dce_rpc"),
    ("stun-behavior", "stun", "stun"),
    ("stun-behaviors", "stuns", "stuns"),
];

/// One assignment in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortEntry {
    pub port: u16,
    /// The registry's name.
    pub iana: &'static str,
    /// The name sessionscope reports (after [`ZEEK_NAMES`]).
    pub service: &'static str,
}

/// The assignments sessions can use, per transport, each sorted by port with one entry a port.
#[derive(Debug, Default)]
pub(crate) struct PortTable {
    pub tcp: Vec<PortEntry>,
    pub udp: Vec<PortEntry>,
}

/// A transport the registry assigns ports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistryProto {
    Tcp,
    Udp,
    Sctp,
    Dccp,
}

/// One data line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub proto: RegistryProto,
    pub port: u16,
    pub name: &'static str,
}

/// Why a data line did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LineError {
    #[error("expected 3 tab-separated fields")]
    FieldCount,
    #[error("unknown transport protocol {0:?}")]
    Proto(String),
    #[error("port {0:?} is not a number in 0..=65535")]
    Port(String),
    #[error("service name {0:?} is empty or has spaces")]
    Name(String),
}

/// Parses one line of the data file: `Ok(None)` for a comment or blank line.
pub(crate) fn parse_line(line: &'static str) -> Result<Option<Assignment>, LineError> {
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split('\t');
    let (Some(proto), Some(port), Some(name), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(LineError::FieldCount);
    };
    let proto = match proto {
        "tcp" => RegistryProto::Tcp,
        "udp" => RegistryProto::Udp,
        "sctp" => RegistryProto::Sctp,
        "dccp" => RegistryProto::Dccp,
        other => return Err(LineError::Proto(other.to_owned())),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| LineError::Port(port.to_owned()))?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LineError::Name(name.to_owned()));
    }
    Ok(Some(Assignment { proto, port, name }))
}

/// The name reported for an IANA name on a transport.
fn reported_name(proto: RegistryProto, iana: &'static str) -> &'static str {
    ZEEK_NAMES
        .iter()
        .find(|(name, _, _)| *name == iana)
        .map_or(iana, |&(_, on_tcp, on_udp)| match proto {
            RegistryProto::Udp => on_udp,
            _ => on_tcp,
        })
}

/// Builds the table from data text. Lines that do not parse are skipped (the tests check
/// that the shipped file has none); a repeated port keeps its first line.
pub(crate) fn build_table(text: &'static str) -> PortTable {
    let mut table = PortTable::default();
    for assignment in text
        .lines()
        .filter_map(|line| parse_line(line).ok().flatten())
    {
        let entries = match assignment.proto {
            RegistryProto::Tcp => &mut table.tcp,
            RegistryProto::Udp => &mut table.udp,
            RegistryProto::Sctp | RegistryProto::Dccp => continue,
        };
        entries.push(PortEntry {
            port: assignment.port,
            iana: assignment.name,
            service: reported_name(assignment.proto, assignment.name),
        });
    }
    for entries in [&mut table.tcp, &mut table.udp] {
        // Stable sort, so dedup keeps the first line for a port.
        entries.sort_by_key(|entry| entry.port);
        entries.dedup_by_key(|entry| entry.port);
    }
    table
}

/// The compiled-in table, parsed on first use.
pub(crate) fn table() -> &'static PortTable {
    static TABLE: OnceLock<PortTable> = OnceLock::new();
    TABLE.get_or_init(|| build_table(IANA_PORTS_TSV))
}

/// The table entry for `port` on `proto`; `None` for ICMP and other protocols.
fn entry(proto: Proto, port: u16) -> Option<&'static PortEntry> {
    let entries = match proto {
        Proto::Tcp => &table().tcp,
        Proto::Udp => &table().udp,
        Proto::Icmp | Proto::Other(_) => return None,
    };
    let index = entries
        .binary_search_by_key(&port, |entry| entry.port)
        .ok()?;
    entries.get(index)
}

/// The service name sessionscope reports for `port` on `proto` (IANA's, or Zeek's name for
/// the same protocol per [`ZEEK_NAMES`]); `None` if the port has no named assignment or the
/// protocol has no ports (ICMP, others).
pub fn service_for_port(proto: Proto, port: u16) -> Option<&'static str> {
    entry(proto, port).map(|entry| entry.service)
}

/// The name IANA's registry gives `port` on `proto`, unchanged.
pub fn iana_name_for_port(proto: Proto, port: u16) -> Option<&'static str> {
    entry(proto, port).map(|entry| entry.iana)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_data_file_parses() {
        let mut assignments = 0;
        for (number, line) in IANA_PORTS_TSV.lines().enumerate() {
            match parse_line(line) {
                Ok(Some(_)) => assignments += 1,
                Ok(None) => assert!(line.starts_with('#'), "line {}: blank", number + 1),
                Err(err) => panic!("line {}: {err}: {line:?}", number + 1),
            }
        }
        assert!(assignments > 5000, "only {assignments} assignments");
    }

    #[test]
    fn data_file_has_a_header_and_no_repeated_assignment() {
        assert!(IANA_PORTS_TSV.starts_with("# IANA Service Name"));
        let mut seen = std::collections::HashSet::new();
        for assignment in IANA_PORTS_TSV
            .lines()
            .filter_map(|l| parse_line(l).unwrap())
        {
            let key = (assignment.proto as u8, assignment.port);
            assert!(seen.insert(key), "repeated {assignment:?}");
        }
    }

    #[test]
    fn table_has_a_plausible_size() {
        // IANA assigns names to roughly 5,900 TCP and 5,500 UDP ports.
        let table = table();
        assert!(table.tcp.len() > 5000, "tcp: {}", table.tcp.len());
        assert!(table.udp.len() > 5000, "udp: {}", table.udp.len());
        assert!(table.tcp.len() + table.udp.len() < 65536 * 2);
    }

    #[test]
    fn table_is_sorted_by_port_without_repeats() {
        for entries in [&table().tcp, &table().udp] {
            assert!(entries.windows(2).all(|w| w[0].port < w[1].port));
        }
    }

    #[test]
    fn registry_names_of_well_known_ports() {
        // Expected values: the registry's assignments (RFC 4251, 1035, 5905, 6762, 7348, 8926).
        assert_eq!(iana_name_for_port(Proto::Tcp, 22), Some("ssh"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 443), Some("https"));
        assert_eq!(iana_name_for_port(Proto::Udp, 53), Some("domain"));
        assert_eq!(iana_name_for_port(Proto::Udp, 123), Some("ntp"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 3389), Some("ms-wbt-server"));
        assert_eq!(iana_name_for_port(Proto::Udp, 5353), Some("mdns"));
        assert_eq!(iana_name_for_port(Proto::Udp, 4789), Some("vxlan"));
        assert_eq!(iana_name_for_port(Proto::Udp, 6081), Some("geneve"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 6379), Some("redis"));
        // Range assignments: X11 is 6000-6063, ircu 6665-6669.
        assert_eq!(iana_name_for_port(Proto::Tcp, 6000), Some("x11"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 6063), Some("x11"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 6064), Some("ndl-ahp-svc"));
        assert_eq!(iana_name_for_port(Proto::Tcp, 6667), Some("ircu"));
    }

    #[test]
    fn well_known_ports_get_zeek_names() {
        assert_eq!(service_for_port(Proto::Tcp, 22), Some("ssh"));
        assert_eq!(service_for_port(Proto::Tcp, 443), Some("ssl"));
        assert_eq!(service_for_port(Proto::Udp, 443), Some("quic"));
        assert_eq!(service_for_port(Proto::Tcp, 80), Some("http"));
        assert_eq!(service_for_port(Proto::Tcp, 8080), Some("http"));
        assert_eq!(service_for_port(Proto::Udp, 53), Some("dns"));
        assert_eq!(service_for_port(Proto::Tcp, 53), Some("dns"));
        assert_eq!(service_for_port(Proto::Udp, 67), Some("dhcp"));
        assert_eq!(service_for_port(Proto::Udp, 68), Some("dhcp"));
        assert_eq!(service_for_port(Proto::Udp, 123), Some("ntp"));
        assert_eq!(service_for_port(Proto::Tcp, 3389), Some("rdp"));
        assert_eq!(service_for_port(Proto::Udp, 3389), Some("rdpeudp"));
        assert_eq!(service_for_port(Proto::Tcp, 445), Some("smb"));
        assert_eq!(service_for_port(Proto::Tcp, 88), Some("krb_tcp"));
        assert_eq!(service_for_port(Proto::Udp, 88), Some("krb"));
        assert_eq!(service_for_port(Proto::Tcp, 389), Some("ldap_tcp"));
        assert_eq!(service_for_port(Proto::Tcp, 502), Some("modbus"));
        assert_eq!(service_for_port(Proto::Tcp, 20000), Some("dnp3_tcp"));
        assert_eq!(service_for_port(Proto::Tcp, 5222), Some("xmpp"));
        assert_eq!(service_for_port(Proto::Tcp, 6667), Some("irc"));
        assert_eq!(service_for_port(Proto::Udp, 2152), Some("gtpv1"));
        assert_eq!(service_for_port(Proto::Tcp, 135), Some("dce_rpc"));
        // Same name in both vocabularies.
        assert_eq!(service_for_port(Proto::Tcp, 25), Some("smtp"));
        assert_eq!(service_for_port(Proto::Tcp, 21), Some("ftp"));
        assert_eq!(service_for_port(Proto::Tcp, 20), Some("ftp-data"));
        assert_eq!(service_for_port(Proto::Tcp, 110), Some("pop3"));
        assert_eq!(service_for_port(Proto::Tcp, 143), Some("imap"));
        assert_eq!(service_for_port(Proto::Udp, 161), Some("snmp"));
        assert_eq!(service_for_port(Proto::Udp, 514), Some("syslog"));
        assert_eq!(service_for_port(Proto::Udp, 5060), Some("sip"));
        assert_eq!(service_for_port(Proto::Tcp, 3306), Some("mysql"));
        assert_eq!(service_for_port(Proto::Udp, 1812), Some("radius"));
        assert_eq!(service_for_port(Proto::Tcp, 1883), Some("mqtt"));
        assert_eq!(service_for_port(Proto::Udp, 3544), Some("teredo"));
        // Zeek's DNS analyser also reads mDNS and NetBIOS names; they keep their own names.
        assert_eq!(service_for_port(Proto::Udp, 5353), Some("mdns"));
        assert_eq!(service_for_port(Proto::Udp, 137), Some("netbios-ns"));
    }

    #[test]
    fn unassigned_ports_and_portless_protocols_have_no_service() {
        assert_eq!(service_for_port(Proto::Tcp, 65000), None);
        assert_eq!(service_for_port(Proto::Tcp, 0), None);
        assert_eq!(service_for_port(Proto::Udp, 65535), None);
        // vxlan is registered on UDP only.
        assert_eq!(service_for_port(Proto::Tcp, 4789), None);
        assert_eq!(service_for_port(Proto::Icmp, 8), None);
        assert_eq!(service_for_port(Proto::Icmp, 22), None);
        // SCTP (132) has registered ports, but sessions of other protocols carry none.
        assert_eq!(service_for_port(Proto::Other(132), 22), None);
    }

    #[test]
    fn every_alias_names_a_registry_entry() {
        // A regenerated data file that renamed one of these would silently lose the alias.
        for (iana, _, _) in ZEEK_NAMES {
            let found = table()
                .tcp
                .iter()
                .chain(&table().udp)
                .any(|e| e.iana == *iana);
            assert!(found, "{iana} is not in the data file");
        }
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert_eq!(parse_line("# comment"), Ok(None));
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("tcp\t22"), Err(LineError::FieldCount));
        assert_eq!(
            parse_line("tcp\t22\tssh\textra"),
            Err(LineError::FieldCount)
        );
        assert!(matches!(
            parse_line("icmp\t8\tping"),
            Err(LineError::Proto(_))
        ));
        assert!(matches!(
            parse_line("tcp\t65536\tx"),
            Err(LineError::Port(_))
        ));
        assert!(matches!(parse_line("tcp\t-1\tx"), Err(LineError::Port(_))));
        assert!(matches!(parse_line("tcp\t22\t"), Err(LineError::Name(_))));
        assert!(matches!(
            parse_line("tcp\t22\ts h"),
            Err(LineError::Name(_))
        ));
        let table = build_table("tcp\t22\tssh\nbad line\ntcp\t22\tother\nudp\t53\tdomain\n");
        assert_eq!(table.tcp.len(), 1);
        assert_eq!(table.tcp[0].iana, "ssh");
        assert_eq!(table.udp[0].service, "dns");
    }
}
