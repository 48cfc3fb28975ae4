//! Community ID v1 flow hashes (<https://github.com/corelight/community-id-spec>).
//!
//! Owns turning a session's 5-tuple into the `1:<base64 sha1>` string that Zeek, Suricata and
//! others log, so sessions.csv rows can be joined with their output. Promises: the spec's
//! endpoint ordering, the ICMP/ICMPv6 type-to-port mapping and its one-way rule, a seed chosen
//! by the caller, and no heap allocation (the result is a fixed-size [`CommunityId`]).

use crate::decode::icmp_counterpart;
use crate::session::SessionRecord;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// "1:" followed by the 28-character base64 of a 20-byte SHA-1 digest.
const ID_LEN: usize = 2 + 28;

/// A Community ID v1 string (`1:` + base64), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunityId {
    text: [u8; ID_LEN],
}

impl CommunityId {
    pub fn as_str(&self) -> &str {
        // Only ASCII ("1:" and the base64 alphabet) is ever written into `text`.
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    /// The same text as bytes, without the UTF-8 check (for the row writer).
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

/// The flow tuple the spec hashes, in the direction the session was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, ...).
    pub ip_proto: u8,
    /// TCP/UDP/SCTP source port; for ICMP and ICMPv6 the message type.
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port; for ICMP and ICMPv6 the message code.
    pub dst_port: u16,
}

impl FlowTuple {
    /// The tuple of a finished session (originator as source).
    pub fn from_session(record: &SessionRecord) -> Self {
        FlowTuple {
            src: record.orig.addr,
            dst: record.resp.addr,
            ip_proto: record.ip_proto,
            src_port: record.orig.port,
            dst_port: record.resp.port,
        }
    }
}

/// Computes Community ID v1 with a fixed seed (0 unless the user chose another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommunityIdHasher {
    seed: u16,
}

impl CommunityIdHasher {
    pub fn new(seed: u16) -> Self {
        CommunityIdHasher { seed }
    }

    pub fn seed(&self) -> u16 {
        self.seed
    }

    pub fn session(&self, record: &SessionRecord) -> CommunityId {
        self.hash(&FlowTuple::from_session(record))
    }

    pub fn hash(&self, flow: &FlowTuple) -> CommunityId {
        let (mut src_port, mut dst_port) = (flow.src_port, flow.dst_port);
        let mut one_way = false;
        let has_ports = match flow.ip_proto {
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => true,
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                // The spec hashes the type as source port and, for request/reply pairs, the
                // counterpart type as destination port (so both halves hash alike); other
                // messages keep their code and are never reordered.
                let counterpart = u8::try_from(src_port).ok().and_then(|icmp_type| {
                    if flow.ip_proto == IPPROTO_ICMP {
                        icmp_counterpart(false, icmp_type)
                    } else {
                        icmp_counterpart(true, icmp_type)
                    }
                });
                match counterpart {
                    Some(reply) => dst_port = u16::from(reply),
                    None => one_way = true,
                }
                true
            }
            _ => false,
        };

        let (src, dst) = match (flow.src, flow.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                (AddrBytes::v4(s.octets()), AddrBytes::v4(d.octets()))
            }
            // Mixed families cannot come from one IP packet; hash both as IPv6 (v4-mapped).
            (s, d) => (AddrBytes::v6(to_v6(s)), AddrBytes::v6(to_v6(d))),
        };
        let (mut src, mut dst) = (src, dst);
        let ordered = src.as_slice() < dst.as_slice()
            || (src.as_slice() == dst.as_slice() && src_port < dst_port);
        if !one_way && !ordered {
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut src_port, &mut dst_port);
        }

        let mut sha = Sha1::new();
        sha.update(self.seed.to_be_bytes());
        sha.update(src.as_slice());
        sha.update(dst.as_slice());
        sha.update([flow.ip_proto, 0]);
        if has_ports {
            sha.update(src_port.to_be_bytes());
            sha.update(dst_port.to_be_bytes());
        }
        let digest = sha.finalize();

        let mut text = [0u8; ID_LEN];
        text[0] = b'1';
        text[1] = b':';
        // 20 digest bytes always encode to exactly 28 characters.
        let _ = STANDARD.encode_slice(digest.as_slice(), &mut text[2..]);
        CommunityId { text }
    }
}

/// An address as the bytes the spec hashes (network order, 4 or 16 bytes).
#[derive(Clone, Copy)]
struct AddrBytes {
    bytes: [u8; 16],
    len: usize,
}

impl AddrBytes {
    fn v4(octets: [u8; 4]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&octets);
        AddrBytes { bytes, len: 4 }
    }
    fn v6(addr: Ipv6Addr) -> Self {
        AddrBytes {
            bytes: addr.octets(),
            len: 16,
        }
    }
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seed: u16, src: &str, sp: u16, dst: &str, dp: u16, proto: u8) -> String {
        let flow = FlowTuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_proto: proto,
            src_port: sp,
            dst_port: dp,
        };
        CommunityIdHasher::new(seed)
            .hash(&flow)
            .as_str()
            .to_string()
    }

    // Vectors from the spec's reference tests as Zeek's btest baselines carry them
    // (bifs.community_id.v1, bifs.community_id.run-pcaps, conn community-id-logging).
    #[test]
    fn spec_vectors_seed_0_and_1() {
        let a6 = "fe80:1:203:405:607:809:a0b:c0d";
        let b6 = "fe80:1011:1213:1415:1617:1819:1a1b:1c1d";
        assert_eq!(
            id(0, "1.2.3.4", 1122, "5.6.7.8", 3344, 6),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            id(0, "1.2.3.4", 1122, "5.6.7.8", 3344, 17),
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="
        );
        assert_eq!(
            id(0, "1.2.3.4", 8, "5.6.7.8", 0, 1),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
        assert_eq!(
            id(0, a6, 128, b6, 129, 58),
            "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="
        );
        assert_eq!(
            id(1, "1.2.3.4", 1122, "5.6.7.8", 3344, 6),
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="
        );
        assert_eq!(
            id(1, "1.2.3.4", 1122, "5.6.7.8", 3344, 17),
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw="
        );
        assert_eq!(
            id(1, "1.2.3.4", 8, "5.6.7.8", 0, 1),
            "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="
        );
        assert_eq!(
            id(1, a6, 128, b6, 129, 58),
            "1:IO27GQzPuCtNnwFvjWALMHu5tJE="
        );
        // A protocol without ports: only addresses and protocol are hashed.
        assert_eq!(
            id(0, "1.2.3.4", 0, "5.6.7.8", 0, 10),
            "1:7bYuQ7nyGBIQn7uDcQ5WraAnhWI="
        );
        assert_eq!(id(1, a6, 0, b6, 0, 10), "1:rcMO2BlHXpMNFXyyWqSDUQCBRBc=");
    }

    #[test]
    fn real_capture_vectors() {
        let v = |s, sp, d, dp, p| id(0, s, sp, d, dp, p);
        assert_eq!(
            v("141.142.228.5", 59856, "192.150.187.43", 80, 6),
            "1:yvyB8h+3dnggTZW0UEITWCst97w="
        );
        assert_eq!(
            v("128.232.110.120", 34855, "66.35.250.204", 80, 6),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            v("192.168.1.52", 54585, "8.8.8.8", 53, 17),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
        assert_eq!(
            v(
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                63943,
                "2607:f8b0:400c:c03::1a",
                25,
                6
            ),
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="
        );
        assert_eq!(
            v("192.168.170.8", 0, "192.168.170.56", 0, 132),
            "1:U5cVwrVgLshgANPmc8hKzEcqp1M="
        );
        assert_eq!(
            v("192.168.0.89", 8, "192.168.0.1", 0, 1),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
    }

    #[test]
    fn icmpv6_vectors_one_way_and_pairs() {
        let v = |s, sp, d, dp| id(0, s, sp, d, dp, 58);
        let host = "3ffe:507:0:1:200:86ff:fe05:80da";
        // Destination unreachable (type 1, code 4) and time exceeded (3/0): one-way.
        assert_eq!(
            v("3ffe:501:410:0:2c0:dfff:fe47:33e", 1, host, 4),
            "1:hLZd0XGWojozrvxqE0dWB1iM6R0="
        );
        assert_eq!(
            v(host, 1, "3ffe:501:4819::42", 4),
            "1:jwuBy9UWZK1KUFqJV5cHdVpfrlY="
        );
        assert_eq!(
            v("3ffe:501:0:1802:260:97ff:feb6:7ff0", 3, host, 0),
            "1:bnQKq8A2r//dWnkRW2EYcMhShjc="
        );
        assert_eq!(
            v("3ffe:501:1800:2345::2", 3, host, 0),
            "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="
        );
        assert_eq!(
            v("3ffe:507:0:1:260:97ff:fe07:69ea", 3, host, 0),
            "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w="
        );
        // Echo, neighbour and router discovery pairs.
        assert_eq!(
            v(host, 128, "3ffe:501:0:1001::2", 129),
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="
        );
        assert_eq!(
            v(host, 128, "3ffe:507:0:1:260:97ff:fe07:69ea", 129),
            "1:GpbEQrKqfWtsfsFiqg8fufoZe5Y="
        );
        assert_eq!(
            v(host, 135, "3ffe:507:0:1:260:97ff:fe07:69ea", 136),
            "1:ORxAZfN3ld7Sv73/HQTNnvgxbpY="
        );
        assert_eq!(
            v(host, 135, "ff02::1:ff07:69ea", 136),
            "1:MEixa66kuz0OMvlQqnAIzP3n2xg="
        );
        assert_eq!(
            v("3ffe:507:0:1:260:97ff:fe07:69ea", 135, host, 136),
            "1:BtEUCMYecYjJ7spEkVZDiCFaMTY="
        );
        assert_eq!(
            v("fe80::200:86ff:fe05:80da", 133, "ff02::2", 134),
            "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="
        );
        assert_eq!(
            v(
                "fe80::200:86ff:fe05:80da",
                135,
                "fe80::260:97ff:fe07:69ea",
                136
            ),
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="
        );
        assert_eq!(
            v("fe80::260:97ff:fe07:69ea", 134, "ff02::1", 133),
            "1:pkvHqCL88/tg1k4cPigmZXUtL00="
        );
        assert_eq!(
            v(
                "fe80::260:97ff:fe07:69ea",
                135,
                "fe80::200:86ff:fe05:80da",
                136
            ),
            "1:zavyT/cezQr1fmImYCwYnMXbgck="
        );
    }

    #[test]
    fn direction_does_not_matter_except_for_one_way_icmp() {
        assert_eq!(
            id(0, "5.6.7.8", 3344, "1.2.3.4", 1122, 6),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        // An echo reply seen alone (type 0) hashes like its request.
        assert_eq!(
            id(0, "5.6.7.8", 0, "1.2.3.4", 8, 1),
            "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
        );
        // A session whose resp port holds the ICMP code (0) rather than the counterpart type
        // still hashes as the spec's echo pair.
        let a6 = "fe80:1:203:405:607:809:a0b:c0d";
        let b6 = "fe80:1011:1213:1415:1617:1819:1a1b:1c1d";
        assert_eq!(id(0, a6, 128, b6, 0, 58), "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=");
        // One-way messages keep their direction.
        assert_ne!(
            id(0, "1.2.3.4", 3, "5.6.7.8", 1, 1),
            id(0, "5.6.7.8", 3, "1.2.3.4", 1, 1)
        );
    }

    #[test]
    fn output_shape() {
        let s = id(7, "10.0.0.1", 1, "10.0.0.2", 2, 250);
        assert_eq!(s.len(), 30);
        assert!(s.starts_with("1:") && s.ends_with('='));
    }
}
