//! The capture summary: what was read, what was skipped and why, and what sessions it made.
//!
//! Owns every counter the terminal summary shows. Promises: O(1) work and no allocation per
//! packet (per-file link types are a short list), memory independent of capture size (top
//! talkers use a bounded space-saving table), and [`CaptureSummary::merge`] so that summaries
//! built by separate workers add up to the one a single worker would have built (except the
//! documented bounds of top talkers and `peak_live`).

use crate::capture::{LinkType, RawPacket, Timestamp};
use crate::decode::{FragmentStats, SkipReason};
use crate::session::{Anomalies, ConnState, EndReason, Proto, SessionRecord, TrackerStats};
use ahash::AHashMap;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// Distinct link types remembered per file (pcapng files can mix interfaces).
const MAX_LINK_TYPES_PER_FILE: usize = 8;

/// Hosts the top-talkers table tracks.
pub const DEFAULT_TOP_TALKERS_CAPACITY: usize = 1024;

/// Every end reason, in the order the summary lists them.
pub const END_REASONS: [EndReason; 5] = [
    EndReason::Closed,
    EndReason::Inactive,
    EndReason::CaptureEnd,
    EndReason::Evicted,
    EndReason::PortReuse,
];

fn end_reason_slot(reason: EndReason) -> usize {
    match reason {
        EndReason::Closed => 0,
        EndReason::Inactive => 1,
        EndReason::CaptureEnd => 2,
        EndReason::Evicted => 3,
        EndReason::PortReuse => 4,
    }
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSummary {
    pub name: String,
    /// Packets read from it (the reader's count once the file ended).
    pub packets: u64,
    /// Earliest and latest packet timestamps (not necessarily first and last in file order).
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Distinct link types, in the order first seen (at most 8 kept).
    pub link_types: Vec<LinkType>,
    /// Why reading stopped early, if it did.
    pub error: Option<String>,
}

/// Sessions and their traffic (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub sessions: u64,
    pub pkts: u64,
    /// Sum of IP total lengths, both directions.
    pub ip_bytes: u64,
}

impl Traffic {
    fn of(record: &SessionRecord) -> Self {
        Traffic {
            sessions: 1,
            pkts: record
                .orig_stats
                .pkts
                .saturating_add(record.resp_stats.pkts),
            ip_bytes: record
                .orig_stats
                .ip_bytes
                .saturating_add(record.resp_stats.ip_bytes),
        }
    }

    fn add(&mut self, other: Traffic) {
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.pkts = self.pkts.saturating_add(other.pkts);
        self.ip_bytes = self.ip_bytes.saturating_add(other.ip_bytes);
    }
}

/// Everything the terminal summary reports; see the module documentation.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    pub files: Vec<FileSummary>,
    pub packets_read: u64,
    /// Packets that yielded at least one IP layer.
    pub packets_decoded: u64,
    /// Frames (or inner layers) skipped, indexed by [`SkipReason::index`].
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Sum of on-the-wire frame lengths.
    pub wire_bytes: u64,
    /// Sum of captured frame lengths (less than `wire_bytes` when a snaplen cut frames).
    pub captured_bytes: u64,
    /// Frames whose captured length is shorter than their wire length.
    pub packets_cut_by_snaplen: u64,
    /// Earliest and latest packet timestamps over all files.
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Finished sessions.
    pub sessions: Traffic,
    pub by_proto: BTreeMap<Proto, Traffic>,
    /// Sessions per state, indexed by position in [`ConnState::ALL`].
    pub by_state: [u64; ConnState::ALL.len()],
    /// Sessions with a known service, per service name.
    pub by_service: AHashMap<&'static str, Traffic>,
    /// Sessions per end reason, indexed by position in [`END_REASONS`].
    pub by_end_reason: [u64; END_REASONS.len()],
    pub talkers: TopTalkers,
    pub tracker: TrackerStats,
    /// IP fragment reassembly.
    pub fragments: FragmentStats,
    /// Every session's `anomalies` added up, and how many sessions had any.
    pub anomalies: Anomalies,
    pub sessions_with_anomalies: u64,
    /// How the inputs were gathered (set by the caller that expanded them; `None` otherwise).
    pub capture_set: Option<CaptureSetInfo>,
}

/// How the command line's inputs became one capture: what the capture set section reports
/// besides the files themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureSetInfo {
    /// Directories and glob patterns among the inputs.
    pub directories: u64,
    pub patterns: u64,
    /// Files in those directories and matches that are not captures (by magic number).
    pub skipped_files: u64,
    /// A pause longer than this between one file's last packet and the next file's first is
    /// a gap.
    pub gap_threshold: Duration,
}

/// Where two consecutive files (in reading order, files without packets left out) do not
/// join up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBoundary {
    /// Indexes into [`CaptureSummary::files`].
    pub before: usize,
    pub after: usize,
    pub kind: BoundaryKind,
    /// Length of the gap, or of the overlap.
    pub nanos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundaryKind {
    /// The next file starts more than the threshold after the previous one ends.
    Gap,
    /// The next file starts before the previous one ends.
    Overlap,
}

impl Default for CaptureSummary {
    fn default() -> Self {
        CaptureSummary::new()
    }
}

impl CaptureSummary {
    pub fn new() -> Self {
        CaptureSummary::with_top_talkers_capacity(DEFAULT_TOP_TALKERS_CAPACITY)
    }

    pub fn with_top_talkers_capacity(capacity: usize) -> Self {
        CaptureSummary {
            files: Vec::new(),
            packets_read: 0,
            packets_decoded: 0,
            skipped: [0; SkipReason::ALL.len()],
            wire_bytes: 0,
            captured_bytes: 0,
            packets_cut_by_snaplen: 0,
            first_ts: None,
            last_ts: None,
            sessions: Traffic::default(),
            by_proto: BTreeMap::new(),
            by_state: [0; ConnState::ALL.len()],
            by_service: AHashMap::new(),
            by_end_reason: [0; END_REASONS.len()],
            talkers: TopTalkers::new(capacity),
            tracker: TrackerStats::default(),
            fragments: FragmentStats::default(),
            anomalies: Anomalies::default(),
            sessions_with_anomalies: 0,
            capture_set: None,
        }
    }

    /// A new input file starts; following packets count towards it.
    pub fn on_file_start(&mut self, name: &str) {
        self.files.push(FileSummary {
            name: name.to_string(),
            ..FileSummary::default()
        });
    }

    /// One frame read (decoded or not).
    pub fn on_packet(&mut self, packet: &RawPacket<'_>) {
        let ts = packet.ts;
        let captured = packet.data.len() as u64;
        let wire = u64::from(packet.wire_len);
        self.packets_read = self.packets_read.saturating_add(1);
        self.wire_bytes = self.wire_bytes.saturating_add(wire);
        self.captured_bytes = self.captured_bytes.saturating_add(captured);
        if captured < wire {
            self.packets_cut_by_snaplen = self.packets_cut_by_snaplen.saturating_add(1);
        }
        widen(&mut self.first_ts, &mut self.last_ts, ts);
        if let Some(file) = self.files.last_mut() {
            file.packets = file.packets.saturating_add(1);
            widen(&mut file.first_ts, &mut file.last_ts, ts);
            if file.link_types.last() != Some(&packet.link)
                && !file.link_types.contains(&packet.link)
                && file.link_types.len() < MAX_LINK_TYPES_PER_FILE
            {
                file.link_types.push(packet.link);
            }
        }
    }

    /// The last frame passed to [`Self::on_packet`] yielded at least one IP layer.
    pub fn on_decoded(&mut self) {
        self.packets_decoded = self.packets_decoded.saturating_add(1);
    }

    pub fn on_skip(&mut self, reason: SkipReason) {
        if let Some(n) = self.skipped.get_mut(reason.index()) {
            *n = n.saturating_add(1);
        }
    }

    /// The current file ended after `packets` packets; `error` says why if it stopped early.
    /// Counts what decoding one frame came to.
    pub fn on_frame(&mut self, outcome: crate::pipeline::FrameOutcome) {
        if outcome.decoded {
            self.on_decoded();
        }
        if let Some(reason) = outcome.skipped {
            self.on_skip(reason);
        }
    }

    pub fn on_file_end(&mut self, packets: u64, error: Option<String>) {
        if let Some(file) = self.files.last_mut() {
            file.packets = packets;
            file.error = error;
        }
    }

    pub fn on_session(&mut self, record: &SessionRecord) {
        if !record.anomalies.is_empty() {
            self.anomalies.add(&record.anomalies);
            self.sessions_with_anomalies += 1;
        }
        let traffic = Traffic::of(record);
        self.sessions.add(traffic);
        self.by_proto.entry(record.proto).or_default().add(traffic);
        if let Some(n) = self.by_state.get_mut(record.conn_state as usize) {
            *n = n.saturating_add(1);
        }
        if let Some(n) = self
            .by_end_reason
            .get_mut(end_reason_slot(record.end_reason))
        {
            *n = n.saturating_add(1);
        }
        if let Some(service) = record.service {
            self.by_service.entry(service).or_default().add(traffic);
        }
        self.talkers.add(record.orig.addr, traffic.ip_bytes);
        if record.resp.addr != record.orig.addr {
            self.talkers.add(record.resp.addr, traffic.ip_bytes);
        }
    }

    pub fn set_tracker_stats(&mut self, stats: TrackerStats) {
        self.tracker = stats;
    }

    /// Frames skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    pub fn skipped_for(&self, reason: SkipReason) -> u64 {
        self.skipped.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn sessions_in_state(&self, state: ConnState) -> u64 {
        self.by_state.get(state as usize).copied().unwrap_or(0)
    }

    pub fn sessions_ended_by(&self, reason: EndReason) -> u64 {
        self.by_end_reason
            .get(end_reason_slot(reason))
            .copied()
            .unwrap_or(0)
    }

    /// Sessions no classifier named.
    pub fn sessions_without_service(&self) -> u64 {
        let named = self
            .by_service
            .values()
            .fold(0u64, |a, t| a.saturating_add(t.sessions));
        self.sessions.sessions.saturating_sub(named)
    }

    /// Gaps (longer than `gap_threshold`) and overlaps between consecutive files, from each
    /// file's earliest and latest packet times.
    pub fn file_boundaries(&self, gap_threshold: Duration) -> Vec<FileBoundary> {
        let threshold = u64::try_from(gap_threshold.as_nanos()).unwrap_or(u64::MAX);
        let mut boundaries = Vec::new();
        let mut previous: Option<(usize, Timestamp)> = None;
        for (index, file) in self.files.iter().enumerate() {
            let (Some(first), Some(last)) = (file.first_ts, file.last_ts) else {
                continue;
            };
            if let Some((before, previous_last)) = previous {
                let boundary = |kind, nanos| FileBoundary {
                    before,
                    after: index,
                    kind,
                    nanos,
                };
                if first < previous_last {
                    boundaries.push(boundary(
                        BoundaryKind::Overlap,
                        previous_last.nanos_since(first),
                    ));
                } else if first.nanos_since(previous_last) > threshold {
                    boundaries.push(boundary(
                        BoundaryKind::Gap,
                        first.nanos_since(previous_last),
                    ));
                }
            }
            previous = Some((index, last));
        }
        boundaries
    }

    /// Capture span in nanoseconds (0 before any packet).
    pub fn span_nanos(&self) -> u64 {
        match (self.first_ts, self.last_ts) {
            (Some(first), Some(last)) => last.nanos_since(first),
            _ => 0,
        }
    }

    /// Files whose reading stopped on an error.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter_map(|f| f.error.as_deref().map(|e| (f.name.as_str(), e)))
    }

    /// The `n` services with most sessions (ties by name).
    pub fn top_services_by_sessions(&self, n: usize) -> Vec<(&'static str, Traffic)> {
        self.top_services(n, |t| t.sessions)
    }

    /// The `n` services with most IP bytes (ties by name).
    pub fn top_services_by_bytes(&self, n: usize) -> Vec<(&'static str, Traffic)> {
        self.top_services(n, |t| t.ip_bytes)
    }

    fn top_services(
        &self,
        n: usize,
        weight: impl Fn(&Traffic) -> u64,
    ) -> Vec<(&'static str, Traffic)> {
        let mut all: Vec<(&'static str, Traffic)> =
            self.by_service.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_by(|a, b| weight(&b.1).cmp(&weight(&a.1)).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// Adds `other` (built from other packets or files) into `self`. Files are appended in
    /// order; tracker counters add up, and `peak_live` becomes the sum of both peaks (an
    /// upper bound: two tables' peaks need not coincide).
    pub fn merge(&mut self, other: CaptureSummary) {
        self.files.extend(other.files);
        if self.capture_set.is_none() {
            self.capture_set = other.capture_set;
        }
        self.packets_read = self.packets_read.saturating_add(other.packets_read);
        self.packets_decoded = self.packets_decoded.saturating_add(other.packets_decoded);
        for (mine, theirs) in self.skipped.iter_mut().zip(other.skipped) {
            *mine = mine.saturating_add(theirs);
        }
        self.wire_bytes = self.wire_bytes.saturating_add(other.wire_bytes);
        self.captured_bytes = self.captured_bytes.saturating_add(other.captured_bytes);
        self.packets_cut_by_snaplen = self
            .packets_cut_by_snaplen
            .saturating_add(other.packets_cut_by_snaplen);
        if let Some(ts) = other.first_ts {
            widen(&mut self.first_ts, &mut self.last_ts, ts);
        }
        if let Some(ts) = other.last_ts {
            widen(&mut self.first_ts, &mut self.last_ts, ts);
        }
        self.sessions.add(other.sessions);
        for (proto, t) in other.by_proto {
            self.by_proto.entry(proto).or_default().add(t);
        }
        for (mine, theirs) in self.by_state.iter_mut().zip(other.by_state) {
            *mine = mine.saturating_add(theirs);
        }
        for (service, t) in other.by_service {
            self.by_service.entry(service).or_default().add(t);
        }
        for (mine, theirs) in self.by_end_reason.iter_mut().zip(other.by_end_reason) {
            *mine = mine.saturating_add(theirs);
        }
        self.talkers.merge(other.talkers);
        self.fragments.merge(&other.fragments);
        self.anomalies.add(&other.anomalies);
        self.sessions_with_anomalies += other.sessions_with_anomalies;
        let (a, b) = (self.tracker, other.tracker);
        self.tracker = TrackerStats {
            sessions_started: a.sessions_started.saturating_add(b.sessions_started),
            evicted: a.evicted.saturating_add(b.evicted),
            peak_live: a.peak_live.saturating_add(b.peak_live),
            unattributed_packets: a
                .unattributed_packets
                .saturating_add(b.unattributed_packets),
            bad_checksum_packets: a
                .bad_checksum_packets
                .saturating_add(b.bad_checksum_packets),
        };
    }
}

fn widen(first: &mut Option<Timestamp>, last: &mut Option<Timestamp>, ts: Timestamp) {
    if first.is_none_or(|f| ts < f) {
        *first = Some(ts);
    }
    if last.is_none_or(|l| ts > l) {
        *last = Some(ts);
    }
}

/// Sorts hosts heaviest first, equal bytes by the smaller address (the order of
/// [`TopTalkers::top`]).
fn heaviest_first(hosts: &mut [(IpAddr, Talker)]) {
    hosts.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then_with(|| a.0.cmp(&b.0)));
}

/// A host's share of the traffic, as the top-talkers table estimates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Talker {
    /// Estimated IP bytes of the sessions the host took part in (sent plus received). Never
    /// below the true value; at most `error` above it.
    pub bytes: u64,
    /// Overestimate bound of `bytes` (0 when the host was tracked from its first session).
    pub error: u64,
    /// Sessions counted since the host (last) entered the table: a lower bound.
    pub sessions: u64,
}

/// Heaviest hosts by bytes in bounded memory: the weighted space-saving algorithm (Metwally,
/// Agrawal, El Abbadi 2005). It tracks at most `capacity` hosts; a new host arriving when the
/// table is full replaces the lightest one and inherits its count as `error`. Every host whose
/// true bytes exceed total/capacity is guaranteed to be in the table, and each estimate is
/// within its `error` of the truth. One hash update per session until the table first fills
/// (most captures never fill it); O(log capacity) from then on.
#[derive(Debug, Clone)]
pub struct TopTalkers {
    capacity: usize,
    hosts: AHashMap<IpAddr, Talker>,
    /// (bytes, address reversed): the first entry is the lightest, ties broken by the larger
    /// address, so listing from the end gives heaviest first, ties by smaller address. Kept
    /// only once the table has been full (`ordered`): before that no host is ever evicted, so
    /// nothing needs the lightest, and the order is made when asked for.
    by_bytes: BTreeSet<(u64, Reverse<IpAddr>)>,
    ordered: bool,
}

impl TopTalkers {
    pub fn new(capacity: usize) -> Self {
        TopTalkers {
            capacity: capacity.max(1),
            hosts: AHashMap::new(),
            by_bytes: BTreeSet::new(),
            ordered: false,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hosts currently tracked.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Counts one session of `bytes` for `addr`.
    pub fn add(&mut self, addr: IpAddr, bytes: u64) {
        if let Some(t) = self.hosts.get_mut(&addr) {
            if self.ordered {
                self.by_bytes.remove(&(t.bytes, Reverse(addr)));
            }
            t.bytes = t.bytes.saturating_add(bytes);
            t.sessions = t.sessions.saturating_add(1);
            if self.ordered {
                self.by_bytes.insert((t.bytes, Reverse(addr)));
            }
            return;
        }
        let mut talker = Talker {
            bytes,
            error: 0,
            sessions: 1,
        };
        if self.hosts.len() >= self.capacity {
            if !self.ordered {
                self.by_bytes = self
                    .hosts
                    .iter()
                    .map(|(a, t)| (t.bytes, Reverse(*a)))
                    .collect();
                self.ordered = true;
            }
            let Some((min_bytes, Reverse(min_addr))) = self.by_bytes.pop_first() else {
                return;
            };
            self.hosts.remove(&min_addr);
            talker.bytes = min_bytes.saturating_add(bytes);
            talker.error = min_bytes;
        }
        self.hosts.insert(addr, talker);
        if self.ordered {
            self.by_bytes.insert((talker.bytes, Reverse(addr)));
        }
    }

    /// The `n` heaviest hosts, heaviest first (ties by address).
    pub fn top(&self, n: usize) -> Vec<(IpAddr, Talker)> {
        if self.ordered {
            return self
                .by_bytes
                .iter()
                .rev()
                .take(n)
                .filter_map(|(_, Reverse(addr))| self.hosts.get(addr).map(|t| (*addr, *t)))
                .collect();
        }
        let mut all: Vec<(IpAddr, Talker)> = self.hosts.iter().map(|(a, t)| (*a, *t)).collect();
        heaviest_first(&mut all);
        all.truncate(n);
        all
    }

    fn floor(&self) -> u64 {
        if self.hosts.len() < self.capacity {
            0
        } else if self.ordered {
            self.by_bytes.first().map_or(0, |(b, _)| *b)
        } else {
            self.hosts.values().map(|t| t.bytes).min().unwrap_or(0)
        }
    }

    /// Combines two tables (mergeable summaries, Agarwal et al. 2012): a host missing from a
    /// full table may have had up to that table's smallest count there, which is added to its
    /// estimate and error; then the heaviest `capacity` hosts are kept.
    pub fn merge(&mut self, other: TopTalkers) {
        let (my_floor, their_floor) = (self.floor(), other.floor());
        let mut union: AHashMap<IpAddr, Talker> =
            AHashMap::with_capacity(self.hosts.len() + other.hosts.len());
        for (addr, t) in self.hosts.drain() {
            let extra = if other.hosts.contains_key(&addr) {
                0
            } else {
                their_floor
            };
            union.insert(
                addr,
                Talker {
                    bytes: t.bytes.saturating_add(extra),
                    error: t.error.saturating_add(extra),
                    ..t
                },
            );
        }
        for (addr, t) in other.hosts {
            match union.get_mut(&addr) {
                Some(u) => {
                    u.bytes = u.bytes.saturating_add(t.bytes);
                    u.error = u.error.saturating_add(t.error);
                    u.sessions = u.sessions.saturating_add(t.sessions);
                }
                None => {
                    let t = Talker {
                        bytes: t.bytes.saturating_add(my_floor),
                        error: t.error.saturating_add(my_floor),
                        ..t
                    };
                    union.insert(addr, t);
                }
            }
        }
        let mut all: Vec<(IpAddr, Talker)> = union.into_iter().collect();
        heaviest_first(&mut all);
        all.truncate(self.capacity);
        self.by_bytes = all.iter().map(|(a, t)| (t.bytes, Reverse(*a))).collect();
        self.ordered = true;
        self.hosts = all.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{DirectionStats, Endpoint, History, ServiceEvidence, Uid};

    fn packet(ts_secs: i64, captured: &[u8], wire_len: u32, link: LinkType) -> RawPacket<'_> {
        RawPacket {
            number: 1,
            ts: Timestamp::from_secs_nanos(ts_secs, 0),
            link,
            data: captured,
            wire_len,
        }
    }

    fn session(
        orig: &str,
        resp: &str,
        proto: Proto,
        state: ConnState,
        service: Option<&'static str>,
        bytes: (u64, u64),
    ) -> SessionRecord {
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::from_secs_nanos(100, 0),
            last: Timestamp::from_secs_nanos(101, 0),
            orig: Endpoint {
                addr: orig.parse().unwrap(),
                port: 1234,
            },
            resp: Endpoint {
                addr: resp.parse().unwrap(),
                port: 80,
            },
            proto,
            ip_proto: 6,
            orig_stats: DirectionStats {
                pkts: 2,
                ip_bytes: bytes.0,
                bytes: 0,
            },
            resp_stats: DirectionStats {
                pkts: 3,
                ip_bytes: bytes.1,
                bytes: 0,
            },
            conn_state: state,
            history: History::default(),
            missed_bytes: 0,
            service,
            service_evidence: ServiceEvidence::Port,
            end_reason: EndReason::Inactive,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    #[test]
    fn gaps_and_overlaps_between_consecutive_files() {
        let mut s = CaptureSummary::new();
        let link = LinkType::ETHERNET;
        // a: 0..100 s; b: 90..200 s (overlaps a by 10 s); empty c; d: 300..310 s (gap of
        // 100 s after b, c left out); e: 330 s (20 s after d: under the threshold).
        for (name, times) in [
            ("a", &[0, 100][..]),
            ("b", &[90, 200][..]),
            ("c", &[][..]),
            ("d", &[310, 300][..]),
            ("e", &[330][..]),
        ] {
            s.on_file_start(name);
            for &t in times {
                s.on_packet(&packet(t, &[0; 4], 4, link));
            }
            s.on_file_end(times.len() as u64, None);
        }
        let secs = |n: u64| n * 1_000_000_000;
        assert_eq!(
            s.file_boundaries(Duration::from_secs(60)),
            vec![
                FileBoundary {
                    before: 0,
                    after: 1,
                    kind: BoundaryKind::Overlap,
                    nanos: secs(10)
                },
                FileBoundary {
                    before: 1,
                    after: 3,
                    kind: BoundaryKind::Gap,
                    nanos: secs(100)
                },
            ]
        );
        assert_eq!(s.file_boundaries(Duration::from_secs(100)).len(), 1);
        assert_eq!(s.file_boundaries(Duration::from_secs(10)).len(), 3);
    }

    #[test]
    fn packets_files_and_skips() {
        let mut s = CaptureSummary::new();
        let frame = [0u8; 60];
        s.on_file_start("a.pcap");
        s.on_packet(&packet(20, &frame, 60, LinkType::ETHERNET));
        s.on_decoded();
        s.on_packet(&packet(10, &frame[..40], 1514, LinkType::ETHERNET));
        s.on_skip(SkipReason::Arp);
        s.on_file_end(2, None);
        s.on_file_start("b.pcapng");
        s.on_packet(&packet(30, &frame, 60, LinkType::RAW));
        s.on_packet(&packet(31, &frame, 60, LinkType::ETHERNET));
        s.on_skip(SkipReason::Arp);
        s.on_skip(SkipReason::BadIpLength);
        s.on_file_end(2, Some("truncated record at byte 4242".into()));

        assert_eq!(s.packets_read, 4);
        assert_eq!(s.packets_decoded, 1);
        assert_eq!(s.skipped_for(SkipReason::Arp), 2);
        assert_eq!(s.skipped_for(SkipReason::BadIpLength), 1);
        assert_eq!(s.skipped_total(), 3);
        assert_eq!(s.wire_bytes, 60 + 1514 + 60 + 60);
        assert_eq!(s.captured_bytes, 60 + 40 + 60 + 60);
        assert_eq!(s.packets_cut_by_snaplen, 1);
        assert_eq!(s.span_nanos(), 21_000_000_000);
        assert_eq!(s.files[0].first_ts, Some(Timestamp::from_secs_nanos(10, 0)));
        assert_eq!(s.files[0].last_ts, Some(Timestamp::from_secs_nanos(20, 0)));
        assert_eq!(
            s.files[1].link_types,
            vec![LinkType::RAW, LinkType::ETHERNET]
        );
        assert_eq!(
            s.errors().collect::<Vec<_>>(),
            vec![("b.pcapng", "truncated record at byte 4242")]
        );
    }

    #[test]
    fn sessions_by_proto_state_service_and_talkers() {
        let mut s = CaptureSummary::new();
        s.on_session(&session(
            "10.0.0.1",
            "10.0.0.2",
            Proto::Tcp,
            ConnState::SF,
            Some("http"),
            (100, 900),
        ));
        s.on_session(&session(
            "10.0.0.1",
            "10.0.0.3",
            Proto::Tcp,
            ConnState::S0,
            None,
            (60, 0),
        ));
        s.on_session(&session(
            "10.0.0.4",
            "10.0.0.2",
            Proto::Udp,
            ConnState::SF,
            Some("dns"),
            (70, 130),
        ));
        s.on_session(&session(
            "10.0.0.4",
            "10.0.0.5",
            Proto::Udp,
            ConnState::SF,
            Some("dns"),
            (70, 130),
        ));
        assert_eq!(s.sessions.sessions, 4);
        assert_eq!(s.sessions.ip_bytes, 1000 + 60 + 200 + 200);
        assert_eq!(s.by_proto[&Proto::Tcp].sessions, 2);
        assert_eq!(s.by_proto[&Proto::Udp].ip_bytes, 400);
        assert_eq!(s.sessions_in_state(ConnState::SF), 3);
        assert_eq!(s.sessions_in_state(ConnState::S0), 1);
        assert_eq!(s.sessions_ended_by(EndReason::Inactive), 4);
        assert_eq!(s.sessions_without_service(), 1);
        assert_eq!(
            s.top_services_by_sessions(5)
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            ["dns", "http"]
        );
        assert_eq!(
            s.top_services_by_bytes(5)
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            ["http", "dns"]
        );
        let top = s.talkers.top(2);
        // 10.0.0.2: 1000 (http) + 200 (dns); 10.0.0.1: 1000 + 60.
        assert_eq!(top[0].0, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            top[0].1,
            Talker {
                bytes: 1200,
                error: 0,
                sessions: 2
            }
        );
        assert_eq!(top[1].1.bytes, 1060);
    }

    #[test]
    fn space_saving_keeps_heavy_hosts_in_bounded_memory() {
        let mut t = TopTalkers::new(4);
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..1000u32 {
            t.add(IpAddr::from([10, 0, (i >> 8) as u8, i as u8]), 10);
            if i % 10 == 0 {
                t.add(heavy, 1000);
            }
        }
        assert_eq!(t.len(), 4);
        let (addr, talker) = t.top(1)[0];
        assert_eq!(addr, heavy);
        // True bytes are 100 * 1000; the estimate overshoots by at most `error`.
        assert!(talker.bytes >= 100_000 && talker.bytes - talker.error <= 100_000);
    }

    #[test]
    fn top_talkers_order_is_the_same_before_and_after_the_table_fills() {
        // Heaviest first, equal bytes by the smaller address: before the table is ever full the
        // order is made on request; once full it is kept as hosts are added.
        let hosts: Vec<IpAddr> = ["10.0.0.9", "10.0.0.3", "10.0.0.5", "10.0.0.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut t = TopTalkers::new(5);
        for (host, bytes) in hosts.iter().zip([300, 500, 300, 100]) {
            t.add(*host, bytes);
        }
        t.add(hosts[3], 150);
        let expected = ["10.0.0.3", "10.0.0.5", "10.0.0.9", "10.0.0.1"];
        let listed = |t: &TopTalkers| -> Vec<String> {
            t.top(10).iter().map(|(a, _)| a.to_string()).collect()
        };
        assert_eq!(listed(&t), expected);
        assert_eq!(t.top(10)[3].1.bytes, 250);
        // The fifth host fills the table, the sixth evicts the lightest (10.0.0.7, 10 bytes)
        // and inherits its count as error.
        t.add("10.0.0.7".parse().unwrap(), 10);
        t.add("10.0.0.8".parse().unwrap(), 5);
        assert_eq!(t.len(), 5);
        let top = t.top(10);
        assert_eq!(listed(&t), [expected.as_slice(), &["10.0.0.8"]].concat());
        assert_eq!((top[4].1.bytes, top[4].1.error), (15, 10));
        assert_eq!(t.top(2).len(), 2);
    }

    #[test]
    fn merge_equals_single_pass() {
        let sessions = [
            session(
                "10.0.0.1",
                "10.0.0.2",
                Proto::Tcp,
                ConnState::SF,
                Some("http"),
                (100, 900),
            ),
            session(
                "10.0.0.1",
                "10.0.0.3",
                Proto::Tcp,
                ConnState::REJ,
                None,
                (60, 40),
            ),
            session(
                "10.0.0.4",
                "10.0.0.2",
                Proto::Udp,
                ConnState::SF,
                Some("dns"),
                (70, 130),
            ),
        ];
        let frame = [0u8; 60];
        let mut whole = CaptureSummary::new();
        let mut a = CaptureSummary::new();
        let mut b = CaptureSummary::new();
        for (i, rec) in sessions.iter().enumerate() {
            whole.on_session(rec);
            if i == 1 {
                b.on_session(rec)
            } else {
                a.on_session(rec)
            }
        }
        whole.on_file_start("x");
        whole.on_packet(&packet(5, &frame, 60, LinkType::ETHERNET));
        whole.on_packet(&packet(9, &frame, 60, LinkType::ETHERNET));
        whole.on_skip(SkipReason::NonIp);
        a.on_file_start("x");
        a.on_packet(&packet(5, &frame, 60, LinkType::ETHERNET));
        b.on_packet(&packet(9, &frame, 60, LinkType::ETHERNET));
        b.on_skip(SkipReason::NonIp);
        a.set_tracker_stats(TrackerStats {
            sessions_started: 2,
            evicted: 1,
            peak_live: 2,
            ..TrackerStats::default()
        });
        b.set_tracker_stats(TrackerStats {
            sessions_started: 1,
            evicted: 0,
            peak_live: 1,
            ..TrackerStats::default()
        });
        a.merge(b);
        assert_eq!(a.packets_read, whole.packets_read);
        assert_eq!(a.span_nanos(), whole.span_nanos());
        assert_eq!(a.skipped, whole.skipped);
        assert_eq!(a.sessions, whole.sessions);
        assert_eq!(a.by_proto, whole.by_proto);
        assert_eq!(a.by_state, whole.by_state);
        assert_eq!(a.by_service, whole.by_service);
        assert_eq!(a.talkers.top(10), whole.talkers.top(10));
        assert_eq!(a.tracker.sessions_started, 3);
        assert_eq!(a.tracker.evicted, 1);
    }
}
