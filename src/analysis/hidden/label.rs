//! The initiator label of each session: `user` or `technology`, with a readable reason.
//!
//! [`Labeller::label`] is called once per sessions.csv row, in start order, with the row's
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
use ahash::AHashMap;
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

impl Label {
    fn technology(reason: String) -> Self {
        Label {
            initiator: Initiator::Technology,
            reason,
        }
    }
    fn user(reason: String) -> Self {
        Label {
            initiator: Initiator::User,
            reason,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct HostActivity {
    last_user: Option<Timestamp>,
    /// The last page load: when, and what (name or address).
    page: Option<(Timestamp, String)>,
}

/// Labels sessions.csv rows; see the module documentation.
pub struct Labeller<'a> {
    report: &'a HiddenReport,
    hosts: AHashMap<IpAddr, HostActivity>,
    /// The start of the session last labelled, from its tag.
    last_start: Option<Timestamp>,
}

impl<'a> Labeller<'a> {
    pub(super) fn new(report: &'a HiddenReport) -> Self {
        Labeller {
            report,
            hosts: AHashMap::new(),
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
        match SessionSketch::decode(tag) {
            Some(sketch) => {
                self.last_start = Some(sketch.start);
                self.label_sketch(&sketch)
            }
            None => {
                self.last_start = None;
                Label::user("no session facts recorded".into())
            }
        }
    }

    pub fn label_sketch(&mut self, s: &SessionSketch) -> Label {
        let label = self.decide(s);
        if label.initiator == Initiator::User {
            if self.hosts.len() >= MAX_HOSTS && !self.hosts.contains_key(&s.orig) {
                self.hosts.clear();
            }
            let what = self.destination_text(s);
            let host = self.hosts.entry(s.orig).or_default();
            host.last_user = Some(s.start);
            let in_page = host
                .page
                .as_ref()
                .is_some_and(|(t, _)| seconds_between(*t, s.start) <= PAGE_LOAD_WINDOW_S);
            if !in_page && catalogue::is_web_port(s.ip_proto, s.resp_port) {
                host.page = Some((s.start, what));
            }
        }
        label
    }

    fn decide(&self, s: &SessionSketch) -> Label {
        let report = self.report;
        let key = GroupKey::of(s);
        let verdict = report.verdicts.get(&key);
        let periodic = verdict.and_then(|v| {
            v.periodicity
                .as_ref()
                .map(|p| periodic_text(p, v.addresses, v.name.as_deref()))
        });
        let with_periodic = |reason: String| match &periodic {
            Some(p) => format!("{reason}; {p}"),
            None => reason,
        };

        // 1. Multicast and broadcast: nobody addresses a whole segment by hand.
        if let Some(g) = catalogue::group_destination(s.resp, &report.broadcasts) {
            let word = match g {
                GroupDestination::Multicast => "multicast group",
                GroupDestination::Broadcast => "broadcast",
            };
            let reason = match catalogue::by_port(s.ip_proto, s.resp_port) {
                Some(hit) => format!("{} to {word} {}", hit.reason, s.resp),
                None => format!("{word} traffic to {}", s.resp),
            };
            return Label::technology(reason);
        }
        // 2. Infrastructure by protocol and port.
        if let Some(hit) = catalogue::by_port(s.ip_proto, s.resp_port) {
            return Label::technology(with_periodic(hit.reason.to_string()));
        }
        // 3. Infrastructure by the name the session was made for.
        let name = self.name(s);
        if let Some((name, _)) = &name {
            if let Some(hit) = catalogue::by_name(name) {
                return Label::technology(with_periodic(format!("{} ({name})", hit.reason)));
            }
            if catalogue::looks_like_certificate_check(name) {
                return Label::technology(with_periodic(format!(
                    "certificate status check ({name})"
                )));
            }
        }
        // 4. A timer: the group ticks.
        if let Some(p) = periodic {
            let to = match (&name, verdict.is_some_and(|v| v.addresses > 1)) {
                (Some((n, _)), false) => format!(" to {n}"),
                _ => String::new(),
            };
            return Label::technology(format!("{p}{to}"));
        }
        // 5. A connection kept up by small spaced-out messages.
        if let Some(k) = keep_alive(s) {
            return Label::technology(format!(
                "long-lived connection ({:.0} s) kept up by small messages: {} packets, {:.0} B \
                 each on average, one every {:.1} s",
                k.duration_s, k.pkts, k.bytes_per_pkt, k.gap_s
            ));
        }
        let host = self.hosts.get(&s.orig);
        // 6. A page's assets belong to the page a person opened.
        if let Some((t, what)) = host.and_then(|h| h.page.as_ref()) {
            let since = seconds_between(*t, s.start);
            if since <= PAGE_LOAD_WINDOW_S {
                return Label::user(format!(
                    "part of the page load of {what} started {since:.2} s earlier"
                ));
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
            return Label::technology(format!(
                "during an idle period: no user activity for {idle:.0} s; {repeats} sessions to \
                 this destination"
            ));
        }
        // 8. Nothing automatic about it.
        let reason = if catalogue::is_interactive_port(s.ip_proto, s.resp_port) {
            format!("interactive session (port {})", s.resp_port)
        } else if catalogue::is_web_port(s.ip_proto, s.resp_port) {
            format!("page or request to {}", self.destination_text(s))
        } else {
            "no sign of automation: not infrastructure, not periodic, not a keep-alive".into()
        };
        Label::user(reason)
    }

    /// The name the session was made for: from content, else from the DNS answer that gave
    /// its address (DNS causality), with the seconds since that lookup.
    fn name<'s>(&'s self, s: &'s SessionSketch) -> Option<(&'s str, Option<f64>)> {
        if let Some(n) = &s.server_name {
            return Some((n, None));
        }
        self.report
            .dns
            .name_for(s.orig, s.resp)
            .map(|(n, t)| (n, Some(seconds_between(t, s.start))))
    }

    fn destination_text(&self, s: &SessionSketch) -> String {
        match self.name(s) {
            Some((n, _)) => n.to_string(),
            None => s.resp.to_string(),
        }
    }
}

fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    later.0.saturating_sub(earlier.0) as f64 / 1e9
}
