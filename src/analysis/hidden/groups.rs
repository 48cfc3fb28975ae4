//! The (host, destination, port, protocol) group table, compact for the groups seen once.
//!
//! Most groups of a large capture (refused connections, scans, one-off lookups) have a single
//! session. Such a group holds one fixed [`Slot`] (72 bytes, plus about 8 for the index): its
//! key, start, sizes, service (a number) and whether the session was a keep-alive; no
//! series and no string (the first server name seen, when there is one, is kept in a shared list).
//! A group gets its full state ([`Repeat`]: session count, latest start, keep-alive count and a
//! [`Series`] of starts) on its second session. Slots live in fixed chunks, so the table grows
//! without reallocation copies, and are found through a hash index of 4-byte slot numbers.
//!
//! When more groups come than the table holds, it keeps the `max_groups` whose [`priority`] (a
//! fixed hash of the key) is lowest, whatever order the sessions come in: a new group with a
//! lower priority than the highest in a full table takes that one's place, and the sessions of
//! a group that leaves or never enters are counted as untracked. So the groups kept, and every
//! count in them, are the same however the sessions of different groups interleave (as they do
//! between runs with several threads).
//!
//! Promises: at most `max_groups` groups, fixed memory per group, no panic on any input.

use super::GroupKey;
use super::periodicity::Sample;
use super::series::{Budget, Series};
use crate::capture::Timestamp;
use ahash::AHashMap;
use hashbrown::HashTable;
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// Slots per chunk (about 288 kB).
const CHUNK: usize = 4096;
/// "No entry" for the 4-byte references of a slot.
const NONE: u32 = u32::MAX;

/// One group; the counters cover every session of the group.
#[derive(Debug)]
struct Slot {
    key: GroupKey,
    first: i64,
    orig_bytes: u64,
    resp_bytes: u64,
    /// Index in [`Groups::names`], or [`NONE`].
    name: u32,
    /// Index in [`Groups::repeats`] once the group has a second session, or [`NONE`].
    repeat: u32,
    /// Low 15 bits: 1 + index in [`Groups::services`], 0 for none; top bit: whether the
    /// group's first session was a keep-alive.
    service_keepalive: u16,
}

/// The top bit of [`Slot::service_keepalive`].
const FIRST_KEEPALIVE: u16 = 1 << 15;
/// Service numbers go up to this (the program's service names are fewer: IANA's, a few thousand).
const MAX_SERVICE_NUMBER: u16 = FIRST_KEEPALIVE - 1;

impl Slot {
    fn service_number(&self) -> u16 {
        self.service_keepalive & MAX_SERVICE_NUMBER
    }

    fn first_keepalive(&self) -> bool {
        self.service_keepalive & FIRST_KEEPALIVE != 0
    }
}

/// What a group with more than one session adds.
#[derive(Debug)]
struct Repeat {
    sessions: u64,
    last: i64,
    keepalives: u64,
    series: Series,
}

/// One group's aggregate, as [`Groups::get`] shows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupView<'a> {
    pub key: GroupKey,
    pub sessions: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub keepalives: u64,
    pub service: Option<&'static str>,
    /// The first server name seen (content), not the DNS one.
    pub server_name: Option<&'a str>,
}

/// One observed session, as the table takes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Observed<'a> {
    pub start: Timestamp,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub keepalive: bool,
    pub service: Option<&'static str>,
    pub server_name: Option<&'a str>,
}

/// A group's place in the admission order of a full table: a hash of its key that is the same
/// on every machine and every run (splitmix64's finaliser over the key's fields).
pub(super) fn priority(key: &GroupKey) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn address(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) ^ (1 << 127),
        }
    }
    let (host, dest) = (address(key.host), address(key.dest));
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for word in [
        host as u64,
        (host >> 64) as u64,
        dest as u64,
        (dest >> 64) as u64,
        (u64::from(key.port) << 8) | u64::from(key.ip_proto),
    ] {
        h = mix(h ^ word);
    }
    h
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Groups {
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    chunks: Vec<Vec<Slot>>,
    len: usize,
    max_groups: usize,
    repeats: Vec<Repeat>,
    /// Places in `repeats` freed by groups that left the table.
    free_repeats: Vec<u32>,
    names: Vec<Box<str>>,
    /// Places in `names` freed by groups that left the table.
    free_names: Vec<u32>,
    services: Vec<&'static str>,
    service_numbers: AHashMap<&'static str, u16>,
    /// Once the table is full: (priority, slot) of every group, highest priority on top.
    full: BinaryHeap<(u64, u32)>,
}

impl Groups {
    pub fn new(max_groups: usize) -> Self {
        Groups {
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            chunks: Vec::new(),
            len: 0,
            max_groups: max_groups.min(NONE as usize),
            repeats: Vec::new(),
            free_repeats: Vec::new(),
            names: Vec::new(),
            free_names: Vec::new(),
            services: Vec::new(),
            service_numbers: AHashMap::new(),
            full: BinaryHeap::new(),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let i = index as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot> {
        let i = index as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn find(&self, key: &GroupKey) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let chunks = &self.chunks;
        self.index
            .find(hash, |&i| {
                let i = i as usize;
                chunks
                    .get(i / CHUNK)
                    .and_then(|c| c.get(i % CHUNK))
                    .is_some_and(|s| s.key == *key)
            })
            .copied()
    }

    fn service_number(&mut self, service: Option<&'static str>) -> u16 {
        let Some(service) = service else {
            return 0;
        };
        if let Some(n) = self.service_numbers.get(service) {
            return *n;
        }
        // Service names are the program's own constants, so the table stays small.
        match u16::try_from(self.services.len() + 1) {
            Ok(n) if n <= MAX_SERVICE_NUMBER => {
                self.services.push(service);
                self.service_numbers.insert(service, n);
                n
            }
            _ => 0,
        }
    }

    fn name_number(&mut self, name: Option<&str>) -> u32 {
        let Some(name) = name else {
            return NONE;
        };
        if let Some(free) = self.free_names.pop()
            && let Some(place) = self.names.get_mut(free as usize)
        {
            *place = name.into();
            return free;
        }
        if self.names.len() < NONE as usize {
            self.names.push(name.into());
            u32::try_from(self.names.len() - 1).unwrap_or(NONE)
        } else {
            NONE
        }
    }

    /// Adds one session to its group. Returns how many sessions this made untracked: 1 when
    /// the group cannot enter the full table, a group's whole count when it had to leave for
    /// this one, else 0.
    pub fn observe(&mut self, key: GroupKey, s: &Observed<'_>, budget: &mut Budget) -> u64 {
        let Some(index) = self.find(&key) else {
            return self.insert(key, s, budget);
        };
        let Some((repeat_index, slot_name, slot_service)) = self
            .slot(index)
            .map(|slot| (slot.repeat, slot.name, slot.service_number()))
        else {
            return 0;
        };
        let service = if slot_service == 0 {
            self.service_number(s.service)
        } else {
            slot_service
        };
        let name = if slot_name == NONE {
            self.name_number(s.server_name)
        } else {
            slot_name
        };
        let repeat_index = if repeat_index == NONE {
            // The second session: the first one's start and size are the group's so far.
            let Some(slot) = self.slot(index) else {
                return 0;
            };
            let mut series = Series::default();
            series.push(
                Sample {
                    start_nanos: slot.first,
                    bytes: slot.orig_bytes.saturating_add(slot.resp_bytes),
                },
                budget,
            );
            let repeat = Repeat {
                sessions: 1,
                last: slot.first,
                keepalives: u64::from(slot.first_keepalive()),
                series,
            };
            match self.free_repeats.pop() {
                Some(free) if (free as usize) < self.repeats.len() => {
                    if let Some(place) = self.repeats.get_mut(free as usize) {
                        *place = repeat;
                    }
                    free
                }
                _ => {
                    let Ok(n) = u32::try_from(self.repeats.len()) else {
                        return 0;
                    };
                    self.repeats.push(repeat);
                    n
                }
            }
        } else {
            repeat_index
        };
        let Some(slot) = self.slot_mut(index) else {
            return 0;
        };
        slot.repeat = repeat_index;
        slot.name = name;
        slot.service_keepalive = (slot.service_keepalive & FIRST_KEEPALIVE) | service;
        slot.first = slot.first.min(s.start.0);
        slot.orig_bytes = slot.orig_bytes.saturating_add(s.orig_bytes);
        slot.resp_bytes = slot.resp_bytes.saturating_add(s.resp_bytes);
        if let Some(repeat) = self.repeats.get_mut(repeat_index as usize) {
            repeat.sessions += 1;
            repeat.last = repeat.last.max(s.start.0);
            repeat.keepalives += u64::from(s.keepalive);
            repeat.series.push(
                Sample {
                    start_nanos: s.start.0,
                    bytes: s.orig_bytes.saturating_add(s.resp_bytes),
                },
                budget,
            );
        }
        0
    }

    fn insert(&mut self, key: GroupKey, s: &Observed<'_>, budget: &mut Budget) -> u64 {
        if self.len >= self.max_groups {
            return self.replace_highest(key, s, budget);
        }
        let Ok(index) = u32::try_from(self.len) else {
            return 1;
        };
        if self.chunks.last().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let slot = self.new_slot(key, s);
        let Some(chunk) = self.chunks.last_mut() else {
            return 1;
        };
        chunk.push(slot);
        self.len += 1;
        self.index_insert(key, index);
        if self.len == self.max_groups {
            // Full from here on: every group's priority, to find the one to give way.
            let heap: Vec<(u64, u32)> = self
                .chunks
                .iter()
                .flatten()
                .zip(0u32..)
                .map(|(slot, i)| (priority(&slot.key), i))
                .collect();
            self.full = BinaryHeap::from(heap);
        }
        0
    }

    /// A full table: the new group takes the place of the group of highest priority when its
    /// own is lower (that group's sessions become untracked), else it stays out.
    fn replace_highest(&mut self, key: GroupKey, s: &Observed<'_>, budget: &mut Budget) -> u64 {
        let mine = priority(&key);
        let Some(&(highest, index)) = self.full.peek() else {
            return 1;
        };
        if mine >= highest {
            return 1;
        }
        let Some(old) = self.slot(index) else {
            return 1;
        };
        let (old_key, old_repeat, old_name) = (old.key, old.repeat, old.name);
        let old_sessions = self
            .repeats
            .get(old_repeat as usize)
            .map_or(1, |r| r.sessions);
        // Out of the index, its series' budget given back, its places freed.
        let hash = self.hasher.hash_one(old_key);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == index) {
            entry.remove();
        }
        if let Some(repeat) = self.repeats.get_mut(old_repeat as usize) {
            std::mem::take(&mut repeat.series).release(budget);
            self.free_repeats.push(old_repeat);
        }
        if let Some(name) = self.names.get_mut(old_name as usize) {
            *name = Box::from("");
            self.free_names.push(old_name);
        }
        let slot = self.new_slot(key, s);
        let Some(place) = self.slot_mut(index) else {
            return 1;
        };
        *place = slot;
        self.index_insert(key, index);
        self.full.pop();
        self.full.push((mine, index));
        old_sessions
    }

    fn new_slot(&mut self, key: GroupKey, s: &Observed<'_>) -> Slot {
        Slot {
            key,
            first: s.start.0,
            orig_bytes: s.orig_bytes,
            resp_bytes: s.resp_bytes,
            name: self.name_number(s.server_name),
            repeat: NONE,
            service_keepalive: self.service_number(s.service)
                | if s.keepalive { FIRST_KEEPALIVE } else { 0 },
        }
    }

    fn index_insert(&mut self, key: GroupKey, index: u32) {
        let hash = self.hasher.hash_one(key);
        let (hasher, chunks) = (&self.hasher, &self.chunks);
        self.index.insert_unique(hash, index, |&i| {
            let i = i as usize;
            chunks
                .get(i / CHUNK)
                .and_then(|c| c.get(i % CHUNK))
                .map_or(0, |s| hasher.hash_one(s.key))
        });
    }

    /// Slot numbers of every group, in no particular order.
    pub fn indices(&self) -> std::ops::Range<u32> {
        0..u32::try_from(self.len).unwrap_or(NONE)
    }

    /// The group at slot `index`.
    pub fn get(&self, index: u32) -> Option<GroupView<'_>> {
        let slot = self.slot(index)?;
        let repeat = self.repeats.get(slot.repeat as usize);
        Some(GroupView {
            key: slot.key,
            sessions: repeat.map_or(1, |r| r.sessions),
            first: Timestamp(slot.first),
            last: Timestamp(repeat.map_or(slot.first, |r| r.last)),
            orig_bytes: slot.orig_bytes,
            resp_bytes: slot.resp_bytes,
            keepalives: repeat.map_or(u64::from(slot.first_keepalive()), |r| r.keepalives),
            service: slot
                .service_number()
                .checked_sub(1)
                .and_then(|i| self.services.get(usize::from(i)))
                .copied(),
            server_name: self.names.get(slot.name as usize).map(AsRef::as_ref),
        })
    }

    /// The series of a group with more than one session.
    pub fn series(&self, index: u32) -> Option<&Series> {
        let slot = self.slot(index)?;
        self.repeats.get(slot.repeat as usize).map(|r| &r.series)
    }

    pub fn series_mut(&mut self, index: u32) -> Option<&mut Series> {
        let repeat = self.slot(index)?.repeat;
        self.repeats.get_mut(repeat as usize).map(|r| &mut r.series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> GroupKey {
        GroupKey {
            host: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dest: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port,
            ip_proto: 6,
        }
    }

    fn budget() -> Budget {
        Budget {
            starts: 0,
            max_starts: 1000,
            sketched: 0,
            max_sketched: 10,
        }
    }

    fn session<'a>(
        start: i64,
        name: Option<&'a str>,
        service: Option<&'static str>,
    ) -> Observed<'a> {
        Observed {
            start: Timestamp(start),
            orig_bytes: 10,
            resp_bytes: 5,
            keepalive: start % 2 == 0,
            service,
            server_name: name,
        }
    }

    #[test]
    fn a_lone_session_takes_one_fixed_slot() {
        assert!(std::mem::size_of::<Slot>() <= 72);
    }

    #[test]
    fn counters_cover_every_session_and_the_first_name_and_service_stay() {
        let mut groups = Groups::new(10);
        let mut budget = budget();
        assert_eq!(
            groups.observe(key(80), &session(20, None, None), &mut budget),
            0
        );
        assert_eq!(
            groups.observe(
                key(443),
                &session(5, Some("a.example"), Some("ssl")),
                &mut budget
            ),
            0
        );
        assert_eq!(
            groups.observe(
                key(80),
                &session(10, Some("b.example"), Some("http")),
                &mut budget
            ),
            0
        );
        assert_eq!(
            groups.observe(
                key(80),
                &session(31, Some("c.example"), Some("ssl")),
                &mut budget
            ),
            0
        );
        let web = groups.get(0).unwrap();
        assert_eq!(web.key, key(80));
        assert_eq!(web.sessions, 3);
        assert_eq!((web.first, web.last), (Timestamp(10), Timestamp(31)));
        assert_eq!((web.orig_bytes, web.resp_bytes), (30, 15));
        // Starts 20 and 10 are even: keep-alives.
        assert_eq!(web.keepalives, 2);
        assert_eq!(web.service, Some("http"));
        assert_eq!(web.server_name, Some("b.example"));
        let starts: Vec<i64> = groups
            .series(0)
            .unwrap()
            .samples()
            .map(|s| s.start_nanos)
            .collect();
        assert_eq!(starts, vec![10, 20, 31]);
        let lone = groups.get(1).unwrap();
        assert_eq!(
            (lone.sessions, lone.first, lone.last),
            (1, Timestamp(5), Timestamp(5))
        );
        assert_eq!(lone.keepalives, 0);
        assert_eq!(
            (lone.service, lone.server_name),
            (Some("ssl"), Some("a.example"))
        );
        assert!(groups.series(1).is_none());
        assert_eq!(groups.indices(), 0..2);
    }

    #[test]
    fn thousands_of_service_names_are_kept_apart() {
        let names: Vec<&'static str> = (0..5000)
            .map(|i| &*Box::leak(format!("svc{i}").into_boxed_str()))
            .collect();
        let mut groups = Groups::new(10_000);
        let mut budget = budget();
        for (port, name) in names.iter().enumerate() {
            let s = session(1, None, Some(name));
            assert_eq!(groups.observe(key(port as u16), &s, &mut budget), 0);
        }
        for (i, name) in names.iter().enumerate() {
            let group = groups.get(i as u32).unwrap();
            assert_eq!(group.service, Some(*name));
            assert_eq!(group.keepalives, 0);
        }
    }

    #[test]
    fn past_the_cap_the_table_keeps_the_lowest_priorities_whatever_the_order() {
        // 40 groups of 1 to 3 sessions each (groups 0, 3, 6... have 3), into a table of 10,
        // in two orders: in turn, and the reverse.
        let sessions_of = |port: u16| 1 + u64::from(port.is_multiple_of(3)) * 2;
        let mut order: Vec<(u16, i64)> = Vec::new();
        for port in 0..40u16 {
            for n in 0..sessions_of(port) {
                order.push((port, i64::from(port) * 10 + n as i64));
            }
        }
        let mut tables = Vec::new();
        for sessions in [order.clone(), order.iter().rev().copied().collect()] {
            let mut groups = Groups::new(10);
            let mut budget = budget();
            let mut untracked = 0;
            for (port, start) in sessions {
                untracked += groups.observe(key(port), &session(start, None, None), &mut budget);
            }
            let mut kept: Vec<(u16, u64)> = groups
                .indices()
                .filter_map(|i| groups.get(i))
                .map(|g| (g.key.port, g.sessions))
                .collect();
            kept.sort();
            // Every session is either in a kept group or counted untracked.
            let in_table: u64 = kept.iter().map(|(_, n)| n).sum();
            assert_eq!(in_table + untracked, order.len() as u64);
            // Only the starts of kept groups hold budget.
            let starts: usize = groups
                .indices()
                .filter_map(|i| groups.series(i))
                .map(|s| s.samples().count())
                .sum();
            assert_eq!(budget.starts, starts);
            tables.push((kept, untracked));
        }
        assert_eq!(tables[0], tables[1]);
        // The ten groups of lowest priority, each with all of its sessions.
        let mut lowest: Vec<u16> = (0..40).collect();
        lowest.sort_by_key(|&port| priority(&key(port)));
        let mut expected: Vec<(u16, u64)> = lowest[..10]
            .iter()
            .map(|&port| (port, sessions_of(port)))
            .collect();
        expected.sort();
        assert_eq!(tables[0].0, expected);
    }

    #[test]
    fn a_group_that_left_the_table_frees_its_name() {
        let mut groups = Groups::new(1);
        let mut budget = budget();
        let mut ports: Vec<u16> = (0..200).collect();
        // Highest priority first, so that every new group takes the place of the last.
        ports.sort_by_key(|&port| std::cmp::Reverse(priority(&key(port))));
        for port in ports {
            groups.observe(key(port), &session(1, Some("x.example"), None), &mut budget);
            groups.observe(key(port), &session(2, Some("x.example"), None), &mut budget);
        }
        assert_eq!(groups.names.len(), 1);
        assert_eq!(groups.repeats.len(), 1);
        assert_eq!(groups.get(0).unwrap().server_name, Some("x.example"));
    }
}
