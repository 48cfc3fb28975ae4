//! What the HTML report shows, gathered in bounded memory while sessions stream by.
//!
//! [`ReportData`] is fed every finished session ([`ReportData::on_session`]) and keeps: a
//! timeline of session starts in at most [`MAX_TIMELINE_BUCKETS`] buckets (the bucket width
//! doubles from one second as the span grows), split by protocol and, when the hidden-session
//! analysis supplies it, by user versus technology; and a sample of at most
//! [`SAMPLE_ROWS`] sessions for the sortable, filterable table. The sample keeps the sessions
//! whose uid hashes lowest (a bottom-k sample), so it is uniform, deterministic, and the same
//! whatever order sessions finished in. The capture-wide counts (span, packets, skip reasons,
//! services, talkers) come from [`crate::analysis::CaptureSummary`]. [`HiddenAnalysis`] is what
//! the page shows of the hidden-session analysis, with each periodic pattern's intervals
//! (derived from the session starts the analysis kept, downsampled for the plot). Promises: memory bounded
//! by the caps whatever the number of sessions or patterns; no panic on any value.

use crate::analysis::hidden::{HiddenPattern, HiddenReport};
use crate::capture::Timestamp;
use crate::session::{History, Proto, SessionRecord, Uid};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;

/// Most timeline buckets; the width doubles when more would be needed.
pub const MAX_TIMELINE_BUCKETS: usize = 600;
/// Sessions kept for the report's session table.
pub const SAMPLE_ROWS: usize = 2_000;
/// Narrowest timeline bucket, in nanoseconds (one second).
const BASE_BUCKET_NANOS: i64 = 1_000_000_000;
/// Intervals kept per periodic pattern for its plot.
pub const MAX_PATTERN_INTERVALS: usize = 200;
/// Hidden groups the page lists at most (the ones with most sessions).
pub const MAX_HIDDEN_GROUPS: usize = 1_000;
/// Periodic patterns that get an interval plot at most (4 pages of the hidden-sessions
/// table): 200 plots of 200 points keep the page's plot data under about 300 KB.
pub const MAX_PLOTTED_PATTERNS: usize = 200;

/// Protocol columns of the timeline.
pub const TIMELINE_PROTOCOLS: [&str; 4] = ["tcp", "udp", "icmp", "other"];

fn proto_slot(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
        Proto::Icmp => 2,
        Proto::Other(_) => 3,
    }
}

/// Who a session is for, as the hidden-session analysis decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionClass {
    /// Started by a person's action (browsing, a login, a download).
    User,
    /// Started by software on its own (updates, telemetry, keep-alives, beacons).
    Technology,
}

/// Sessions that started within one timeline bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineBucket {
    /// Per [`TIMELINE_PROTOCOLS`].
    pub sessions: [u64; 4],
    /// IP bytes of those sessions, both directions.
    pub ip_bytes: u64,
    /// User and technology sessions (zero until the hidden-session analysis classifies).
    pub user: u64,
    pub technology: u64,
}

impl TimelineBucket {
    fn add(&mut self, other: &TimelineBucket) {
        for (a, b) in self.sessions.iter_mut().zip(other.sessions) {
            *a = a.saturating_add(b);
        }
        self.ip_bytes = self.ip_bytes.saturating_add(other.ip_bytes);
        self.user = self.user.saturating_add(other.user);
        self.technology = self.technology.saturating_add(other.technology);
    }
}

/// Session starts over time in a bounded number of equal-width buckets.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Bucket width is `BASE_BUCKET_NANOS << shift`.
    shift: u32,
    buckets: BTreeMap<i64, TimelineBucket>,
}

impl Timeline {
    pub fn bucket_nanos(&self) -> i64 {
        BASE_BUCKET_NANOS.saturating_mul(1i64 << self.shift.min(32))
    }

    fn index(&self, ts: Timestamp) -> i64 {
        ts.0.div_euclid(self.bucket_nanos())
    }

    fn bucket(&mut self, ts: Timestamp) -> &mut TimelineBucket {
        // One look-up unless the timeline is full (the length is checked first).
        if self.buckets.len() >= MAX_TIMELINE_BUCKETS && !self.buckets.contains_key(&self.index(ts))
        {
            self.widen_until_fits(ts);
        }
        let index = self.index(ts);
        self.buckets.entry(index).or_default()
    }

    /// Doubles the width until the buckets plus the one for `ts` fit.
    fn widen_until_fits(&mut self, ts: Timestamp) {
        while self.shift < 32 {
            self.shift += 1;
            let old = std::mem::take(&mut self.buckets);
            for (index, bucket) in old {
                // Width doubles: the new index is the floor of half the old one.
                self.buckets.entry(index >> 1).or_default().add(&bucket);
            }
            let fits = self.buckets.len() < MAX_TIMELINE_BUCKETS
                || self.buckets.contains_key(&self.index(ts));
            if fits {
                break;
            }
        }
    }

    /// (bucket start, counts) in time order.
    pub fn buckets(&self) -> impl Iterator<Item = (Timestamp, &TimelineBucket)> {
        let width = self.bucket_nanos();
        self.buckets
            .iter()
            .map(move |(i, b)| (Timestamp(i.saturating_mul(width)), b))
    }
}

/// One session as the report's table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRow {
    pub start: Timestamp,
    pub uid: Uid,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    pub proto: &'static str,
    pub service: &'static str,
    pub duration_nanos: u64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub pkts: u64,
    pub ip_bytes: u64,
    pub conn_state: &'static str,
    pub history: History,
    pub end_reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sampled {
    hash: u64,
    row: SampleRow,
}

impl Ord for Sampled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.row.uid.as_str().cmp(other.row.uid.as_str()))
    }
}

impl PartialOrd for Sampled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Hidden sessions that share an originating host and a destination.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenGroup {
    pub host: String,
    /// What the analysis took the pattern for: "beacon", "name lookup", "keep-alive"...
    pub kind: &'static str,
    /// "name (address) proto/port" ([`HiddenPattern::destination_label`]).
    pub destination: String,
    pub service: String,
    /// Why these sessions count as hidden (one short phrase each).
    pub reasons: Vec<String>,
    pub sessions: u64,
    pub ip_bytes: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    /// For a periodic pattern: the typical interval, seconds.
    pub period_secs: Option<f64>,
    /// For a periodic pattern with a plot: intervals between consecutive session starts,
    /// seconds (to the millisecond), in time order, at most [`MAX_PATTERN_INTERVALS`]
    /// ([`plot_intervals`] says how they are picked). Empty without a plot.
    pub intervals_secs: Vec<f64>,
    /// How many intervals the analysis had (more than shown when downsampled).
    pub intervals_total: usize,
}

/// What the hidden-session analysis found (absent until that analysis runs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HiddenAnalysis {
    pub user_sessions: u64,
    pub technology_sessions: u64,
    /// Groups (patterns) found, shown or not.
    pub groups_total: usize,
    /// In page order ([`HiddenAnalysis::from_report`]): most sessions first; at most
    /// [`MAX_HIDDEN_GROUPS`].
    pub groups: Vec<HiddenGroup>,
}

impl HiddenAnalysis {
    /// The patterns hidden.csv lists ([`HiddenReport::shown`]) as the report shows them, most
    /// sessions first (then host); the first [`MAX_PLOTTED_PATTERNS`] periodic ones among the
    /// first [`MAX_HIDDEN_GROUPS`] get their interval plot.
    pub fn from_report(
        report: &HiddenReport,
        user_sessions: u64,
        technology_sessions: u64,
    ) -> Self {
        let mut shown: Vec<&HiddenPattern> = report.shown().collect();
        shown.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then(a.host.cmp(&b.host))
                .then(a.dest.cmp(&b.dest))
                .then(a.port.cmp(&b.port))
        });
        let mut plots = 0usize;
        let groups_total = shown.len();
        let groups = shown
            .iter()
            .take(MAX_HIDDEN_GROUPS)
            .map(|p| {
                let plotted = p.period_s.is_some()
                    && p.starts_nanos.len() >= 2
                    && plots < MAX_PLOTTED_PATTERNS;
                let intervals_secs = match (plotted, p.period_s) {
                    (true, Some(period)) => {
                        plots += 1;
                        plot_intervals(&p.starts_nanos, period, MAX_PATTERN_INTERVALS)
                    }
                    _ => Vec::new(),
                };
                HiddenGroup {
                    host: p.host.to_string(),
                    kind: p.kind.as_str(),
                    destination: p.destination_label(),
                    service: p.service.clone(),
                    reasons: vec![p.reason.clone()],
                    sessions: p.sessions,
                    ip_bytes: p.orig_bytes.saturating_add(p.resp_bytes),
                    first: p.first,
                    last: p.last,
                    period_secs: p.period_s,
                    intervals_secs,
                    // The series' intervals, not only the kept starts' (a long series keeps
                    // its latest ones for the plot).
                    intervals_total: usize::try_from(p.sessions.saturating_sub(1))
                        .unwrap_or(usize::MAX)
                        .max(p.starts_nanos.len().saturating_sub(1)),
                }
            })
            .collect();
        HiddenAnalysis {
            user_sessions,
            technology_sessions,
            groups_total,
            groups,
        }
    }
}

/// The intervals between consecutive `starts_nanos` (sorted), in seconds rounded to the
/// millisecond, at most `max_points` of them: all when they fit; otherwise the intervals are cut
/// into `max_points` consecutive slices and each slice keeps the interval farthest from
/// `period_s`, so a missed beat or a burst stays visible after downsampling.
pub fn plot_intervals(starts_nanos: &[i64], period_s: f64, max_points: usize) -> Vec<f64> {
    let intervals: Vec<f64> = starts_nanos
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.saturating_sub(*a) as f64 / 1e9),
            _ => None,
        })
        .collect();
    let millis = |v: f64| (v * 1000.0).round() / 1000.0;
    let n = intervals.len();
    if n <= max_points || max_points == 0 {
        return intervals.into_iter().take(max_points).map(millis).collect();
    }
    (0..max_points)
        .filter_map(|slice| {
            let from = slice * n / max_points;
            let to = ((slice + 1) * n / max_points).max(from + 1);
            intervals
                .get(from..to.min(n))?
                .iter()
                .copied()
                .max_by(|a, b| (a - period_s).abs().total_cmp(&(b - period_s).abs()))
        })
        .map(millis)
        .collect()
}

/// Everything the HTML report needs besides the capture summary; see the module documentation.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub timeline: Timeline,
    sample: BinaryHeap<Sampled>,
    sample_cap: usize,
    /// `None`: the hidden-session analysis did not run (the report says so).
    pub hidden: Option<HiddenAnalysis>,
}

impl Default for ReportData {
    fn default() -> Self {
        ReportData::new()
    }
}

impl ReportData {
    pub fn new() -> Self {
        ReportData::with_sample_cap(SAMPLE_ROWS)
    }

    pub fn with_sample_cap(cap: usize) -> Self {
        ReportData {
            timeline: Timeline::default(),
            sample: BinaryHeap::new(),
            sample_cap: cap,
            hidden: None,
        }
    }

    /// Counts one finished session and offers it to the sample.
    pub fn on_session(&mut self, r: &SessionRecord) {
        let ip_bytes = r.orig_stats.ip_bytes.saturating_add(r.resp_stats.ip_bytes);
        let bucket = self.timeline.bucket(r.start);
        if let Some(n) = bucket.sessions.get_mut(proto_slot(r.proto)) {
            *n = n.saturating_add(1);
        }
        bucket.ip_bytes = bucket.ip_bytes.saturating_add(ip_bytes);

        if self.sample_cap == 0 {
            return;
        }
        let hash = r.uid.fixed_hash();
        let full = self.sample.len() >= self.sample_cap;
        if full && self.sample.peek().is_some_and(|top| top.hash <= hash) {
            return;
        }
        let sampled = Sampled {
            hash,
            row: SampleRow {
                start: r.start,
                uid: r.uid,
                orig_h: r.orig.addr,
                orig_p: r.orig.port,
                resp_h: r.resp.addr,
                resp_p: r.resp.port,
                proto: r.proto.as_str(),
                service: r.service.unwrap_or(""),
                duration_nanos: r.duration_nanos(),
                orig_bytes: r.orig_stats.bytes,
                resp_bytes: r.resp_stats.bytes,
                pkts: r.orig_stats.pkts.saturating_add(r.resp_stats.pkts),
                ip_bytes,
                conn_state: r.conn_state.as_str(),
                history: r.history,
                end_reason: r.end_reason.as_str(),
            },
        };
        if !full {
            self.sample.push(sampled);
        } else if let Some(mut top) = self.sample.peek_mut() {
            // Replacing the largest in place sifts once, where a push and a pop sift twice.
            *top = sampled;
        }
    }

    /// The hidden-session analysis classified the session that started at `start`.
    pub fn on_session_class(&mut self, start: Timestamp, class: SessionClass) {
        let bucket = self.timeline.bucket(start);
        match class {
            SessionClass::User => bucket.user = bucket.user.saturating_add(1),
            SessionClass::Technology => bucket.technology = bucket.technology.saturating_add(1),
        }
    }

    /// The sampled sessions in start order (then uid).
    pub fn sample(&self) -> Vec<&SampleRow> {
        let mut rows: Vec<&SampleRow> = self.sample.iter().map(|s| &s.row).collect();
        rows.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then_with(|| a.uid.as_str().cmp(b.uid.as_str()))
        });
        rows
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::session::{
        ConnState, DirectionStats, EndReason, Endpoint, History, ServiceEvidence, Uid,
    };

    pub(crate) fn record(i: u64, start_secs: i64, proto: Proto) -> SessionRecord {
        let start = Timestamp::from_secs_nanos(start_secs, 0);
        let orig = Endpoint {
            addr: "10.0.0.1".parse().unwrap(),
            port: (40000 + i % 20000) as u16,
        };
        let resp = Endpoint {
            addr: "192.0.2.53".parse().unwrap(),
            port: 53,
        };
        SessionRecord {
            uid: Uid::derive(start, proto, orig, resp, 0),
            start,
            last: Timestamp::from_secs_nanos(start_secs + 1, 0),
            orig,
            resp,
            proto,
            ip_proto: 17,
            orig_stats: DirectionStats {
                pkts: 1,
                ip_bytes: 60,
                bytes: 32,
            },
            resp_stats: DirectionStats {
                pkts: 1,
                ip_bytes: 100,
                bytes: 72,
            },
            conn_state: ConnState::SF,
            history: History::default(),
            missed_bytes: 0,
            service: Some("dns"),
            service_evidence: ServiceEvidence::Port,
            end_reason: EndReason::Inactive,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    #[test]
    fn timeline_counts_every_session_in_bounded_buckets() {
        let mut data = ReportData::with_sample_cap(10);
        // One session per minute over 30 days: 43,200 distinct minutes.
        let n = 43_200u64;
        for i in 0..n {
            data.on_session(&record(i, 1_700_000_000 + i as i64 * 60, Proto::Udp));
        }
        let buckets: Vec<_> = data.timeline.buckets().collect();
        assert!(buckets.len() <= MAX_TIMELINE_BUCKETS);
        let total: u64 = buckets.iter().map(|(_, b)| b.sessions[1]).sum();
        assert_eq!(total, n);
        let bytes: u64 = buckets.iter().map(|(_, b)| b.ip_bytes).sum();
        assert_eq!(bytes, n * 160);
        // 30 days (2,592,000 s) in at most 600 epoch-aligned buckets of 2^k seconds: 2^12 s
        // needs 633 of them, 2^13 s (2 h 16 min) 317, so 2^13 s it is.
        assert_eq!(data.timeline.bucket_nanos(), 8192 * 1_000_000_000);
        assert_eq!(buckets.len(), 317);
        assert_eq!(data.sample().len(), 10);
    }

    #[test]
    fn sample_is_the_same_whatever_the_arrival_order() {
        let mut forward = ReportData::with_sample_cap(50);
        let mut backward = ReportData::with_sample_cap(50);
        for i in 0..5_000u64 {
            forward.on_session(&record(i, 1_000 + i as i64, Proto::Tcp));
        }
        for i in (0..5_000u64).rev() {
            backward.on_session(&record(i, 1_000 + i as i64, Proto::Tcp));
        }
        assert_eq!(forward.sample(), backward.sample());
        let rows = forward.sample();
        assert_eq!(rows.len(), 50);
        assert!(rows.windows(2).all(|w| w[0].start <= w[1].start));
        // Uniform enough: the sample reaches both halves of the capture.
        assert!(rows.iter().any(|r| r.start.0 < 3_500 * 1_000_000_000));
        assert!(rows.iter().any(|r| r.start.0 >= 3_500 * 1_000_000_000));
    }

    #[test]
    fn few_intervals_are_all_kept_to_the_millisecond() {
        let s = 1_000_000_000i64;
        let starts = [0, 30 * s, 60 * s + 1_200_000, 90 * s];
        assert_eq!(plot_intervals(&starts, 30.0, 200), [30.0, 30.001, 29.999]);
        assert!(plot_intervals(&[5], 30.0, 200).is_empty());
        assert!(plot_intervals(&[], 30.0, 200).is_empty());
        assert!(plot_intervals(&starts, 30.0, 0).is_empty());
    }

    #[test]
    fn downsampling_keeps_a_missed_beat() {
        // 4,096 starts every 10 s with one beat missed (a 20 s interval) at start 3,000: the
        // 200 slices of about 20 intervals each keep the interval farthest from the period.
        let starts: Vec<i64> = (0..4097i64)
            .filter(|&i| i != 3_000)
            .map(|i| i * 10_000_000_000)
            .collect();
        let plot = plot_intervals(&starts, 10.0, 200);
        assert_eq!(plot.len(), 200);
        assert_eq!(plot.iter().filter(|&&v| v == 20.0).count(), 1);
        assert_eq!(plot.iter().filter(|&&v| v == 10.0).count(), 199);
        // The gap is at 2,999 of 4,095 intervals: slice 2999 * 200 / 4095 = 146.
        assert_eq!(plot[146], 20.0);
    }

    #[test]
    fn periodic_patterns_get_their_intervals_from_the_analysis() {
        use crate::analysis::hidden::{HiddenAnalyzer, HiddenOptions, SessionFacts};
        let mut analyzer = HiddenAnalyzer::new(HiddenOptions::default());
        let mut tag = Vec::new();
        // A DNS query every 30 s for 300 beats, one beat missed, so 299 sessions and 298
        // intervals: 297 of 30 s, one of 60 s.
        for i in (0..300u64).filter(|&i| i != 100) {
            let r = record(i, 1_700_000_000 + i as i64 * 30, Proto::Udp);
            tag.clear();
            analyzer.observe(&SessionFacts::from_record(&r), &mut tag);
        }
        let report = analyzer.finish();
        let h = HiddenAnalysis::from_report(&report, 0, 299);
        assert_eq!(h.groups_total, 1);
        let g = &h.groups[0];
        // A resolver asked over UDP: the catalogue's kind, the port beside the address.
        assert_eq!(g.kind, "name lookup");
        assert_eq!(g.destination, "192.0.2.53 udp/53");
        assert_eq!(g.sessions, 299);
        assert_eq!(g.period_secs, Some(30.0));
        assert_eq!(g.intervals_total, 298);
        assert_eq!(g.intervals_secs.len(), MAX_PATTERN_INTERVALS);
        assert!(g.intervals_secs.contains(&60.0));
        assert!(g.intervals_secs.iter().all(|&v| v == 30.0 || v == 60.0));
    }

    #[test]
    fn classes_go_to_their_bucket() {
        let mut data = ReportData::new();
        data.on_session(&record(1, 100, Proto::Tcp));
        data.on_session_class(Timestamp::from_secs_nanos(100, 0), SessionClass::User);
        data.on_session_class(Timestamp::from_secs_nanos(100, 5), SessionClass::Technology);
        let (start, bucket) = data.timeline.buckets().next().unwrap();
        assert_eq!(start, Timestamp::from_secs_nanos(100, 0));
        assert_eq!((bucket.user, bucket.technology), (1, 1));
    }
}
