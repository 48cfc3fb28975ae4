//! Hidden sessions: which sessions technology started behind the user's back, and why we think so.
//!
//! [`HiddenAnalyzer`] observes every finished session (a [`SessionFacts`]: the record plus what
//! content classification saw, when it did) and keeps bounded per-(host, destination) aggregates.
//! [`HiddenAnalyzer::finish`] turns them into a [`HiddenReport`]: the hidden patterns (for
//! hidden.csv and the terminal) and a [`Labeller`] that gives each session its `initiator` and
//! `initiator_reason` when sessions.csv rows are written, from the [`SessionSketch`] tag each row
//! carries. The rules and their order are in docs/initiators.md.
//!
//! Memory follows the number of groups, never the number of sessions: at most [`MAX_GROUPS`]
//! (host, destination, port, protocol) groups. A group of one session (most of them: refused
//! connections, scans) is one fixed 72-byte slot plus its index share (groups.rs); from its
//! second session on a group also holds a count, its latest start and a [`series::Series`] of its
//! starts, of fixed size too: its latest [`series::RECENT_STARTS`] starts (16 bytes each), at
//! most [`MAX_STARTS_TOTAL`] over all groups (16 MB), and, for the series longer than that, two
//! fixed sketches of the intervals and sizes ([`series::MAX_SERIES_BYTES`] in all, about
//! 6.5 kB), for at most [`MAX_SKETCHED_SERIES`] series (about 27 MB). [`HiddenAnalyzer::finish`]
//! builds maps only for the groups with a name, a verdict or enough sessions for the idle rule.
//! With [`MAX_DNS_PAIRS`] remembered DNS answers (a name each) and the labeller's one small
//! entry per originating host (at most [`label::MAX_HOSTS`]), the analysis stays under about
//! 100 MB whatever the input; on real traffic it is a few MB. Past the group and DNS caps the
//! tables keep the entries of lowest fixed hash (groups.rs), so what they hold does not depend on
//! the order sessions end in. Sessions beyond the group cap are
//! still labelled by the per-session rules; the report counts them. Per session
//! nothing else is kept here: the sketch travels with the sessions.csv row.

pub mod catalogue;
mod groups;
mod label;
pub mod nets;
pub mod periodicity;
pub mod rules;
pub mod series;
pub mod sketch;

pub use catalogue::{CatalogueHit, CatalogueKind};
pub use label::{Initiator, Label, Labeller};
pub use nets::{AllowList, Cidr};
pub use periodicity::{Periodicity, Sample};
pub use sketch::SessionSketch;

use crate::capture::Timestamp;
use crate::session::SessionRecord;
use ahash::AHashMap;
use groups::{GroupView, Groups};
use series::Budget;
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// Most (host, destination, port, protocol) groups tracked.
pub const MAX_GROUPS: usize = 200_000;
/// Session starts kept over all groups' series (each keeps at most [`series::RECENT_STARTS`]).
pub const MAX_STARTS_TOTAL: usize = 1 << 20;
/// Series longer than [`series::RECENT_STARTS`] summarised by sketches; past this many, a long
/// series keeps its first starts only.
pub const MAX_SKETCHED_SERIES: usize = 4096;
/// (client, answered address) pairs remembered from DNS answers.
pub const MAX_DNS_PAIRS: usize = 200_000;

/// What the analysis knows of one finished session. Content classification fills the optional
/// parts when it recognised the payload; without it they are `None`/empty and the analysis
/// works from ports, addresses, timing and sizes.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    pub record: &'a SessionRecord,
    /// The name the session was made for (TLS SNI, HTTP Host).
    pub server_name: Option<&'a str>,
    /// For a DNS session: the name asked.
    pub dns_query: Option<&'a str>,
    /// For a DNS session: the addresses answered for it.
    pub dns_answers: &'a [IpAddr],
}

impl<'a> SessionFacts<'a> {
    pub fn from_record(record: &'a SessionRecord) -> Self {
        SessionFacts {
            record,
            server_name: None,
            dns_query: None,
            dns_answers: &[],
        }
    }

    /// The facts its content gives: a DNS session's name is its query, with the addresses
    /// answered; any other session's name is the server name it was made for.
    pub fn of_session(record: &'a SessionRecord) -> Self {
        let mut facts = SessionFacts::from_record(record);
        if let Some(content) = record.content.as_deref() {
            if content.dns_query.is_some() {
                facts.dns_query = content.dns_query.as_deref();
                facts.dns_answers = &content.dns_answer_addresses;
            } else {
                facts.server_name = content.server_name.as_deref();
            }
        }
        facts
    }
}

/// What the user asks of the analysis.
#[derive(Debug, Clone)]
pub struct HiddenOptions {
    /// Our hosts: patterns are reported for originators inside these ranges (all when empty).
    pub local_nets: Vec<Cidr>,
    /// Patterns scoring below this are left out of hidden.csv and the terminal.
    pub min_score: f64,
    /// Patterns with fewer sessions are left out of hidden.csv and the terminal.
    pub min_sessions: u64,
    /// Known-good patterns, shown apart.
    pub allow_list: AllowList,
}

impl Default for HiddenOptions {
    fn default() -> Self {
        HiddenOptions {
            local_nets: Vec::new(),
            min_score: 0.0,
            min_sessions: 1,
            allow_list: AllowList::default(),
        }
    }
}

impl HiddenOptions {
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.local_nets.is_empty() || self.local_nets.iter().any(|n| n.contains(addr))
    }

    fn directed_broadcasts(&self) -> Vec<IpAddr> {
        self.local_nets.iter().filter_map(Cidr::broadcast).collect()
    }
}

/// One (host, destination) aggregate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub host: IpAddr,
    pub dest: IpAddr,
    pub port: u16,
    pub ip_proto: u8,
}

impl GroupKey {
    fn of(sketch: &SessionSketch) -> Self {
        GroupKey {
            host: sketch.orig,
            dest: sketch.resp,
            port: sketch.resp_port,
            ip_proto: sketch.ip_proto,
        }
    }
}

/// Latest name each client was given for each address, bounded: past [`MAX_DNS_PAIRS`] pairs
/// it keeps those of lowest [`groups::priority`], as the group table does, so that what it
/// holds at the end does not depend on the order the lookups ended in.
#[derive(Debug, Default)]
pub struct DnsNames {
    names: AHashMap<(IpAddr, IpAddr), (Box<str>, Timestamp)>,
    /// (priority, pair) of every pair held, highest priority on top.
    by_priority: BinaryHeap<(u64, (IpAddr, IpAddr))>,
}

impl DnsNames {
    /// Remembers that `client` was told `name` resolves to `addr` at `ts`.
    pub fn insert(&mut self, client: IpAddr, addr: IpAddr, name: &str, ts: Timestamp) {
        let key = (client, addr);
        if let Some(entry) = self.names.get_mut(&key) {
            // The latest answer wins; at the same time, the greater name (never arrival order).
            if (ts, name) > (entry.1, &*entry.0) {
                *entry = (name.into(), ts);
            }
            return;
        }
        let mine = groups::priority(&GroupKey {
            host: client,
            dest: addr,
            port: 0,
            ip_proto: 0,
        });
        if self.names.len() >= MAX_DNS_PAIRS {
            match self.by_priority.peek() {
                Some(&(highest, old)) if mine < highest => {
                    self.by_priority.pop();
                    self.names.remove(&old);
                }
                _ => return,
            }
        }
        self.names.insert(key, (name.into(), ts));
        self.by_priority.push((mine, key));
    }

    /// The name `client` looked up that gave `addr`, and when.
    pub fn name_for(&self, client: IpAddr, addr: IpAddr) -> Option<(&str, Timestamp)> {
        self.names
            .get(&(client, addr))
            .map(|(name, ts)| (name.as_ref(), *ts))
    }
}

/// Observes sessions; see the module documentation.
#[derive(Debug)]
pub struct HiddenAnalyzer {
    options: HiddenOptions,
    groups: Groups,
    budget: Budget,
    sessions: u64,
    sessions_untracked: u64,
    dns: DnsNames,
}

impl HiddenAnalyzer {
    pub fn new(options: HiddenOptions) -> Self {
        HiddenAnalyzer {
            options,
            groups: Groups::new(MAX_GROUPS),
            budget: Budget {
                starts: 0,
                max_starts: MAX_STARTS_TOTAL,
                sketched: 0,
                max_sketched: MAX_SKETCHED_SERIES,
            },
            sessions: 0,
            sessions_untracked: 0,
            dns: DnsNames::default(),
        }
    }

    /// Takes one finished session into account and appends its row tag (the encoded
    /// [`SessionSketch`]) to `tag`, for [`Labeller::label`] at finish.
    pub fn observe(&mut self, facts: &SessionFacts<'_>, tag: &mut Vec<u8>) {
        let record = facts.record;
        // The name goes into the tag only: the sketch itself needs no copy of it.
        let sketch = SessionSketch::from_record(record, None);
        sketch.encode_named(facts.server_name, tag);
        self.sessions += 1;
        if let Some(query) = facts.dns_query {
            for answer in facts.dns_answers {
                self.dns
                    .insert(record.orig.addr, *answer, query, record.start);
            }
        }
        let observed = groups::Observed {
            start: record.start,
            orig_bytes: sketch.orig_bytes,
            resp_bytes: sketch.resp_bytes,
            keepalive: keep_alive(&sketch).is_some(),
            service: record.service,
            server_name: facts.server_name,
        };
        self.sessions_untracked +=
            self.groups
                .observe(GroupKey::of(&sketch), &observed, &mut self.budget);
    }

    /// Decides every group's verdict and builds the report.
    pub fn finish(self) -> HiddenReport {
        let HiddenAnalyzer {
            options,
            mut groups,
            sessions,
            sessions_untracked,
            dns,
            ..
        } = self;
        let broadcasts = options.directed_broadcasts();

        // Names: from content, else from the DNS answer that gave the address.
        let name_of = |g: &GroupView<'_>| -> Option<Box<str>> {
            g.server_name
                .map(Into::into)
                .or_else(|| dns.name_for(g.key.host, g.key.dest).map(|(n, _)| n.into()))
        };
        // Name groups: the same name reached at several addresses (a CDN) is one series.
        let mut by_name: AHashMap<(IpAddr, Box<str>, u16, u8), Vec<u32>> = AHashMap::new();
        for index in groups.indices() {
            let Some(group) = groups.get(index) else {
                continue;
            };
            if let Some(name) = name_of(&group) {
                let key = group.key;
                by_name
                    .entry((key.host, name, key.port, key.ip_proto))
                    .or_default()
                    .push(index);
            }
        }
        let mut name_periodicity: AHashMap<u32, (Periodicity, usize)> = AHashMap::new();
        for members in by_name.values().filter(|m| m.len() > 1) {
            // Only series kept whole can be interleaved; a longer one is judged on its own.
            if members
                .iter()
                .any(|&i| groups.series(i).is_some_and(|s| !s.is_exact()))
            {
                continue;
            }
            let mut samples: Vec<Sample> = members
                .iter()
                .flat_map(|&i| samples_of(&groups, i))
                .collect();
            if let Some(p) = periodicity::analyse(&mut samples) {
                for &i in members {
                    name_periodicity.insert(i, (p, members.len()));
                }
            }
        }
        drop(by_name);

        let mut verdicts = AHashMap::new();
        let mut patterns = Vec::new();
        let mut merged_done: AHashMap<(IpAddr, Box<str>, u16, u8), usize> = AHashMap::new();
        let mut order: Vec<(GroupKey, u32)> = groups
            .indices()
            .filter_map(|i| groups.get(i).map(|g| (g.key, i)))
            .collect();
        order.sort_unstable();
        let mut group_sessions = AHashMap::new();
        for (key, index) in order {
            // The plotted starts are taken before the sketch takes in the kept ones.
            let starts: Vec<i64> = samples_of(&groups, index).map(|s| s.start_nanos).collect();
            let Some(sessions) = groups.get(index).map(|g| g.sessions) else {
                continue;
            };
            let own = groups
                .series_mut(index)
                .and_then(|s| s.periodicity(sessions));
            let Some(group) = groups.get(index) else {
                continue;
            };
            if group.sessions >= label::IDLE_REPEAT_MIN {
                group_sessions.insert(key, group.sessions);
            }
            let name = name_of(&group);
            let (periodic, addresses) = match (own, name_periodicity.get(&index)) {
                (Some(a), Some((b, n))) if b.score > a.score => (Some(*b), *n),
                (None, Some((b, n))) => (Some(*b), *n),
                (a, _) => (a, 1),
            };
            let periodic = periodic.filter(Periodicity::is_periodic);
            let group_dest = catalogue::group_destination(key.dest, &broadcasts);
            let hit = catalogue::by_port(key.ip_proto, key.port)
                .or_else(|| name.as_deref().and_then(catalogue::by_name));
            let rules = rules::rules();
            let keepalive_share = group.keepalives as f64 / group.sessions.max(1) as f64;
            let kind = if let Some(hit) = hit {
                PatternKind::Catalogue(hit.kind)
            } else if group_dest.is_some() {
                PatternKind::Catalogue(CatalogueKind::Discovery)
            } else if periodic.is_some() {
                PatternKind::Beacon
            } else if keepalive_share >= rules.keepalive_min_share {
                PatternKind::KeepAlive
            } else {
                continue;
            };
            let verdict = GroupVerdict {
                kind,
                periodicity: periodic,
                addresses,
                name: name.clone(),
            };
            let service = hit
                .map(|h| h.service)
                .or(group.service)
                .unwrap_or("")
                .to_string();
            let score = match (kind, periodic) {
                (_, Some(p)) => p.score,
                (PatternKind::KeepAlive, None) => rules.keepalive_score,
                _ => rules.catalogue_score,
            };
            let reason = verdict.reason(hit, group_dest, key.dest, group.sessions);
            let allowed = options
                .allow_list
                .allows(key.host, key.dest, name.as_deref(), key.port);
            // A series found by name over several addresses is one pattern.
            let merged_key = (addresses > 1)
                .then(|| name.clone().map(|n| (key.host, n, key.port, key.ip_proto)))
                .flatten();
            if let Some(index) = merged_key.as_ref().and_then(|k| merged_done.get(k)) {
                if let Some(p) = patterns.get_mut(*index) {
                    merge_into(p, &group, &starts);
                }
            } else {
                if let Some(k) = merged_key {
                    merged_done.insert(k, patterns.len());
                }
                patterns.push(HiddenPattern {
                    host: key.host,
                    dest: key.dest,
                    dest_addresses: 1,
                    name: name.as_deref().map(String::from),
                    ip_proto: key.ip_proto,
                    port: key.port,
                    service,
                    kind,
                    sessions: group.sessions,
                    first: group.first,
                    last: group.last,
                    period_s: periodic.map(|p| p.period_s),
                    jitter: periodic.map(|p| p.jitter),
                    orig_bytes: group.orig_bytes,
                    resp_bytes: group.resp_bytes,
                    score,
                    reason: reason.clone(),
                    allowed,
                    starts_nanos: if periodic.is_some() {
                        starts
                    } else {
                        Vec::new()
                    },
                });
            }
            verdicts.insert(key, verdict);
        }
        drop(groups);
        patterns.sort_by(|a, b| {
            (a.kind != PatternKind::Beacon)
                .cmp(&(b.kind != PatternKind::Beacon))
                .then(b.score.total_cmp(&a.score))
                .then(b.sessions.cmp(&a.sessions))
                .then(a.host.cmp(&b.host))
                .then(a.dest.cmp(&b.dest))
                .then(a.port.cmp(&b.port))
        });
        HiddenReport {
            options,
            broadcasts,
            patterns,
            verdicts,
            group_sessions,
            dns,
            sessions,
            sessions_untracked,
        }
    }
}

/// The starts a group's series kept, sorted (none for a group of one session).
fn samples_of(groups: &Groups, index: u32) -> impl Iterator<Item = Sample> + '_ {
    groups.series(index).into_iter().flat_map(|s| s.samples())
}

fn merge_into(p: &mut HiddenPattern, group: &GroupView<'_>, starts: &[i64]) {
    p.dest_addresses += 1;
    if group.key.dest < p.dest {
        p.dest = group.key.dest;
    }
    p.sessions += group.sessions;
    p.first = p.first.min(group.first);
    p.last = p.last.max(group.last);
    p.orig_bytes = p.orig_bytes.saturating_add(group.orig_bytes);
    p.resp_bytes = p.resp_bytes.saturating_add(group.resp_bytes);
    if p.period_s.is_some() {
        p.starts_nanos.extend_from_slice(starts);
        p.starts_nanos.sort_unstable();
    }
}

/// Why a group is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternKind {
    /// Periodic traffic to a destination the catalogue does not know: what malware beacons
    /// (and unknown updaters and trackers) look like.
    Beacon,
    /// A known infrastructure, discovery or background service.
    Catalogue(CatalogueKind),
    /// A long-lived connection kept up by small messages.
    KeepAlive,
}

impl PatternKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Beacon => "beacon",
            PatternKind::Catalogue(k) => k.as_str(),
            PatternKind::KeepAlive => "keep-alive",
        }
    }
}

/// The decision about one group, as the labeller uses it.
#[derive(Debug, Clone)]
struct GroupVerdict {
    kind: PatternKind,
    periodicity: Option<Periodicity>,
    /// Addresses the periodic series spans (more than 1 when found by name).
    addresses: usize,
    name: Option<Box<str>>,
}

impl GroupVerdict {
    fn reason(
        &self,
        hit: Option<CatalogueHit>,
        group_dest: Option<catalogue::GroupDestination>,
        dest: IpAddr,
        sessions: u64,
    ) -> String {
        let mut reason = match (hit, group_dest) {
            (Some(h), Some(g)) => format!("{} to {} {dest}", h.reason, group_word(g)),
            (Some(h), None) => h.reason.to_string(),
            (None, Some(g)) => format!("{} traffic to {dest}", group_word(g)),
            (None, None) if self.kind == PatternKind::KeepAlive => {
                let what = if sessions == 1 {
                    "a long-lived connection".to_string()
                } else {
                    format!("{sessions} long-lived connections")
                };
                format!("{what} kept up by small spaced-out messages")
            }
            (None, None) => String::new(),
        };
        if let Some(p) = &self.periodicity {
            let periodic = periodic_text(p, self.addresses, self.name.as_deref());
            if reason.is_empty() {
                reason = periodic;
            } else {
                reason = format!("{reason}; {periodic}");
            }
        }
        reason
    }
}

fn group_word(g: catalogue::GroupDestination) -> &'static str {
    match g {
        catalogue::GroupDestination::Multicast => "multicast group",
        catalogue::GroupDestination::Broadcast => "broadcast",
    }
}

/// "periodic: 41 sessions every 30.2 s, jitter 3%" (and "to NAME at 3 addresses" when by name).
pub fn periodic_text(p: &Periodicity, addresses: usize, name: Option<&str>) -> String {
    let mut text = format!(
        "periodic: {} sessions every {} s, jitter {:.0}%",
        p.sessions,
        seconds(p.period_s),
        p.jitter * 100.0
    );
    if addresses > 1
        && let Some(name) = name
    {
        text.push_str(&format!(", to {name} at {addresses} addresses"));
    }
    text
}

fn seconds(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// Keep-alive evidence of one session: long, many small packets, spaced out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepAlive {
    pub duration_s: f64,
    pub pkts: u64,
    pub bytes_per_pkt: f64,
    pub gap_s: f64,
}

/// Whether a session looks kept up by small regular messages (the rules' `keepalive_` values);
/// remote shells and desktops never do (their rhythm is a person's).
pub fn keep_alive(s: &SessionSketch) -> Option<KeepAlive> {
    let rules = rules::rules();
    if catalogue::is_interactive_port(s.ip_proto, s.resp_port) || s.pkts < rules.keepalive_min_pkts
    {
        return None;
    }
    let duration_s = s.duration_nanos as f64 / 1e9;
    let bytes_per_pkt = s.orig_bytes.saturating_add(s.resp_bytes) as f64 / s.pkts as f64;
    let gap_s = duration_s / s.pkts as f64;
    (duration_s >= rules.keepalive_min_duration_s
        && bytes_per_pkt <= rules.keepalive_max_bytes_per_pkt
        && gap_s >= rules.keepalive_min_gap_s)
        .then_some(KeepAlive {
            duration_s,
            pkts: s.pkts,
            bytes_per_pkt,
            gap_s,
        })
}

/// One hidden pattern: a row of hidden.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenPattern {
    pub host: IpAddr,
    /// The destination address (the lowest one when the pattern spans several).
    pub dest: IpAddr,
    pub dest_addresses: usize,
    pub name: Option<String>,
    pub ip_proto: u8,
    pub port: u16,
    pub service: String,
    pub kind: PatternKind,
    pub sessions: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    pub period_s: Option<f64>,
    pub jitter: Option<f64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub score: f64,
    pub reason: String,
    /// Matched by the allow-list: known good, shown apart.
    pub allowed: bool,
    /// For a periodic pattern: the session starts the analysis kept (ns since the epoch,
    /// sorted; all of a group's when it has at most [`series::RECENT_STARTS`], else its latest
    /// ones), for plotting the intervals.
    /// Empty otherwise.
    pub starts_nanos: Vec<i64>,
}

impl HiddenPattern {
    /// The destination's name when it says more than the address: a name that only spells the
    /// address (an HTTP Host header of "192.0.2.90", or "[2001:db8::9]") is left out of displays.
    pub fn distinct_name(&self) -> Option<&str> {
        self.name.as_deref().filter(|name| {
            let bare = name
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .unwrap_or(name);
            bare.parse::<IpAddr>() != Ok(self.dest)
        })
    }

    /// The destination as displays show it: "updates.example.com (192.0.2.91) tcp/443", with
    /// " +N" when the pattern spans N more addresses.
    pub fn destination_label(&self) -> String {
        let proto = match self.ip_proto {
            6 => "tcp",
            17 => "udp",
            _ => "ip",
        };
        let mut label = match self.distinct_name() {
            Some(name) => format!("{name} ({}) {proto}/{}", self.dest, self.port),
            None => format!("{} {proto}/{}", self.dest, self.port),
        };
        if self.dest_addresses > 1 {
            label.push_str(&format!(" +{}", self.dest_addresses - 1));
        }
        label
    }
}

/// What [`HiddenAnalyzer::finish`] found.
#[derive(Debug)]
pub struct HiddenReport {
    options: HiddenOptions,
    broadcasts: Vec<IpAddr>,
    /// Every hidden pattern, beacons first, then by score and sessions.
    pub patterns: Vec<HiddenPattern>,
    verdicts: AHashMap<GroupKey, GroupVerdict>,
    group_sessions: AHashMap<GroupKey, u64>,
    dns: DnsNames,
    /// Sessions observed.
    pub sessions: u64,
    /// Sessions whose group could not be tracked (group cap reached).
    pub sessions_untracked: u64,
}

impl HiddenReport {
    pub fn options(&self) -> &HiddenOptions {
        &self.options
    }

    /// The patterns the user asked to see: local hosts, score and count thresholds met.
    pub fn shown(&self) -> impl Iterator<Item = &HiddenPattern> {
        self.patterns.iter().filter(|p| {
            self.options.is_local(p.host)
                && p.score >= self.options.min_score
                && p.sessions >= self.options.min_sessions
        })
    }

    /// A labeller for sessions.csv rows, to be called in start order.
    pub fn labeller(&self) -> Labeller<'_> {
        Labeller::new(self)
    }
}

#[cfg(test)]
mod tests;
