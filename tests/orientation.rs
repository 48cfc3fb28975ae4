//! Which side of a UDP session is its originator when the capture shows the answer first.
//!
//! Zeek makes the first packet's sender the originator, then lets a protocol analyser flip the
//! roles when the content shows that sender answering: an NTP server reply (mode 4) or a DNS
//! response before any request. sessionscope does the same from its content classifier, so that
//! the hidden-session analysis names the client (the host that keeps time or looks names up),
//! not its server. Expected values come from how each exchange is built here: which address
//! sent the request.

use sessionscope::capture::{LinkType, Timestamp};
use sessionscope::config::TrackerConfig;
use sessionscope::decode;
use sessionscope::session::{ConnState, SessionRecord, SessionTracker};
use std::net::IpAddr;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const MDNS_GROUP: [u8; 4] = [224, 0, 0, 251];

/// An NTP message of 48 bytes: version 4 and the given mode (3 client, 4 server).
fn ntp(mode: u8) -> Vec<u8> {
    let mut message = vec![0u8; 48];
    message[0] = (4 << 3) | mode;
    message
}

/// A DNS message for `a.local` type A; a response carries one answer.
fn dns(response: bool) -> Vec<u8> {
    let flags: u16 = if response { 0x8400 } else { 0x0000 };
    let mut m = Vec::new();
    m.extend_from_slice(&0x1234u16.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // questions
    m.extend_from_slice(&u16::from(response).to_be_bytes()); // answers
    m.extend_from_slice(&[0, 0, 0, 0]); // authority, additional
    m.extend_from_slice(b"\x01a\x05local\x00");
    m.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
    if response {
        m.extend_from_slice(&[0xc0, 12]); // the question's name
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&120u32.to_be_bytes());
        m.extend_from_slice(&4u16.to_be_bytes());
        m.extend_from_slice(&SERVER);
    }
    m
}

/// A datagram: sender and port, receiver and port, payload.
type Datagram = ([u8; 4], u16, [u8; 4], u16, Vec<u8>);

/// Feeds the datagrams a millisecond apart and returns the sessions at the end of the capture.
fn run(datagrams: &[Datagram]) -> Vec<SessionRecord> {
    let mut tracker = SessionTracker::new(TrackerConfig::default());
    let mut out = Vec::new();
    for (i, (src, src_port, dst, dst_port, payload)) in datagrams.iter().enumerate() {
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(*src, *dst, 64)
            .udp(*src_port, *dst_port);
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).unwrap();
        let ts = Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000);
        decode::decode(LinkType::ETHERNET, &frame, &mut |ip| {
            tracker.process(ts, ip, &mut |r| out.push(r));
        })
        .unwrap();
    }
    tracker.finish(&mut |r| out.push(r));
    out
}

fn addr(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

#[test]
fn an_ntp_server_reply_seen_first_makes_the_client_the_originator() {
    let sessions = run(&[
        (SERVER, 123, CLIENT, 123, ntp(4)),
        (CLIENT, 123, SERVER, 123, ntp(3)),
    ]);
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!((s.orig.addr, s.resp.addr), (addr(CLIENT), addr(SERVER)));
    // One datagram each way, each counted for the side that sent it.
    assert_eq!((s.orig_stats.pkts, s.resp_stats.pkts), (1, 1));
    assert_eq!((s.orig_stats.bytes, s.resp_stats.bytes), (48, 48));
    assert_eq!(s.conn_state, ConnState::SF);
    // Zeek's history for the same exchange (zeek-ntp-misordered-ntp.pcap): the first sender's
    // data, then the flip.
    assert_eq!(s.history.as_bytes(), b"D^");
    // The session starts at its first packet, the reply.
    assert_eq!(s.start, Timestamp(1_700_000_000_000_000_000));
}

#[test]
fn an_ntp_request_seen_first_keeps_its_sender_as_the_originator() {
    let sessions = run(&[
        (CLIENT, 123, SERVER, 123, ntp(3)),
        (SERVER, 123, CLIENT, 123, ntp(4)),
    ]);
    let s = &sessions[0];
    assert_eq!((s.orig.addr, s.resp.addr), (addr(CLIENT), addr(SERVER)));
    assert_eq!(s.history.as_bytes(), b"Dd");
}

#[test]
fn a_dns_response_seen_first_makes_the_asker_the_originator() {
    // mDNS's port on both sides, so the port gives no direction: only the content does.
    let sessions = run(&[
        (SERVER, 5353, CLIENT, 5353, dns(true)),
        (CLIENT, 5353, SERVER, 5353, dns(false)),
    ]);
    let s = &sessions[0];
    assert_eq!((s.orig.addr, s.resp.addr), (addr(CLIENT), addr(SERVER)));
    assert_eq!((s.orig_stats.pkts, s.resp_stats.pkts), (1, 1));
    assert_eq!(s.history.as_bytes(), b"D^");
}

#[test]
fn an_announcement_to_a_multicast_group_keeps_its_sender_as_the_originator() {
    // An mDNS response nobody asked for, sent to the group: there is no client to turn to.
    let sessions = run(&[(SERVER, 5353, MDNS_GROUP, 5353, dns(true))]);
    let s = &sessions[0];
    assert_eq!((s.orig.addr, s.resp.addr), (addr(SERVER), addr(MDNS_GROUP)));
    assert_eq!(s.history.as_bytes(), b"D");
    assert_eq!(s.conn_state, ConnState::S0);
}
