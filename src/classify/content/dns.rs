//! DNS over UDP and TCP, and the protocols sharing its message format: mDNS (UDP 5353), LLMNR
//! (UDP 5355) and NetBIOS name service (UDP 137, RFC 1002). Messages are parsed with
//! `simple-dns` (a maintained, dependency-light, borrowing parser); NetBIOS names, which are
//! encoded inside a DNS-style label, are decoded here.
//!
//! Owns the first question (name, type), the first response's rcode and up to
//! [`MAX_DNS_ANSWERS`] answers. Promise: a message whose section counts cannot fit in its
//! length is rejected before parsing (the parser reserves room per announced record), so memory
//! follows the packet size; no panic on any bytes.

use super::{ContentInfo, Detect, MAX_DNS_ANSWERS, Ports, Progress, Protocol, TEXT_CAP, text};
use simple_dns::rdata::RData;
use simple_dns::{Packet, QTYPE, RCODE};

const HEADER_LEN: usize = 12;
/// Smallest question: root name (1), type (2), class (2).
const MIN_QUESTION: usize = 5;
/// Smallest resource record: root name (1), type, class, TTL, rdata length (10).
const MIN_RECORD: usize = 11;
/// Datagrams of a session with queries but no response yet before giving up on a response.
const QUERIES_BEFORE_GIVING_UP: u8 = 4;

/// Header fields read without the parser.
struct Header {
    is_response: bool,
    opcode: u8,
    questions: usize,
    records: usize,
}

fn header(msg: &[u8]) -> Option<Header> {
    let h = msg.get(..HEADER_LEN)?;
    let count = |i: usize| usize::from(u16::from_be_bytes([h[i], h[i + 1]]));
    Some(Header {
        is_response: h[2] & 0x80 != 0,
        opcode: (h[2] >> 3) & 0x0f,
        questions: count(4),
        records: count(6) + count(8) + count(10),
    })
}

/// The header's counts fit in the message, so the parser's allocations follow its length.
fn counts_fit(msg: &[u8], h: &Header) -> bool {
    let room = msg.len().saturating_sub(HEADER_LEN);
    h.questions * MIN_QUESTION + h.records * MIN_RECORD <= room
}

/// A plausible DNS message: a query with exactly one question, or a response with at least one
/// question or answer, standard opcodes, counts that fit, and a successful parse.
fn plausible(msg: &[u8]) -> bool {
    let Some(h) = header(msg) else {
        return false;
    };
    let shape_ok = if h.is_response {
        h.questions <= 1 && (h.questions + h.records) > 0
    } else {
        h.questions == 1
    };
    shape_ok && h.opcode <= 5 && counts_fit(msg, &h) && Packet::parse(msg).is_ok()
}

/// UDP: DNS, mDNS or LLMNR by port (either side), DNS on other ports only for a plausible
/// message.
pub(super) fn detect_datagram(payload: &[u8], ports: Ports) -> Option<Protocol> {
    let protocol = if ports.either(5353) {
        Protocol::Mdns
    } else if ports.either(5355) {
        Protocol::Llmnr
    } else {
        Protocol::Dns
    };
    let known_port = ports.either(53) || protocol != Protocol::Dns;
    let h = header(payload)?;
    if known_port {
        (counts_fit(payload, &h) && h.opcode <= 5).then_some(protocol)
    } else {
        plausible(payload).then_some(protocol)
    }
}

/// TCP: a 2-byte length that matches a plausible DNS message.
pub(super) fn detect_stream(view: &[u8], _from_orig: bool, ports: Ports) -> Detect {
    let Some([hi, lo]) = view.get(..2) else {
        return Detect::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len < HEADER_LEN {
        return Detect::No;
    }
    match view.get(2..2 + len) {
        None if ports.either(53) && view.len() < super::PREFIX_CAP => Detect::NeedMore,
        None => Detect::No,
        Some(msg) if plausible(msg) => Detect::Yes(Protocol::DnsTcp),
        Some(_) => Detect::No,
    }
}

pub(super) fn parse_stream(view: &[u8], from_orig: bool, info: &mut ContentInfo) -> Progress {
    let Some([hi, lo]) = view.get(..2) else {
        return Progress::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let Some(msg) = view.get(2..2 + len) else {
        return Progress::NeedMore;
    };
    read_message(msg, from_orig, true, info);
    Progress::Done
}

/// Reads one datagram. Returns true when nothing more will be recorded.
pub(super) fn parse_datagram(
    payload: &[u8],
    from_orig: bool,
    datagrams: u8,
    info: &mut ContentInfo,
) -> bool {
    let response = read_message(payload, from_orig, datagrams == 1, info);
    response || datagrams >= QUERIES_BEFORE_GIVING_UP
}

/// Records a message's question, and for a response its rcode and answers. Returns true for
/// a response that was read.
fn read_message(msg: &[u8], from_orig: bool, first: bool, info: &mut ContentInfo) -> bool {
    let Some(h) = header(msg) else {
        return false;
    };
    if !counts_fit(msg, &h) {
        return false;
    }
    let Ok(packet) = Packet::parse(msg) else {
        return false;
    };
    if let Some(question) = packet.questions.first()
        && info.dns_query.is_none()
    {
        let name = question.qname.to_string();
        info.dns_query = Some(text(name.as_bytes(), TEXT_CAP));
        info.server_name = info.dns_query.clone();
        info.dns_qtype = Some(qtype_name(question.qtype));
    }
    if !h.is_response {
        return false;
    }
    if first && from_orig {
        info.orig_is_server = true;
    }
    info.dns_rcode = Some(rcode_name(packet.rcode()));
    if info.dns_query.is_none()
        && let Some(answer) = packet.answers.first()
    {
        // mDNS announcements carry no question: the first answer's name stands for it.
        let name = answer.name.to_string();
        info.dns_query = Some(text(name.as_bytes(), TEXT_CAP));
        info.server_name = info.dns_query.clone();
    }
    info.dns_answers = packet
        .answers
        .iter()
        .take(MAX_DNS_ANSWERS)
        .map(|answer| text(rdata_text(&answer.rdata).as_bytes(), TEXT_CAP))
        .collect();
    true
}

fn rdata_text(rdata: &RData<'_>) -> String {
    match rdata {
        RData::A(a) => std::net::Ipv4Addr::from(a.address).to_string(),
        RData::AAAA(a) => std::net::Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => n.0.to_string(),
        RData::PTR(n) => n.0.to_string(),
        RData::NS(n) => n.0.to_string(),
        RData::MX(mx) => mx.exchange.to_string(),
        RData::SRV(srv) => format!("{}:{}", srv.target, srv.port),
        other => format!("{:?}", other.type_code()),
    }
}

fn qtype_name(qtype: QTYPE) -> String {
    match qtype {
        QTYPE::TYPE(t) => {
            let name = format!("{t:?}");
            match name.strip_prefix("Unknown(") {
                Some(n) => format!("TYPE{}", n.trim_end_matches(')')),
                None => name,
            }
        }
        QTYPE::IXFR => "IXFR".to_string(),
        QTYPE::AXFR => "AXFR".to_string(),
        QTYPE::MAILB => "MAILB".to_string(),
        QTYPE::MAILA => "MAILA".to_string(),
        QTYPE::ANY => "ANY".to_string(),
    }
}

fn rcode_name(rcode: RCODE) -> &'static str {
    match rcode {
        RCODE::NoError => "NOERROR",
        RCODE::FormatError => "FORMERR",
        RCODE::ServerFailure => "SERVFAIL",
        RCODE::NameError => "NXDOMAIN",
        RCODE::NotImplemented => "NOTIMP",
        RCODE::Refused => "REFUSED",
        RCODE::YXDOMAIN => "YXDOMAIN",
        RCODE::YXRRSET => "YXRRSET",
        RCODE::NXRRSET => "NXRRSET",
        RCODE::NOTAUTH => "NOTAUTH",
        RCODE::NOTZONE => "NOTZONE",
        _ => "OTHER",
    }
}

/// NetBIOS name service (RFC 1002): a DNS-style header whose first name is one 32-byte label
/// of letters `A`-`P` (each name byte split into two 4-bit halves).
pub(super) fn detect_netbios(payload: &[u8]) -> bool {
    let Some(h) = header(payload) else {
        return false;
    };
    h.questions + h.records > 0 && netbios_name(payload).is_some()
}

fn netbios_name(payload: &[u8]) -> Option<String> {
    super::netbios::decode_name(payload.get(HEADER_LEN..)?)
}

pub(super) fn parse_netbios(payload: &[u8], info: &mut ContentInfo) {
    if let Some(name) = netbios_name(payload) {
        info.netbios_name = Some(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    // dig @192.0.2.2 www.example.test A (dig 9.18) and dnsmasq's answer, from
    // sample-captures/udp-dns.pcap; tshark reads dns.qry.name www.example.test, type A,
    // rcode 0, dns.a 192.0.2.80.
    pub const QUERY_HEX: &str = include_str!("testdata/dig-query.hex");
    pub const RESPONSE_HEX: &str = include_str!("testdata/dig-response.hex");

    fn unhex(s: &str) -> Vec<u8> {
        crate::classify::content::tls::tests::unhex(s)
    }

    #[test]
    fn dig_query_and_answer() {
        let mut c = ContentClassifier::new(Proto::Udp, 53001, 53);
        c.on_datagram(true, &unhex(QUERY_HEX));
        assert!(c.wants_more());
        c.on_datagram(false, &unhex(RESPONSE_HEX));
        assert!(!c.wants_more());
        let info = c.finish().unwrap();
        assert_eq!(info.service, "dns");
        assert_eq!(info.dns_query.as_deref(), Some("www.example.test"));
        assert_eq!(info.server_name.as_deref(), Some("www.example.test"));
        assert_eq!(info.dns_qtype.as_deref(), Some("A"));
        assert_eq!(info.dns_rcode, Some("NOERROR"));
        assert_eq!(info.dns_answers, vec!["192.0.2.80".to_string()]);
        assert!(!info.orig_is_server);
    }

    #[test]
    fn dns_over_tcp_split_in_chunks() {
        let query = unhex(QUERY_HEX);
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        let mut c = ContentClassifier::new(Proto::Tcp, 40001, 53);
        for part in framed.chunks(5) {
            c.on_stream(true, part);
        }
        let info = c.info().unwrap();
        assert_eq!(info.service, "dns");
        assert_eq!(info.dns_query.as_deref(), Some("www.example.test"));
    }

    #[test]
    fn counts_that_cannot_fit_are_rejected() {
        let mut msg = unhex(QUERY_HEX);
        msg[6] = 0xff; // 65280+ answers announced in a tiny message
        msg[7] = 0xff;
        let mut info = ContentInfo::default();
        assert!(!read_message(&msg, true, true, &mut info));
        assert_eq!(detect_datagram(&msg, Ports { orig: 1, resp: 53 }), None);
    }

    #[test]
    fn netbios_name_is_decoded() {
        // RFC 1002 4.1 encoding of "FRED" padded with spaces, suffix 0x00: "EGFCEFEE" + "CA"*11 + "AA".
        let mut msg = vec![0x12, 0x34, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
        msg.extend_from_slice(b"EGFCEFEECACACACACACACACACACACAAA");
        msg.extend_from_slice(&[0, 0, 0x20, 0, 1]);
        assert!(detect_netbios(&msg));
        let mut c = ContentClassifier::new(Proto::Udp, 137, 137);
        c.on_datagram(true, &msg);
        let info = c.finish().unwrap();
        assert_eq!(info.service, "dns");
        assert_eq!(info.netbios_name.as_deref(), Some("FRED<00>"));
    }
}
