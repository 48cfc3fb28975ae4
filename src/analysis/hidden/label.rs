//! The initiator label of each session: `user` or `technology`, with a readable reason.
//!
//! [`Labeller::label_into`] is called once per sessions.csv row, in start order, with the row's
//! [`SessionSketch`] tag. The rules, first match wins (docs/initiators.md):
//!
//! 1. multicast or broadcast destination;
//! 2. catalogue by protocol and port;
//! 3. catalogue by the server name (content, or the DNS answer that gave the address);
//! 4. the (host, destination) group is periodic;
//! 5. the session is a keep-alive;
//! 6. part of a page load the host started just before (user);
//! 7. a repeated destination contacted while the host shows no user activity;
//! 8. otherwise user.
//!
//! Promises: bounded memory (one entry per originating host, at most [`MAX_HOSTS`]; past it the
//! table restarts), no panic on any tag.

use super::catalogue::{self, GroupDestination};
use super::{GroupKey, HiddenReport, SessionSketch, keep_alive, periodic_text};
use crate::capture::Timestamp;
use crate::text::push_ip;
use ahash::AHashMap;
use std::io::Write as _;
use std::net::IpAddr;

/// Originating hosts whose recent activity is remembered.
pub const MAX_HOSTS: usize = 65_536;
/// Sessions starting this soon after a page load (web) are part of it.
pub const PAGE_LOAD_WINDOW_S: f64 = 5.0;
/// A host with no user session for this long is idle.
pub const IDLE_AFTER_S: f64 = 300.0;
/// Sessions to a destination before contacting it while idle counts as technology.
pub const IDLE_REPEAT_MIN: u64 = 3;

/// Who started a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    User,
    Technology,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::User => "user",
            Initiator::Technology => "technology",
        }
    }
}

/// A session's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub initiator: Initiator,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct HostActivity {
    last_user: Option<Timestamp>,
    /// The last page load: when, and what (name or address, as text).
    page: Option<(Timestamp, Vec<u8>)>,
}

/// Labels sessions.csv rows; see the module documentation.
pub struct Labeller<'a> {
    report: &'a HiddenReport,
    hosts: AHashMap<IpAddr, HostActivity>,
    /// Each periodic group's reason text, written once rather than once per row.
    periodic: AHashMap<GroupKey, String>,
    /// The start of the session last labelled, from its tag.
    last_start: Option<Timestamp>,
}

impl<'a> Labeller<'a> {
    pub(super) fn new(report: &'a HiddenReport) -> Self {
        let periodic = report
            .verdicts
            .iter()
            .filter_map(|(key, v)| {
                let p = v.periodicity.as_ref()?;
                Some((*key, periodic_text(p, v.addresses, v.name.as_deref())))
            })
            .collect();
        Labeller {
            report,
            hosts: AHashMap::new(),
            periodic,
            last_start: None,
        }
    }

    /// When the session last labelled started (`None` when its tag could not be read): the
    /// caller need not parse it back out of the row.
    pub fn last_start(&self) -> Option<Timestamp> {
        self.last_start
    }

    /// The label for the row whose tag is `tag` (rows must come in start order).
    pub fn label(&mut self, tag: &[u8]) -> Label {
        let mut reason = Vec::new();
        let initiator = self.label_into(tag, &mut reason);
        Label {
            initiator,
            reason: String::from_utf8_lossy(&reason).into_owned(),
        }
    }

    /// Like [`Labeller::label`], the reason appended to `reason`: the once-per-row path, which
    /// allocates nothing once its buffers have grown.
    pub fn label_into(&mut self, tag: &[u8], reason: &mut Vec<u8>) -> Initiator {
        match SessionSketch::decode(tag) {
            Some(sketch) => {
                self.last_start = Some(sketch.start);
                self.label_sketch(&sketch, reason)
            }
            None => {
                self.last_start = None;
                reason.extend_from_slice(b"no session facts recorded");
                Initiator::User
            }
        }
    }

    fn label_sketch(&mut self, s: &SessionSketch<'_>, reason: &mut Vec<u8>) -> Initiator {
        let initiator = self.decide(s, reason);
        if initiator == Initiator::User {
            if self.hosts.len() >= MAX_HOSTS && !self.hosts.contains_key(&s.orig) {
                self.hosts.clear();
            }
            let in_page = self
                .hosts
                .get(&s.orig)
                .and_then(|h| h.page.as_ref())
                .is_some_and(|(t, _)| seconds_between(*t, s.start) <= PAGE_LOAD_WINDOW_S);
            let host = self.hosts.entry(s.orig).or_default();
            host.last_user = Some(s.start);
            if !in_page && catalogue::is_web_port(s.ip_proto, s.resp_port) {
                // The text buffer of the host's previous page load is reused.
                let (t, what) = host.page.get_or_insert_with(Default::default);
                *t = s.start;
                what.clear();
                push_destination(self.report, s, what);
            }
        }
        initiator
    }

    /// Appends the reason to `out` and returns who started the session.
    fn decide(&self, s: &SessionSketch<'_>, out: &mut Vec<u8>) -> Initiator {
        let report = self.report;
        let key = GroupKey::of(s);
        let verdict = report.verdicts.get(&key);
        let periodic = verdict
            .filter(|v| v.periodicity.is_some())
            .and_then(|_| self.periodic.get(&key));
        let with_periodic = |out: &mut Vec<u8>| {
            if let Some(p) = periodic {
                out.extend_from_slice(b"; ");
                out.extend_from_slice(p.as_bytes());
            }
        };

        // 1. Multicast and broadcast: nobody addresses a whole segment by hand.
        if let Some(g) = catalogue::group_destination(s.resp, &report.broadcasts) {
            let word: &[u8] = match g {
                GroupDestination::Multicast => b"multicast group",
                GroupDestination::Broadcast => b"broadcast",
            };
            match catalogue::by_port(s.ip_proto, s.resp_port) {
                Some(hit) => {
                    out.extend_from_slice(hit.reason.as_bytes());
                    out.extend_from_slice(b" to ");
                    out.extend_from_slice(word);
                    out.push(b' ');
                }
                None => {
                    out.extend_from_slice(word);
                    out.extend_from_slice(b" traffic to ");
                }
            }
            push_ip(out, s.resp);
            return Initiator::Technology;
        }
        // 2. Infrastructure by protocol and port.
        if let Some(hit) = catalogue::by_port(s.ip_proto, s.resp_port) {
            out.extend_from_slice(hit.reason.as_bytes());
            with_periodic(out);
            return Initiator::Technology;
        }
        // 3. Infrastructure by the name the session was made for.
        let name = made_for(report, s);
        if let Some((name, _)) = &name {
            if let Some(hit) = catalogue::by_name(name) {
                out.extend_from_slice(hit.reason.as_bytes());
                out.extend_from_slice(b" (");
                out.extend_from_slice(name.as_bytes());
                out.push(b')');
                with_periodic(out);
                return Initiator::Technology;
            }
            if catalogue::looks_like_certificate_check(name) {
                out.extend_from_slice(b"certificate status check (");
                out.extend_from_slice(name.as_bytes());
                out.push(b')');
                with_periodic(out);
                return Initiator::Technology;
            }
        }
        // 4. A timer: the group ticks.
        if let Some(p) = periodic {
            out.extend_from_slice(p.as_bytes());
            if let (Some((n, _)), false) = (&name, verdict.is_some_and(|v| v.addresses > 1)) {
                out.extend_from_slice(b" to ");
                out.extend_from_slice(n.as_bytes());
            }
            return Initiator::Technology;
        }
        // 5. A connection kept up by small spaced-out messages.
        if let Some(k) = keep_alive(s) {
            let _ = write!(
                out,
                "long-lived connection ({:.0} s) kept up by small messages: {} packets, {:.0} B \
                 each on average, one every {:.1} s",
                k.duration_s, k.pkts, k.bytes_per_pkt, k.gap_s
            );
            return Initiator::Technology;
        }
        let host = self.hosts.get(&s.orig);
        // 6. A page's assets belong to the page a person opened.
        if let Some((t, what)) = host.and_then(|h| h.page.as_ref()) {
            let since = seconds_between(*t, s.start);
            if since <= PAGE_LOAD_WINDOW_S {
                out.extend_from_slice(b"part of the page load of ");
                out.extend_from_slice(what);
                out.extend_from_slice(b" started ");
                push_seconds_2dp(out, *t, s.start);
                out.extend_from_slice(b" s earlier");
                return Initiator::User;
            }
        }
        // 7. A destination contacted again and again while nobody is at the keyboard.
        let repeats = report.group_sessions.get(&key).copied().unwrap_or(0);
        let idle_for = host
            .and_then(|h| h.last_user)
            .map(|t| seconds_between(t, s.start));
        if repeats >= IDLE_REPEAT_MIN
            && let Some(idle) = idle_for.filter(|&i| i >= IDLE_AFTER_S)
        {
            let _ = write!(
                out,
                "during an idle period: no user activity for {idle:.0} s; {repeats} sessions to \
                 this destination"
            );
            return Initiator::Technology;
        }
        // 8. Nothing automatic about it.
        if catalogue::is_interactive_port(s.ip_proto, s.resp_port) {
            out.extend_from_slice(b"interactive session (port ");
            out.extend_from_slice(itoa::Buffer::new().format(s.resp_port).as_bytes());
            out.push(b')');
        } else if catalogue::is_web_port(s.ip_proto, s.resp_port) {
            out.extend_from_slice(b"page or request to ");
            push_destination(report, s, out);
        } else {
            out.extend_from_slice(
                b"no sign of automation: not infrastructure, not periodic, not a keep-alive",
            );
        }
        Initiator::User
    }
}

/// The name the session was made for: from content, else from the DNS answer that gave its
/// address (DNS causality), with the seconds since that lookup.
fn made_for<'s>(
    report: &'s HiddenReport,
    s: &'s SessionSketch<'_>,
) -> Option<(&'s str, Option<f64>)> {
    if let Some(n) = s.server_name {
        return Some((n, None));
    }
    report
        .dns
        .name_for(s.orig, s.resp)
        .map(|(n, t)| (n, Some(seconds_between(t, s.start))))
}

/// Appends the destination's name, else its address.
fn push_destination(report: &HiddenReport, s: &SessionSketch<'_>, out: &mut Vec<u8>) {
    match made_for(report, s) {
        Some((n, _)) => out.extend_from_slice(n.as_bytes()),
        None => push_ip(out, s.resp),
    }
}

fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    later.0.saturating_sub(earlier.0) as f64 / 1e9
}

/// [`seconds_between`] as `{:.2}` writes it, in integers: the nanoseconds decide the rounding
/// except at an exact half hundredth (where the float's own rounding decides, so `fmt` does)
/// and outside 0..=10^15 ns (where the float may no longer tell the two sides apart).
fn push_seconds_2dp(out: &mut Vec<u8>, earlier: Timestamp, later: Timestamp) {
    const NANOS_PER_HUNDREDTH: i64 = 10_000_000;
    let nanos = later.0.saturating_sub(earlier.0);
    let (hundredths, rest) = (nanos / NANOS_PER_HUNDREDTH, nanos % NANOS_PER_HUNDREDTH);
    if !(0..=1_000_000_000_000_000).contains(&nanos) || rest == NANOS_PER_HUNDREDTH / 2 {
        let _ = write!(out, "{:.2}", seconds_between(earlier, later));
        return;
    }
    let hundredths = hundredths + i64::from(rest > NANOS_PER_HUNDREDTH / 2);
    out.extend_from_slice(itoa::Buffer::new().format(hundredths / 100).as_bytes());
    out.push(b'.');
    let fraction = (hundredths % 100) as u8;
    out.extend_from_slice(&[b'0' + fraction / 10, b'0' + fraction % 10]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_with_two_decimals_are_written_as_fmt_writes_them() {
        let mut nanos: Vec<i64> = vec![
            0,
            1,
            4_999_999,
            5_000_000,
            5_000_001,
            15_000_000,
            25_000_000,
            994_999_999,
            995_000_000,
            999_999_999,
            4_995_000_000,
            5_000_000_000,
            -1,
            -5_000_000,
            1_000_000_000_000_000,
            1_000_000_000_000_001,
            i64::MAX,
        ];
        // A deterministic spread over 0-10 s.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            nanos.push((x % 10_000_000_000) as i64);
        }
        for n in nanos {
            let (earlier, later) = (Timestamp(0), Timestamp(n));
            let mut out = Vec::new();
            push_seconds_2dp(&mut out, earlier, later);
            let expected = format!("{:.2}", seconds_between(earlier, later));
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{n} ns");
        }
    }
}
