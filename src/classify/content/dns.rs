//! DNS over UDP and TCP, and the protocols sharing its message format: mDNS (UDP 5353), LLMNR
//! (UDP 5355) and NetBIOS name service (UDP 137, RFC 1002). Messages are parsed with NLnet
//! Labs' `domain` in place, without allocating (names and records are read where they lie,
//! compression pointers followed by the parser); NetBIOS names, which are encoded inside a
//! DNS-style label, are decoded here.
//!
//! Owns the first question (name, type), the first response's rcode (with EDNS's extended
//! bits) and up to [`MAX_DNS_ANSWERS`] answers. Promise: only a message that reads from end to
//! end is recorded (every question and record, and the data of the answers read), and one whose
//! section counts cannot fit in its length is turned away before it is read; no panic on any
//! bytes.

use super::{
    ContentInfo, Detect, MAX_DNS_ANSWERS, Ports, Progress, Protocol, TEXT_CAP, capped_text,
};
use domain::base::iana::Rtype;
use domain::base::{Message, ParsedName, ParsedRecord};
use domain::rdata::{A, Aaaa, Cname, Mx, Ns, Ptr, Srv};
use std::borrow::Cow;

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
/// question or answer, standard opcodes, counts that fit, and a message that reads to its end.
fn plausible(msg: &[u8]) -> bool {
    header(msg).is_some_and(|h| plausible_header(msg, &h)) && Parsed::of(msg).is_some()
}

/// A message that reads from end to end (see the module doc).
struct Parsed<'a> {
    message: Message<&'a [u8]>,
    /// The response code with EDNS's extended bits (RFC 6891: the OPT record's TTL holds the
    /// upper eight).
    rcode: u16,
    /// The first answers' data, kept from the read that checked them: at most
    /// [`MAX_DNS_ANSWERS`], in order, the rest `None`.
    answers: [Option<AnswerData<'a>>; MAX_DNS_ANSWERS],
}

impl<'a> Parsed<'a> {
    fn of(msg: &'a [u8]) -> Option<Parsed<'a>> {
        let message = Message::from_octets(msg).ok()?;
        let answers = message.question().next_section().ok()?;
        // The first OPT record's, as there should be at most one.
        let mut extended: Option<u16> = None;
        let mut kept = [const { None }; MAX_DNS_ANSWERS];
        let mut section = Some(answers);
        let mut answer_section = true;
        while let Some(mut records) = section {
            for (index, record) in (&mut records).enumerate() {
                let record = record.ok()?;
                if answer_section {
                    // The answers are read for their data: it must read too.
                    let data = AnswerData::of(&record)?;
                    if let Some(slot) = kept.get_mut(index) {
                        *slot = Some(data);
                    }
                } else if record.rtype() == Rtype::OPT && extended.is_none() {
                    extended = Some(u16::from((record.ttl().as_secs() >> 24) as u8));
                }
            }
            section = records.next_section().ok()?;
            answer_section = false;
        }
        let rcode = (extended.unwrap_or(0) << 4) | u16::from(message.header().rcode().to_int());
        Some(Parsed {
            message,
            rcode,
            answers: kept,
        })
    }

    /// The first question's name and type.
    fn first_question(&self) -> Option<(String, Cow<'static, str>)> {
        let question = self.message.question().next()?.ok()?;
        Some((name_text(question.qname()), type_text(question.qtype())))
    }

    /// The first answer's owner name.
    fn first_answer_owner(&self) -> Option<String> {
        let record = self.message.answer().ok()?.next()?.ok()?;
        Some(name_text(&record.owner()))
    }

    /// The first [`MAX_DNS_ANSWERS`] answers' data.
    fn answers(&self) -> impl Iterator<Item = &AnswerData<'a>> {
        self.answers.iter().map_while(Option::as_ref)
    }
}

/// A name inside a message.
type Name<'m> = ParsedName<&'m [u8]>;

/// What an answer says, read in place.
enum AnswerData<'m> {
    Address(std::net::IpAddr),
    Name(Name<'m>),
    Service(Name<'m>, u16),
    /// A record whose data is not shown: only its type is.
    Other(Rtype),
}

impl<'m> AnswerData<'m> {
    /// `None` when the record's data does not read.
    fn of(record: &ParsedRecord<'_, &'m [u8]>) -> Option<AnswerData<'m>> {
        /// The record's data as `T`, `None` when it does not read.
        fn data<'a, 'm, T: domain::base::rdata::ParseRecordData<'a, &'m [u8]>>(
            record: &'a ParsedRecord<'_, &'m [u8]>,
        ) -> Option<T> {
            Some(record.to_record::<T>().ok()??.into_data())
        }
        Some(match record.rtype() {
            Rtype::A => AnswerData::Address(data::<A>(record)?.addr().into()),
            Rtype::AAAA => AnswerData::Address(data::<Aaaa>(record)?.addr().into()),
            Rtype::CNAME => AnswerData::Name(data::<Cname<Name>>(record)?.into_cname()),
            Rtype::PTR => AnswerData::Name(data::<Ptr<Name>>(record)?.into_ptrdname()),
            Rtype::NS => AnswerData::Name(data::<Ns<Name>>(record)?.into_nsdname()),
            Rtype::MX => AnswerData::Name(*data::<Mx<Name>>(record)?.exchange()),
            Rtype::SRV => {
                let srv = data::<Srv<Name>>(record)?;
                AnswerData::Service(*srv.target(), srv.port())
            }
            other => AnswerData::Other(other),
        })
    }

    /// As `dns_answers` shows it: an address, a name (`target:port` for SRV), or the type.
    fn text(&self) -> String {
        match self {
            AnswerData::Address(std::net::IpAddr::V4(v4)) => ipv4_text(u32::from(*v4)),
            AnswerData::Address(address) => address.to_string(),
            AnswerData::Name(name) => name_text(name),
            AnswerData::Service(target, port) => format!("{}:{port}", name_text(target)),
            AnswerData::Other(rtype) => type_text(*rtype).into_owned(),
        }
    }

    fn address(&self) -> Option<std::net::IpAddr> {
        match self {
            AnswerData::Address(address) => Some(*address),
            _ => None,
        }
    }
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
    match Parsed::of(msg) {
        Some(parsed) => {
            record(&parsed, &h, from_orig, true, info);
            Detect::Yes(Protocol::DnsTcp)
        }
        None => Detect::No,
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
    let Some(parsed) = Parsed::of(msg) else {
        return false;
    };
    record(&parsed, &h, from_orig, first, info)
}

/// [`read_message`] after the parse.
fn record(
    parsed: &Parsed<'_>,
    h: &Header,
    from_orig: bool,
    first: bool,
    info: &mut ContentInfo,
) -> bool {
    if info.dns_query.is_none()
        && let Some((name, qtype)) = parsed.first_question()
    {
        info.server_name = Some(name.clone());
        info.dns_query = Some(name);
        info.dns_qtype = Some(qtype);
    }
    if !h.is_response {
        return false;
    }
    if first && from_orig {
        info.orig_is_server = true;
    }
    info.dns_rcode = Some(rcode_name(parsed.rcode));
    if info.dns_query.is_none()
        && let Some(name) = parsed.first_answer_owner()
    {
        // mDNS announcements carry no question: the first answer's name stands for it.
        info.server_name = Some(name.clone());
        info.dns_query = Some(name);
    }
    info.dns_answers.clear();
    info.dns_answer_addresses.clear();
    for data in parsed.answers() {
        info.dns_answer_addresses.extend(data.address());
        info.dns_answers.push(capped_text(data.text(), TEXT_CAP));
    }
    true
}

/// A name as text: labels joined by `.`, each label's bytes as lossy UTF-8 with `.` and `\`
/// escaped by a backslash (as `simple-dns`, the parser before, displayed names; RFC 1035's
/// presentation format would also escape other bytes as `\DDD`), capped at [`TEXT_CAP`]
/// bytes, written in one buffer.
fn name_text<O: AsRef<[u8]>>(name: &ParsedName<O>) -> String {
    let size: usize = name.iter().map(|label| label.len() + 1).sum();
    let mut out = String::with_capacity(size);
    for label in name.iter().filter(|label| !label.is_root()) {
        if !out.is_empty() {
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

/// A record type's mnemonic (`A`, `AAAA`, `HTTPS`, ... as IANA names it), or `TYPE<n>`:
/// borrowed when it has a mnemonic, as nearly every question's type has.
fn type_text(rtype: Rtype) -> Cow<'static, str> {
    match rtype.to_mnemonic_str() {
        Some(mnemonic) => Cow::Borrowed(mnemonic),
        None => Cow::Owned(format!("TYPE{}", rtype.to_int())),
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

/// The response code's mnemonic (RFC 1035, RFC 2136), `OTHER` beyond them (EDNS's extended
/// codes among them).
fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
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
        info.more.get_mut().netbios_name = Some(name);
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
        use simple_dns::rdata::{A, AAAA, CNAME, PTR, RData};
        use simple_dns::{CLASS, Name, Packet, Question, ResourceRecord, TYPE};
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
        // Types by their IANA mnemonics, the others by number (RFC 3597's form).
        for (code, text) in [
            (1, "A"),
            (28, "AAAA"),
            (12, "PTR"),
            (65, "HTTPS"),
            (255, "ANY"),
            (65280, "TYPE65280"),
        ] {
            assert_eq!(type_text(Rtype::from_int(code)), text);
        }
    }

    #[test]
    fn names_are_written_as_the_parser_displays_them() {
        // Labels with a dot, a backslash and invalid UTF-8, then a plain one: Display escapes
        // dots and backslashes with a backslash and replaces invalid UTF-8 with U+FFFD.
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x03a.b\x02\\\xff\x07example\x00\x00\x01\x00\x01");
        let message = Message::from_octets(msg.as_slice()).unwrap();
        let question = message.first_question().unwrap();
        let ours = name_text(question.qname());
        // The text simple-dns (the parser before) displays for the same name.
        let before = simple_dns::Packet::parse(&msg).unwrap().questions[0]
            .qname
            .to_string();
        assert_eq!(ours, before);
        assert_eq!(ours, "a\\.b.\\\\\u{fffd}.example");
    }

    #[test]
    fn the_rcode_takes_the_extended_bits_of_an_opt_record_and_nothing_else() {
        // dig's response (NOERROR) with an OPT record added: upper rcode bits, then the
        // version and flags (RFC 6891), which say nothing of the rcode.
        let with_opt = |ttl: [u8; 4]| {
            let mut msg = unhex(RESPONSE_HEX);
            msg[11] += 1; // ARCOUNT
            msg.extend_from_slice(&[0, 0, 41, 0x05, 0xa0]);
            msg.extend_from_slice(&ttl);
            msg.extend_from_slice(&[0, 0]);
            msg
        };
        for (ttl, rcode) in [
            ([0, 0, 0, 0], "NOERROR"),
            // Z bits set (an Apple mDNS responder's OPT record does): still NOERROR, as
            // tshark reads it (zeek-radiotap.pcap, frame 3).
            ([0, 0, 0x11, 0x94], "NOERROR"),
            ([0, 0, 0x80, 0], "NOERROR"),
            // Upper bits 1: rcode 16, BADVERS.
            ([1, 0, 0, 0], "OTHER"),
        ] {
            let msg = with_opt(ttl);
            let mut info = ContentInfo::default();
            assert!(read_message(&msg, false, true, &mut info), "{ttl:?}");
            assert_eq!(info.dns_rcode, Some(rcode), "{ttl:?}");
            assert_eq!(info.dns_answers, ["192.0.2.80"]);
        }
    }

    #[test]
    fn a_message_that_does_not_read_to_its_end_is_not_recorded() {
        let full = unhex(RESPONSE_HEX);
        for cut in [full.len() - 1, full.len() - 4, HEADER_LEN + 3] {
            let mut info = ContentInfo::default();
            assert!(!read_message(&full[..cut], false, true, &mut info), "{cut}");
            assert_eq!(info, ContentInfo::default(), "{cut}");
        }
        // An A record whose data is not four bytes.
        let mut bad = full.clone();
        let rdlen_at = bad.len() - 6;
        assert_eq!(bad[rdlen_at..rdlen_at + 2], [0, 4]);
        bad[rdlen_at + 1] = 3;
        bad.pop();
        let mut info = ContentInfo::default();
        assert!(!read_message(&bad, false, true, &mut info));
        assert_eq!(info.dns_answers, Vec::<String>::new());
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
        assert_eq!(info.more.netbios_name.as_deref(), Some("FRED<00>"));
    }
}
