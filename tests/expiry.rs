//! Sessions whose timers fall due together end in deadline order, each as if its timer were the
//! only one: the tracker takes due timers in batches (to overlap their cache misses), and a
//! session that saw a packet after its timer was set must survive the batch it sits in.

use sessionscope::capture::{LinkType, Timestamp};
use sessionscope::config::TrackerConfig;
use sessionscope::decode;
use sessionscope::session::{EndReason, SessionRecord, SessionTracker};

const SESSIONS: u16 = 30;
const FIRST_PORT: u16 = 40_000;
const SERVER_PORT: u16 = 9_999;

fn udp_frame(src_port: u16) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(src_port, SERVER_PORT);
    let payload = b"ping";
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

fn feed(tracker: &mut SessionTracker, millis: i64, src_port: u16, out: &mut Vec<SessionRecord>) {
    let ts = Timestamp(millis * 1_000_000);
    let frame = udp_frame(src_port);
    decode::decode(LinkType::ETHERNET, &frame, &mut |ip| {
        tracker.process(ts, ip, &mut |r| out.push(r));
    })
    .unwrap();
}

#[test]
fn sessions_due_together_end_in_deadline_order_and_late_packets_keep_theirs_alive() {
    let config = TrackerConfig::default();
    let inactivity_ms = i64::try_from(config.udp_inactivity.as_millis()).unwrap();
    let mut tracker = SessionTracker::new(config);
    let mut ended = Vec::new();
    // One datagram per session, a millisecond apart: deadlines inactivity + 0..29 ms.
    for i in 0..SESSIONS {
        feed(&mut tracker, i64::from(i), FIRST_PORT + i, &mut ended);
    }
    // Two of them speak again half way: their timers stay where they were (set lazily) and must
    // be moved on, not fired, when they come due among the others.
    let late = [FIRST_PORT + 7, FIRST_PORT + 19];
    for port in late {
        feed(&mut tracker, inactivity_ms / 2, port, &mut ended);
    }
    assert!(ended.is_empty());
    // Just past the last first-round deadline: all but the two are due in the same second.
    feed(&mut tracker, inactivity_ms + 100, 1, &mut ended);
    let ports: Vec<u16> = ended.iter().map(|r| r.orig.port).collect();
    let expected: Vec<u16> = (FIRST_PORT..FIRST_PORT + SESSIONS)
        .filter(|p| !late.contains(p))
        .collect();
    assert_eq!(ports, expected);
    assert!(ended.iter().all(|r| r.end_reason == EndReason::Inactive));
    assert!(ended.iter().all(|r| r.orig_stats.pkts == 1));
    // Later the two end too, in their own deadline order, with both datagrams counted (the
    // session from port 1 started last and stays).
    ended.clear();
    feed(&mut tracker, inactivity_ms * 2, 2, &mut ended);
    let ports: Vec<u16> = ended.iter().map(|r| r.orig.port).collect();
    assert_eq!(ports, vec![FIRST_PORT + 7, FIRST_PORT + 19]);
    assert_eq!(ended[0].orig_stats.pkts, 2);
    assert_eq!(ended[1].orig_stats.pkts, 2);
}
