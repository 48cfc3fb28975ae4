//! DNS over UDP and TCP, and the protocols sharing its message format: mDNS (UDP 5353), LLMNR
//! (UDP 5355) and NetBIOS name service (UDP 137, RFC 1002). Messages are parsed with
//! `simple-dns` (a maintained, dependency-light, borrowing parser); NetBIOS names, which are
//! encoded inside a DNS-style label, are decoded here.
//!
//! Owns the first question (name, type), the first response's rcode and up to
//! [`MAX_DNS_ANSWERS`] answers. Promise: a message whose section counts cannot fit in its
//! length is rejected before parsing (the parser reserves room per announced record), so memory
//! follows the packet size; no panic on any bytes.

use super::{
    ContentInfo, Detect, MAX_DNS_ANSWERS, Ports, Progress, Protocol, TEXT_CAP, capped_text,
};
use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, QTYPE, RCODE, TYPE};

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
    header(msg).is_some_and(|h| plausible_header(msg, &h)) && Packet::parse(msg).is_ok()
}

/// [`plausible`] without the parse.
fn plausible_header(msg: &[u8], h: &Header) -> bool {
    let shape_ok = if h.is_response {
        h.questions <= 1 && (h.questions + h.records) > 0
    } else {
        h.questions == 1
    };
    shape_ok && h.opcode <= 5 && counts_fit(msg, h)
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

/// TCP: a 2-byte length that matches a plausible DNS message. On a match the message is also
/// recorded (as [`parse_stream`] would), so it is parsed once, not twice; the direction is
/// then done.
pub(super) fn detect_and_read_stream(
    view: &[u8],
    from_orig: bool,
    ports: Ports,
    info: &mut ContentInfo,
) -> Detect {
    let Some([hi, lo]) = view.get(..2) else {
        return Detect::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len < HEADER_LEN {
        return Detect::No;
    }
    let msg = match view.get(2..2 + len) {
        None if ports.either(53) && view.len() < super::PREFIX_CAP => return Detect::NeedMore,
        None => return Detect::No,
        Some(msg) => msg,
    };
    let Some(h) = header(msg).filter(|h| plausible_header(msg, h)) else {
        return Detect::No;
    };
    match Packet::parse(msg) {
        Ok(packet) => {
            record(&packet, &h, from_orig, true, info);
            Detect::Yes(Protocol::DnsTcp)
        }
        Err(_) => Detect::No,
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
    record(&packet, &h, from_orig, first, info)
}

/// [`read_message`] after the parse.
fn record(
    packet: &Packet<'_>,
    h: &Header,
    from_orig: bool,
    first: bool,
    info: &mut ContentInfo,
) -> bool {
    if let Some(question) = packet.questions.first()
        && info.dns_query.is_none()
    {
        let name = name_text(&question.qname);
        info.server_name = Some(name.clone());
        info.dns_query = Some(name);
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
        let name = name_text(&answer.name);
        info.server_name = Some(name.clone());
        info.dns_query = Some(name);
    }
    info.dns_answers.clear();
    info.dns_answer_addresses.clear();
    for answer in packet.answers.iter().take(MAX_DNS_ANSWERS) {
        match &answer.rdata {
            RData::A(a) => info
                .dns_answer_addresses
                .push(std::net::Ipv4Addr::from(a.address).into()),
            RData::AAAA(a) => info
                .dns_answer_addresses
                .push(std::net::Ipv6Addr::from(a.address).into()),
            _ => {}
        }
        info.dns_answers
            .push(capped_text(rdata_text(&answer.rdata), TEXT_CAP));
    }
    true
}

/// A name as `Name`'s `Display` writes it (labels joined by `.`, each label's bytes as lossy
/// UTF-8 with `.` and `\` escaped by a backslash), capped at [`TEXT_CAP`] bytes, written in
/// one buffer.
fn name_text(name: &Name<'_>) -> String {
    let labels = name.get_labels();
    let size: usize = labels.iter().map(|label| label.len() + 1).sum();
    let mut out = String::with_capacity(size);
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let label = String::from_utf8_lossy(label.as_ref());
        if label.contains(['.', '\\']) {
            for c in label.chars() {
                if c == '.' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
        } else {
            out.push_str(&label);
        }
    }
    capped_text(out, TEXT_CAP)
}

fn rdata_text(rdata: &RData<'_>) -> String {
    match rdata {
        RData::A(a) => ipv4_text(a.address),
        RData::AAAA(a) => std::net::Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => name_text(&n.0),
        RData::PTR(n) => name_text(&n.0),
        RData::NS(n) => name_text(&n.0),
        RData::MX(mx) => name_text(&mx.exchange),
        RData::SRV(srv) => format!("{}:{}", srv.target, srv.port),
        other => match common_type_name(other.type_code()) {
            Some(name) => name.to_string(),
            None => format!("{:?}", other.type_code()),
        },
    }
}

/// Dotted-quad text of an IPv4 address (as `Ipv4Addr`'s `Display` writes it), without the
/// formatting machinery.
fn ipv4_text(address: u32) -> String {
    let mut out = Vec::with_capacity(15);
    crate::text::push_ipv4(&mut out, std::net::Ipv4Addr::from(address));
    // Digits and dots only.
    String::from_utf8(out).unwrap_or_default()
}

/// The `Debug` name of the record types seen most, without formatting.
fn common_type_name(t: TYPE) -> Option<&'static str> {
    Some(match t {
        TYPE::A => "A",
        TYPE::AAAA => "AAAA",
        TYPE::MX => "MX",
        TYPE::TXT => "TXT",
        TYPE::PTR => "PTR",
        TYPE::CNAME => "CNAME",
        TYPE::NS => "NS",
        TYPE::SRV => "SRV",
        TYPE::SOA => "SOA",
        TYPE::HTTPS => "HTTPS",
        TYPE::SVCB => "SVCB",
        TYPE::OPT => "OPT",
        TYPE::CAA => "CAA",
        TYPE::DS => "DS",
        TYPE::DNSKEY => "DNSKEY",
        TYPE::RRSIG => "RRSIG",
        TYPE::NSEC => "NSEC",
        _ => return None,
    })
}

fn qtype_name(qtype: QTYPE) -> String {
    let name = match qtype {
        QTYPE::TYPE(TYPE::Unknown(n)) => return format!("TYPE{n}"),
        QTYPE::TYPE(t) => match common_type_name(t) {
            Some(name) => name,
            None => return format!("{t:?}"),
        },
        QTYPE::IXFR => "IXFR",
        QTYPE::AXFR => "AXFR",
        QTYPE::MAILB => "MAILB",
        QTYPE::MAILA => "MAILA",
        QTYPE::ANY => "ANY",
    };
    name.to_string()
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
        assert_eq!(
            info.dns_answer_addresses,
            [std::net::IpAddr::from([192, 0, 2, 80])]
        );
        assert!(!info.orig_is_server);
    }

    #[test]
    fn answer_addresses_are_the_a_and_aaaa_records_only() {
        use simple_dns::rdata::{A, AAAA, CNAME, PTR};
        use simple_dns::{CLASS, Question, ResourceRecord};
        let mut reply = Packet::new_reply(7);
        let asked = Name::new_unchecked("www.example.test");
        reply.questions.push(Question::new(
            asked.clone(),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        let record = |rdata| ResourceRecord::new(asked.clone(), CLASS::IN, 60, rdata);
        reply.answers.extend([
            record(RData::CNAME(CNAME(Name::new_unchecked(
                "edge.example.test",
            )))),
            record(RData::A(A {
                address: 0xc000_0250,
            })),
            // A name that reads as an address is still a name.
            record(RData::PTR(PTR(Name::new_unchecked("10.0.0.1")))),
            record(RData::AAAA(AAAA {
                address: 0x2001_0db8 << 96 | 0x80,
            })),
        ]);
        let msg = reply.build_bytes_vec().unwrap();
        let mut info = ContentInfo::default();
        assert!(read_message(&msg, false, false, &mut info));
        assert_eq!(
            info.dns_answers,
            [
                "edge.example.test",
                "192.0.2.80",
                "10.0.0.1",
                "2001:db8::80"
            ]
        );
        let expected: [std::net::IpAddr; 2] = [
            "192.0.2.80".parse().unwrap(),
            "2001:db8::80".parse().unwrap(),
        ];
        assert_eq!(info.dns_answer_addresses, expected);
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
    fn short_forms_match_the_formatted_ones() {
        for address in [
            0,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0001,
            0xc000_0250,
            u32::MAX,
        ] {
            assert_eq!(
                ipv4_text(address),
                std::net::Ipv4Addr::from(address).to_string()
            );
        }
        for code in 0..=300u16 {
            let t = TYPE::from(code);
            if let Some(name) = common_type_name(t) {
                assert_eq!(name, format!("{t:?}"));
            }
        }
    }

    #[test]
    fn names_are_written_as_the_parser_displays_them() {
        // Labels with a dot, a backslash and invalid UTF-8, then a plain one: Display escapes
        // dots and backslashes with a backslash and replaces invalid UTF-8 with U+FFFD.
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x03a.b\x02\\\xff\x07example\x00\x00\x01\x00\x01");
        let packet = Packet::parse(&msg).unwrap();
        let name = &packet.questions[0].qname;
        assert_eq!(name_text(name), name.to_string());
        assert_eq!(name_text(name), "a\\.b.\\\\\u{fffd}.example");
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
