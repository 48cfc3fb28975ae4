//! The session table: finds or creates the session of each IP packet, applies the protocol's
//! rules, and ends sessions by Zeek's timers (driven by capture time), by port reuse, by the
//! cap on live sessions, or at the end of the capture.
//!
//! Storage is a slab of sessions, a hash table of slot numbers (keys live in the sessions, so the
//! table stays small enough for the cache), a compact per-slot array with the least-recently-active
//! list for eviction, and a wheel of per-slot expiry timers in capture time. Per packet there is
//! no allocation once the tables have grown to the number of live sessions.

use super::history::{History, Mark};
use super::reassembly::{StreamId, StreamSink};
use super::tcp::{Delivery, Segment, TcpSession};
use super::timers::{DueTimer, TimerWheel};
use super::{
    Anomalies, ConnState, DirectionStats, EndReason, Endpoint, Proto, ServiceEvidence,
    SessionRecord, Uid,
};
use crate::capture::Timestamp;
use crate::classify::ContentClassifier;
use crate::config::TrackerConfig;
use crate::decode::{self, ChecksumVerdict, IpPacket, Transport};
use crate::prefetch::prefetch;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

/// Counters the summary reports about the table itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Sessions created.
    pub sessions_started: u64,
    /// Sessions ended early to respect `max_sessions`.
    pub evicted: u64,
    /// Most sessions alive at once.
    pub peak_live: u64,
    /// IP packets that could not be tied to a session (non-first fragments until reassembly).
    pub unattributed_packets: u64,
    /// Packets left out of their sessions for a bad checksum (only with `verify_checksums`).
    pub bad_checksum_packets: u64,
}

/// Zeek's delay before an unanswered SYN's session is removed (tcp_attempt_delay).
const TCP_ATTEMPT_DELAY: Duration = Duration::from_secs(5);
/// Zeek's interval of the timer that checks half-closed sessions (tcp_session_timer).
const TCP_SESSION_TIMER: Duration = Duration::from_secs(6);
/// Zeek's idle time after which a half-closed session may be removed (tcp_connection_linger).
const TCP_CONNECTION_LINGER: Duration = Duration::from_secs(5);

fn is_broadcast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_broadcast(),
        IpAddr::V6(_) => false,
    }
}

/// A multicast or broadcast address: a group, never a session's client.
fn is_group(addr: IpAddr) -> bool {
    addr.is_multicast() || is_broadcast(addr)
}

/// Responder ports where Zeek's DNS analyzer, and with it the DNS session timer, applies.
const DNS_PORTS_UDP: [u16; 4] = [53, 137, 5353, 5355];

/// ICMP's pseudo ports, as Zeek builds them: (type, counterpart type or code, one-way).
fn icmp_ports(v6: bool, icmp_type: u8, code: u8) -> (u16, u16, bool) {
    let counterpart = decode::icmp_counterpart(v6, icmp_type).map(u16::from);
    match counterpart {
        Some(c) => (u16::from(icmp_type), c, false),
        None => (u16::from(icmp_type), u16::from(code), true),
    }
}

/// A direction-independent session key (one-way ICMP keeps its direction), with addresses as
/// plain bytes so that comparing and hashing it is a few word operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    a: [u8; 16],
    b: [u8; 16],
    a_port: u16,
    b_port: u16,
    ip_proto: u8,
    depth: u8,
    v6: bool,
}

/// An address as a number that orders as the address does (for two of one family).
fn address_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl FlowKey {
    /// The key, and whether `src` is its `b` side.
    #[inline]
    fn new(
        src: Endpoint,
        dst: Endpoint,
        ip_proto: u8,
        depth: u8,
        one_way: bool,
    ) -> (FlowKey, bool) {
        // Numbers, not `IpAddr`s, are compared: the same order (both ends are of one family),
        // without comparing the enums' bytes one by one.
        let (src_value, dst_value) = (address_value(src.addr), address_value(dst.addr));
        let swapped = !one_way && (src_value, src.port) > (dst_value, dst.port);
        let (first, second) = if swapped {
            ((dst_value, dst.port), (src_value, src.port))
        } else {
            ((src_value, src.port), (dst_value, dst.port))
        };
        let key = FlowKey {
            a: first.0.to_ne_bytes(),
            b: second.0.to_ne_bytes(),
            a_port: first.1,
            b_port: second.1,
            ip_proto,
            depth,
            v6: src.addr.is_ipv6(),
        };
        (key, swapped)
    }
}

impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.a));
        state.write_u128(u128::from_ne_bytes(self.b));
        state.write_u64(
            u64::from(self.a_port)
                | (u64::from(self.b_port) << 16)
                | (u64::from(self.ip_proto) << 32)
                | (u64::from(self.depth) << 40)
                | (u64::from(self.v6) << 48),
        );
    }
}

/// TCP's state is boxed: a datagram session (most of the sessions alive at once, waiting out
/// their timeout) then takes a 328-byte slot instead of 848. Measured on the 1 GiB benchmark
/// capture: as fast, max RSS 145 -> 131 MB (docs/performance.md, "twelfth session").
#[derive(Debug, Clone)]
enum ProtoState {
    Tcp(Box<TcpSession>),
    /// UDP, ICMP and other protocols: which sides sent anything.
    Datagram,
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Session {
    key: FlowKey,
    /// The key's hash in the index.
    hash: u64,
    orig: Endpoint,
    resp: Endpoint,
    proto: Proto,
    ip_proto: u8,
    start: Timestamp,
    last: Timestamp,
    orig_stats: DirectionStats,
    resp_stats: DirectionStats,
    history: History,
    state: ProtoState,
    /// When a TCP close became complete (the session lingers from there).
    closed_at: Option<Timestamp>,
    /// When one side closed while the other stayed open.
    half_closed_at: Option<Timestamp>,
    /// See [`SessionRecord::related_uid`].
    related: Option<Uid>,
    /// Reads the session's first bytes to name what it really is (TCP and UDP only).
    content: Option<ContentClassifier>,
    /// The first TTL seen from each side (the key's `a` side, then `b`), and what the session
    /// showed an evader doing outside TCP's own state (TTL changes, fragment overlaps).
    first_ttl: [Option<u8>; 2],
    anomalies: Anomalies,
}

/// A slot's place in the least-recently-active list, kept beside the (large) sessions so that
/// moving a session to the tail touches only this compact array.
#[derive(Debug, Clone, Copy)]
struct LruLinks {
    prev: u32,
    next: u32,
}

/// Timers due together are taken this many at a time (see `advance_time`).
const DUE_BATCH: usize = 8;

/// Session slots reserved up front (at most `max_sessions`).
const RESERVED_SLOTS: usize = 1 << 16;

/// Tracks every session of one packet stream.
pub struct SessionTracker {
    config: TrackerConfig,
    stats: TrackerStats,
    /// Slots of the live sessions, by their key's hash (the key is the session's).
    index: hashbrown::HashTable<u32>,
    hasher: ahash::RandomState,
    slots: Vec<Option<Session>>,
    lru: Vec<LruLinks>,
    free: Vec<u32>,
    timers: TimerWheel,
    lru_head: u32,
    lru_tail: u32,
    live: usize,
    now: Timestamp,
    /// Where reassembled TCP streams go, when someone wants them.
    streams: Option<StreamOutput>,
}

/// The reassembled-stream hook: the sink and the memory each direction may hold ahead of a hole.
struct StreamOutput {
    sink: Box<dyn StreamSink>,
    limit_bytes: usize,
}

/// A session's identity as its record will show it (the uid depends on the roles).
#[derive(Clone, Copy)]
struct SessionIdentity {
    start: Timestamp,
    proto: Proto,
    orig: Endpoint,
    resp: Endpoint,
    depth: u8,
}

impl SessionIdentity {
    fn of(s: &Session) -> Self {
        SessionIdentity {
            start: s.start,
            proto: s.proto,
            orig: s.orig,
            resp: s.resp,
            depth: s.key.depth,
        }
    }

    /// The stream a delivery belongs to; `flipped` means the roles swapped since `self` was taken.
    fn stream(&self, from_orig: bool, flipped: bool) -> StreamId {
        let (orig, resp) = if flipped {
            (self.resp, self.orig)
        } else {
            (self.orig, self.resp)
        };
        let uid = Uid::derive(self.start, self.proto, orig, resp, self.depth);
        let (src, dst) = if from_orig {
            (orig, resp)
        } else {
            (resp, orig)
        };
        StreamId {
            uid,
            src,
            dst,
            from_orig,
        }
    }
}

fn send_to(sink: &mut Option<StreamOutput>, identity: &SessionIdentity, d: Delivery<'_>) {
    if let Some(out) = sink {
        let stream = identity.stream(d.from_orig, d.flipped);
        out.sink.data(&stream, d.rel_seq.saturating_sub(1), d.bytes);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl SessionTracker {
    pub fn new(config: TrackerConfig) -> Self {
        // Room reserved, not touched: growing by doubling would copy every slot at each step
        // and leave the old tables' pages behind.
        let reserved = config.max_sessions.min(RESERVED_SLOTS);
        SessionTracker {
            config,
            stats: TrackerStats::default(),
            index: hashbrown::HashTable::new(),
            hasher: ahash::RandomState::new(),
            slots: Vec::with_capacity(reserved),
            lru: Vec::with_capacity(reserved),
            free: Vec::new(),
            timers: TimerWheel::new(),
            lru_head: NIL,
            lru_tail: NIL,
            live: 0,
            now: Timestamp::ZERO,
            streams: None,
        }
    }

    /// Reassembles every TCP session started from now on and hands its streams to `sink`,
    /// keeping at most `limit_bytes` per direction ahead of a hole (see
    /// [`super::reassembly::StreamReassembler`]). Without a sink only gaps are accounted.
    pub fn set_stream_sink(&mut self, sink: Box<dyn StreamSink>, limit_bytes: usize) {
        self.streams = Some(StreamOutput { sink, limit_bytes });
    }

    /// Gives the sink back (after [`Self::finish`], to close it).
    pub fn take_stream_sink(&mut self) -> Option<Box<dyn StreamSink>> {
        self.streams.take().map(|out| out.sink)
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Sessions currently open.
    pub fn live_sessions(&self) -> usize {
        self.live
    }

    /// Accounts one IP packet seen at `ts`; sessions that end as a result go to `emit`.
    ///
    /// Returns false when the packet was rejected for a bad checksum (only with
    /// `verify_checksums`): then the layers inside it (a tunnel's payload) must not be counted.
    pub fn process(
        &mut self,
        ts: Timestamp,
        packet: &IpPacket<'_>,
        emit: &mut impl FnMut(SessionRecord),
    ) -> bool {
        self.advance_time(ts, emit);
        let verdict = if self.config.verify_checksums {
            decode::verify_checksums(packet)
        } else {
            ChecksumVerdict::Valid
        };
        if verdict == ChecksumVerdict::BadIpHeader {
            // Zeek discards such a packet before it reaches any session.
            self.stats.bad_checksum_packets += 1;
            return false;
        }

        let src_ip = packet.src;
        let dst_ip = packet.dst;
        let (src_port, dst_port, one_way, proto) = match packet.transport {
            Transport::Tcp {
                src_port, dst_port, ..
            } => (src_port, dst_port, false, Proto::Tcp),
            Transport::Udp {
                src_port, dst_port, ..
            } => (src_port, dst_port, false, Proto::Udp),
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                ..
            } => {
                let (s, d, one_way) = icmp_ports(v6, icmp_type, code);
                (s, d, one_way, Proto::Icmp)
            }
            Transport::Other { .. } => {
                if packet.fragment.is_some_and(|f| f.offset > 0) {
                    // A later fragment carries no ports; it joins its session once fragments are
                    // reassembled.
                    self.stats.unattributed_packets += 1;
                    return true;
                }
                (0, 0, false, Proto::Other(packet.protocol))
            }
        };
        let src = Endpoint {
            addr: src_ip,
            port: src_port,
        };
        let dst = Endpoint {
            addr: dst_ip,
            port: dst_port,
        };
        let (key, src_is_b) = FlowKey::new(src, dst, packet.protocol, packet.depth, one_way);
        let hash = self.hasher.hash_one(key);

        let mut slot = self.lookup(&key, hash);
        if let (Some(s), Transport::Tcp { flags, seq, .. }) = (slot, packet.transport) {
            let reuse = match self.slots.get_mut(s as usize).and_then(Option::as_mut) {
                Some(sess) => {
                    let from_orig = sess.orig == src;
                    match &mut sess.state {
                        ProtoState::Tcp(tcp) => {
                            let reuse = tcp.is_reuse(flags, seq, tcp.close_complete);
                            if reuse && tcp.is_simultaneous_open(flags, from_orig) {
                                tcp.note_simultaneous_open();
                            }
                            reuse
                        }
                        ProtoState::Datagram => false,
                    }
                }
                None => false,
            };
            if reuse {
                self.finish_slot(s, EndReason::PortReuse, emit);
                slot = None;
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => self.create(key, hash, src, dst, proto, packet, ts, emit),
        };

        self.touch_lru(slot);
        let config_close = nanos(self.config.tcp_close_delay);
        let Some(session) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return true;
        };
        let is_orig = session.orig == src;
        if let Transport::Tcp {
            header_cut: true, ..
        } = packet.transport
        {
            // Zeek opens the session for the ports but cannot read the segment.
            let deadline = self.deadline_of(slot, config_close);
            self.schedule(slot, deadline);
            return true;
        }
        if verdict == ChecksumVerdict::BadTransport {
            // The session exists but the packet is not counted; TCP and UDP note it in history.
            self.stats.bad_checksum_packets += 1;
            match &mut session.state {
                ProtoState::Tcp(tcp) => tcp.checksum_error(&mut session.history, is_orig),
                ProtoState::Datagram if session.proto == Proto::Udp => {
                    session.history.check(Mark::Corrupt, b'C', is_orig);
                }
                ProtoState::Datagram => {}
            }
            let deadline = self.deadline_of(slot, config_close);
            self.schedule(slot, deadline);
            return false;
        }
        let ip_len = u64::from(packet.ip_len);
        {
            let stats = if is_orig {
                &mut session.orig_stats
            } else {
                &mut session.resp_stats
            };
            stats.pkts += 1;
            stats.ip_bytes += ip_len;
        }
        note_packet_anomalies(session, usize::from(src_is_b), packet);
        let mut touch = true;
        let identity = SessionIdentity::of(session);
        match (&mut session.state, packet.transport) {
            (
                ProtoState::Tcp(tcp),
                Transport::Tcp {
                    flags,
                    seq,
                    ack,
                    window,
                    payload_len,
                    payload,
                    ..
                },
            ) => {
                let streams = &mut self.streams;
                let content = &mut session.content;
                let out = tcp.process(
                    &mut session.history,
                    is_orig,
                    Segment {
                        flags,
                        seq,
                        ack,
                        window,
                        len: payload_len,
                        payload,
                    },
                    &mut |d| {
                        if let Some(classifier) = content.as_mut().filter(|c| c.wants_more()) {
                            // The classifier names directions by the roles it was created with.
                            classifier.on_stream(d.from_orig != d.flipped, d.bytes);
                        }
                        send_to(streams, &identity, d)
                    },
                );
                if out.flipped {
                    std::mem::swap(&mut session.orig, &mut session.resp);
                    std::mem::swap(&mut session.orig_stats, &mut session.resp_stats);
                }
                touch = out.touch;
                if tcp.close_complete && session.closed_at.is_none() {
                    session.closed_at = Some(if touch { ts } else { session.last });
                }
                if tcp.half_closed && session.half_closed_at.is_none() {
                    session.half_closed_at = Some(ts);
                }
            }
            (
                _,
                Transport::Udp {
                    payload_len,
                    payload,
                    ..
                },
            ) => {
                // One data letter per direction: D for the originator, d for the responder.
                session.history.check(Mark::Data, b'D', is_orig);
                let stats = if is_orig {
                    &mut session.orig_stats
                } else {
                    &mut session.resp_stats
                };
                stats.bytes += u64::from(payload_len);
                if let Some(classifier) = session.content.as_mut().filter(|c| c.wants_more()) {
                    classifier.on_datagram(is_orig, payload);
                    // The first datagram was an answer (a DNS response, an NTP server reply):
                    // as Zeek's analysers do, the client becomes the originator. Never a
                    // multicast or broadcast group: an announcement to one has no client.
                    if session.orig_stats.pkts == 1
                        && session.resp_stats.pkts == 0
                        && classifier.orig_is_server()
                        && !is_group(session.resp.addr)
                    {
                        classifier.flip_roles();
                        std::mem::swap(&mut session.orig, &mut session.resp);
                        std::mem::swap(&mut session.orig_stats, &mut session.resp_stats);
                        session.history.note_flip();
                    }
                }
            }
            (_, Transport::Icmp { payload_len, .. }) => {
                let stats = if is_orig {
                    &mut session.orig_stats
                } else {
                    &mut session.resp_stats
                };
                stats.bytes += u64::from(payload_len);
            }
            _ => {}
        }
        if touch && ts > session.last {
            session.last = ts;
        }
        let deadline = self.deadline_of(slot, config_close);
        self.schedule(slot, deadline);
        if let Some(quoted) = packet.transport.icmp_error_quote() {
            self.tie_icmp_error(slot, quoted, packet.depth);
        }
        true
    }

    /// Ties an ICMP error session and the session whose packet it quotes, both ways.
    fn tie_icmp_error(&mut self, icmp_slot: u32, quoted: decode::QuotedFlow, depth: u8) {
        let src = Endpoint {
            addr: quoted.src,
            port: quoted.src_port,
        };
        let dst = Endpoint {
            addr: quoted.dst,
            port: quoted.dst_port,
        };
        let (key, _) = FlowKey::new(src, dst, quoted.protocol, depth, false);
        let Some(quoted_slot) = self.lookup(&key, self.hasher.hash_one(key)) else {
            return;
        };
        if quoted_slot == icmp_slot {
            return;
        }
        let (Some(icmp_uid), Some(quoted_uid)) = (
            self.session(icmp_slot).map(Session::uid),
            self.session(quoted_slot).map(Session::uid),
        ) else {
            return;
        };
        if let Some(s) = self
            .slots
            .get_mut(icmp_slot as usize)
            .and_then(Option::as_mut)
        {
            s.related.get_or_insert(quoted_uid);
        }
        if let Some(s) = self
            .slots
            .get_mut(quoted_slot as usize)
            .and_then(Option::as_mut)
        {
            s.related.get_or_insert(icmp_uid);
        }
    }

    /// Whether [`Self::process`] turns `packet` away for a bad checksum (it returns false
    /// then), decided from the packet alone: with sessions on several threads, the reading
    /// thread must know it to leave the layers inside such a packet out.
    pub fn rejects_for_checksum(verify_checksums: bool, packet: &IpPacket<'_>) -> bool {
        if !verify_checksums {
            return false;
        }
        match decode::verify_checksums(packet) {
            ChecksumVerdict::BadIpHeader => true,
            ChecksumVerdict::BadTransport => {
                let later_fragment = matches!(packet.transport, Transport::Other { .. })
                    && packet.fragment.is_some_and(|f| f.offset > 0);
                let header_cut = matches!(
                    packet.transport,
                    Transport::Tcp {
                        header_cut: true,
                        ..
                    }
                );
                !later_fragment && !header_cut
            }
            _ => false,
        }
    }

    /// Moves the clock to `ts` (never back), ending the sessions whose timers expired by then.
    /// A worker that tracks only some of the capture's sessions calls it with the capture's
    /// time, so its sessions expire when they would have in one table.
    pub fn advance_to(&mut self, ts: Timestamp, emit: &mut impl FnMut(SessionRecord)) {
        self.advance_time(ts, emit);
    }

    /// Ends every live session (end of capture), as Zeek does when it terminates.
    pub fn finish(&mut self, emit: &mut impl FnMut(SessionRecord)) {
        let mut slot = self.lru_head;
        while slot != NIL {
            let next = self.lru.get(slot as usize).map_or(NIL, |l| l.next);
            self.finish_slot(slot, EndReason::CaptureEnd, emit);
            slot = next;
        }
        self.timers.clear();
    }

    fn session(&self, slot: u32) -> Option<&Session> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The slot of the live session with `key` (whose hash is `hash`).
    fn lookup(&self, key: &FlowKey, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&s| {
                slots
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|session| session.key == *key)
            })
            .copied()
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        key: FlowKey,
        hash: u64,
        src: Endpoint,
        dst: Endpoint,
        proto: Proto,
        packet: &IpPacket<'_>,
        ts: Timestamp,
        emit: &mut impl FnMut(SessionRecord),
    ) -> u32 {
        if self.live >= self.config.max_sessions.max(1) {
            let victim = self.lru_head;
            if victim != NIL {
                self.finish_slot(victim, EndReason::Evicted, emit);
                self.stats.evicted += 1;
            }
        }
        let mut history = History::default();
        let (mut orig, mut resp) = (src, dst);
        let flip = match packet.transport {
            Transport::Tcp { flags, .. } if !flags.syn() || flags.ack() => {
                let server = &self.config.server_ports;
                if server.contains(6, src.port) {
                    if server.contains(6, dst.port) {
                        !flags.syn() && src.port < dst.port
                    } else {
                        true
                    }
                } else {
                    false
                }
            }
            Transport::Udp { .. } => {
                let server = &self.config.server_ports;
                server.contains(17, src.port) && !server.contains(17, dst.port)
            }
            _ => false,
        };
        // Zeek never makes a broadcast address the originator.
        if flip && !is_broadcast(dst.addr) {
            std::mem::swap(&mut orig, &mut resp);
            history.push_raw(b'^');
        }
        let state = match proto {
            Proto::Tcp => {
                let mut tcp = TcpSession::default();
                if let Some(out) = &self.streams {
                    tcp.keep_content(out.limit_bytes);
                } else if self.config.classify_content {
                    // Enough to hold a protocol's opening messages when they arrive out of order.
                    tcp.keep_content(self.config.content_reorder_bytes);
                }
                ProtoState::Tcp(Box::new(tcp))
            }
            _ => ProtoState::Datagram,
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.lru.push(LruLinks {
                    prev: NIL,
                    next: NIL,
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(NIL)
            }
        };
        let session = Session {
            key,
            hash,
            orig,
            resp,
            proto,
            ip_proto: packet.protocol,
            start: ts,
            last: ts,
            orig_stats: DirectionStats::default(),
            resp_stats: DirectionStats::default(),
            history,
            state,
            closed_at: None,
            half_closed_at: None,
            related: None,
            content: (self.config.classify_content && matches!(proto, Proto::Tcp | Proto::Udp))
                .then(|| ContentClassifier::new(proto, orig.port, resp.port)),
            first_ttl: [None, None],
            anomalies: Anomalies::default(),
        };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(session);
        }
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&s| {
            slots
                .get(s as usize)
                .and_then(Option::as_ref)
                .map_or(0, |session| session.hash)
        });
        self.lru_push_tail(slot);
        self.live += 1;
        self.stats.sessions_started += 1;
        self.stats.peak_live = self.stats.peak_live.max(self.live as u64);
        slot
    }

    /// When the session would end if no further packet came.
    fn deadline_of(&self, slot: u32, close_delay: u64) -> i64 {
        let Some(s) = self.session(slot) else {
            return i64::MAX;
        };
        let inactivity = match s.proto {
            Proto::Tcp => self.config.tcp_inactivity,
            Proto::Udp => self.config.udp_inactivity,
            Proto::Icmp => self.config.icmp_inactivity,
            Proto::Other(_) => self.config.other_inactivity,
        };
        let mut deadline = s.last.add_nanos(nanos(inactivity));
        if s.proto == Proto::Udp && DNS_PORTS_UDP.contains(&s.resp.port) {
            // Zeek's DNS timer fires every dns_session_timeout from the first packet and ends
            // the session once it has been idle for that long less one second.
            let period = nanos(self.config.dns_session_timeout).max(1);
            let idle_needed = period.saturating_sub(1_000_000_000);
            let earliest = s.last.add_nanos(idle_needed);
            let ticks = earliest.nanos_since(s.start).div_ceil(period).max(1);
            deadline = deadline.min(s.start.add_nanos(ticks.saturating_mul(period)));
        }
        if let ProtoState::Tcp(tcp) = &s.state {
            if let Some(closed) = s.closed_at {
                let delay = if tcp.orig.state == super::tcp::EndpointState::Reset
                    || tcp.resp.state == super::tcp::EndpointState::Reset
                {
                    nanos(self.config.tcp_reset_delay)
                } else {
                    close_delay
                };
                deadline = deadline.min(closed.add_nanos(delay));
            } else if tcp.is_unanswered_attempt() {
                deadline = deadline.min(s.start.add_nanos(nanos(TCP_ATTEMPT_DELAY)));
            } else if let Some(half) = s.half_closed_at
                && tcp.expire_check_removes()
            {
                // Zeek's expire timer fires every tcp_session_timer after the half close and
                // removes the session once it has been idle for tcp_connection_linger.
                let idle_until = s.last.add_nanos(nanos(TCP_CONNECTION_LINGER));
                let period = nanos(TCP_SESSION_TIMER).max(1);
                let since = idle_until.nanos_since(half);
                let ticks = since / period + 1;
                deadline = deadline.min(half.add_nanos(ticks.saturating_mul(period)));
            }
        }
        deadline.0
    }

    /// Sets the session's timer to `deadline` if that is earlier than its pending one; later
    /// deadlines are found lazily when the earlier timer fires.
    fn schedule(&mut self, slot: u32, deadline: i64) {
        self.timers.set_earlier(slot, deadline);
    }

    fn advance_time(&mut self, ts: Timestamp, emit: &mut impl FnMut(SessionRecord)) {
        if ts > self.now {
            self.now = ts;
        }
        let now = self.now.0;
        let close_delay = nanos(self.config.tcp_close_delay);
        self.timers.advance(now);
        let mut batch: [Option<DueTimer>; DUE_BATCH] = [None; DUE_BATCH];
        loop {
            let mut taken = 0;
            for place in &mut batch {
                *place = self.timers.pop_due_timer(now);
                if place.is_none() {
                    break;
                }
                taken += 1;
            }
            if taken == 0 {
                return;
            }
            let taken_now = batch.get(..taken).unwrap_or_default();
            // Ending a session reads its slot and its classifier, long cold: ask for all of the
            // batch's first, so that the misses overlap.
            for timer in taken_now.iter().flatten() {
                if let Some(entry) = self.slots.get(timer.slot as usize) {
                    prefetch(entry);
                }
            }
            for timer in taken_now.iter().flatten() {
                if let Some(session) = self.session(timer.slot) {
                    if let Some(content) = &session.content {
                        content.prefetch();
                    }
                    if let ProtoState::Tcp(tcp) = &session.state {
                        prefetch(&**tcp);
                    }
                }
            }
            // Then the text their rows are written from, now that the findings are on the way.
            for timer in taken_now.iter().flatten() {
                if let Some(content) = self.session(timer.slot).and_then(|s| s.content.as_ref()) {
                    content.prefetch_text();
                }
            }
            // Each timer is handled as if taken alone: one handled before it may have changed it.
            for timer in taken_now.iter().flatten() {
                if self.timers.still_due(*timer) {
                    self.on_timer(timer.slot, now, close_delay, emit);
                }
            }
            if taken < DUE_BATCH {
                return;
            }
        }
    }

    /// A session's timer fired: it ends if nothing came since that moved its deadline on.
    fn on_timer(
        &mut self,
        slot: u32,
        now: i64,
        close_delay: u64,
        emit: &mut impl FnMut(SessionRecord),
    ) {
        let Some(s) = self.session(slot) else {
            self.timers.cancel(slot);
            return;
        };
        let current = self.deadline_of(slot, close_delay);
        if current <= now {
            let reason = match s.state {
                ProtoState::Tcp(ref tcp) if s.closed_at.is_some() || tcp.expire_check_removes() => {
                    EndReason::Closed
                }
                _ => EndReason::Inactive,
            };
            self.finish_slot(slot, reason, emit);
        } else {
            self.timers.set(slot, current);
        }
    }

    fn finish_slot(&mut self, slot: u32, reason: EndReason, emit: &mut impl FnMut(SessionRecord)) {
        self.lru_unlink(slot);
        // The session is read where it lies and dropped there: it is large, moving it costs.
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(session) = entry.as_mut() else {
            return;
        };
        let identity = SessionIdentity::of(session);
        if let ProtoState::Tcp(tcp) = &mut session.state {
            let content = &mut session.content;
            let mut streams = self.streams.as_mut();
            let (orig, resp) = tcp.finish_streams(&mut |d| {
                if let Some(classifier) = content.as_mut().filter(|c| c.wants_more()) {
                    classifier.on_stream(d.from_orig, d.bytes);
                }
                if let Some(out) = streams.as_mut() {
                    let stream = identity.stream(d.from_orig, false);
                    out.sink.data(&stream, d.rel_seq.saturating_sub(1), d.bytes);
                }
            });
            if let Some(out) = streams {
                out.sink.end(&identity.stream(true, false), &orig);
                out.sink.end(&identity.stream(false, false), &resp);
            }
        }
        let content = session.content.take().and_then(ContentClassifier::finish);
        let mut record = record_of(session, reason);
        record.content = content;
        let hash = session.hash;
        *entry = None;
        self.timers.cancel(slot);
        self.free.push(slot);
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.live = self.live.saturating_sub(1);
        emit(record);
    }

    fn touch_lru(&mut self, slot: u32) {
        if self.lru_tail != slot {
            self.lru_unlink(slot);
            self.lru_push_tail(slot);
        }
    }

    fn lru_unlink(&mut self, slot: u32) {
        let Some(links) = self.lru.get_mut(slot as usize) else {
            return;
        };
        let LruLinks { prev, next } = *links;
        *links = LruLinks {
            prev: NIL,
            next: NIL,
        };
        if prev != NIL {
            if let Some(p) = self.lru.get_mut(prev as usize) {
                p.next = next;
            }
        } else if self.lru_head == slot {
            self.lru_head = next;
        }
        if next != NIL {
            if let Some(n) = self.lru.get_mut(next as usize) {
                n.prev = prev;
            }
        } else if self.lru_tail == slot {
            self.lru_tail = prev;
        }
    }

    fn lru_push_tail(&mut self, slot: u32) {
        let tail = self.lru_tail;
        if let Some(links) = self.lru.get_mut(slot as usize) {
            *links = LruLinks {
                prev: tail,
                next: NIL,
            };
        }
        if tail != NIL {
            if let Some(t) = self.lru.get_mut(tail as usize) {
                t.next = slot;
            }
        } else {
            self.lru_head = slot;
        }
        self.lru_tail = slot;
    }
}
/// Counts a packet's TTL change within its direction (`side` 0 is the key's `a` side) and its fragments' overlaps.
fn note_packet_anomalies(session: &mut Session, side: usize, packet: &IpPacket<'_>) {
    if let Some(first) = session.first_ttl.get_mut(side)
        && *first.get_or_insert(packet.ttl) != packet.ttl
    {
        session.anomalies.ttl_change = session.anomalies.ttl_change.saturating_add(1);
    }
    if let Some(notes) = packet.reassembly {
        session.anomalies.add(&Anomalies {
            fragment_overlap: notes.overlap_same,
            fragment_inconsistency: notes.overlap_different,
            fragment_size_inconsistency: notes.size_inconsistent,
            fragment_ttl_change: notes.ttl_changes,
            ..Anomalies::default()
        });
    }
}

fn record_of(s: &Session, reason: EndReason) -> SessionRecord {
    let mut orig_stats = s.orig_stats;
    let mut resp_stats = s.resp_stats;
    let mut anomalies = s.anomalies;
    let (conn_state, missed_bytes) = match &s.state {
        ProtoState::Tcp(tcp) => {
            anomalies.add(&tcp.anomalies());
            orig_stats.bytes = tcp.orig.size(tcp.resp.state);
            resp_stats.bytes = tcp.resp.size(tcp.orig.state);
            (
                tcp.conn_state(&s.history),
                tcp.orig.missed_bytes.saturating_add(tcp.resp.missed_bytes),
            )
        }
        ProtoState::Datagram => {
            let state = match s.proto {
                Proto::Udp => match (orig_stats.pkts > 0, resp_stats.pkts > 0) {
                    (true, true) => ConnState::SF,
                    (true, false) => ConnState::S0,
                    (false, true) => ConnState::SHR,
                    (false, false) => ConnState::OTH,
                },
                _ => ConnState::OTH,
            };
            (state, 0)
        }
    };
    SessionRecord {
        uid: s.uid(),
        start: s.start,
        last: s.last,
        orig: s.orig,
        resp: s.resp,
        proto: s.proto,
        ip_proto: s.ip_proto,
        orig_stats,
        resp_stats,
        conn_state,
        history: s.history,
        missed_bytes,
        service: None,
        service_evidence: ServiceEvidence::None,
        end_reason: reason,
        tunnel_depth: s.key.depth,
        related_uid: s.related,
        content: None,
        anomalies,
    }
}

impl Session {
    fn uid(&self) -> Uid {
        Uid::derive(self.start, self.proto, self.orig, self.resp, self.key.depth)
    }
}
