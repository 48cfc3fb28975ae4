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
//! Promises: at most `max_groups` groups, fixed memory per group, no panic on any input.

use super::GroupKey;
use super::periodicity::Sample;
use super::series::{Budget, Series};
use crate::capture::Timestamp;
use ahash::AHashMap;
use hashbrown::HashTable;

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

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Groups {
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    chunks: Vec<Vec<Slot>>,
    len: usize,
    max_groups: usize,
    repeats: Vec<Repeat>,
    names: Vec<Box<str>>,
    services: Vec<&'static str>,
    service_numbers: AHashMap<&'static str, u16>,
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
            names: Vec::new(),
            services: Vec::new(),
            service_numbers: AHashMap::new(),
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
        match name {
            Some(name) if self.names.len() < NONE as usize => {
                self.names.push(name.into());
                u32::try_from(self.names.len() - 1).unwrap_or(NONE)
            }
            _ => NONE,
        }
    }

    /// Adds one session to its group. False when the group is new and the table is full.
    pub fn observe(&mut self, key: GroupKey, s: &Observed<'_>, budget: &mut Budget) -> bool {
        let Some(index) = self.find(&key) else {
            return self.insert(key, s);
        };
        let Some((repeat_index, slot_name, slot_service)) = self
            .slot(index)
            .map(|slot| (slot.repeat, slot.name, slot.service_number()))
        else {
            return true;
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
                return true;
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
            let Ok(n) = u32::try_from(self.repeats.len()) else {
                return true;
            };
            self.repeats.push(repeat);
            n
        } else {
            repeat_index
        };
        let Some(slot) = self.slot_mut(index) else {
            return true;
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
        true
    }

    fn insert(&mut self, key: GroupKey, s: &Observed<'_>) -> bool {
        if self.len >= self.max_groups {
            return false;
        }
        let Ok(index) = u32::try_from(self.len) else {
            return false;
        };
        if self.chunks.last().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let slot = Slot {
            key,
            first: s.start.0,
            orig_bytes: s.orig_bytes,
            resp_bytes: s.resp_bytes,
            name: self.name_number(s.server_name),
            repeat: NONE,
            service_keepalive: self.service_number(s.service)
                | if s.keepalive { FIRST_KEEPALIVE } else { 0 },
        };
        let Some(chunk) = self.chunks.last_mut() else {
            return false;
        };
        chunk.push(slot);
        self.len += 1;
        let hash = self.hasher.hash_one(key);
        let (hasher, chunks) = (&self.hasher, &self.chunks);
        self.index.insert_unique(hash, index, |&i| {
            let i = i as usize;
            chunks
                .get(i / CHUNK)
                .and_then(|c| c.get(i % CHUNK))
                .map_or(0, |s| hasher.hash_one(s.key))
        });
        true
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
        assert!(groups.observe(key(80), &session(20, None, None), &mut budget));
        assert!(groups.observe(
            key(443),
            &session(5, Some("a.example"), Some("ssl")),
            &mut budget
        ));
        assert!(groups.observe(
            key(80),
            &session(10, Some("b.example"), Some("http")),
            &mut budget
        ));
        assert!(groups.observe(
            key(80),
            &session(31, Some("c.example"), Some("ssl")),
            &mut budget
        ));
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
            assert!(groups.observe(key(port as u16), &s, &mut budget));
        }
        for (i, name) in names.iter().enumerate() {
            let group = groups.get(i as u32).unwrap();
            assert_eq!(group.service, Some(*name));
            assert_eq!(group.keepalives, 0);
        }
    }

    #[test]
    fn past_the_cap_new_groups_are_refused_and_known_ones_still_count() {
        let mut groups = Groups::new(CHUNK + 1);
        let mut budget = budget();
        for port in 0..=CHUNK as u16 {
            assert!(groups.observe(key(port), &session(1, None, None), &mut budget));
        }
        assert!(!groups.observe(key(60_000), &session(2, None, None), &mut budget));
        assert!(groups.observe(key(CHUNK as u16), &session(3, None, None), &mut budget));
        assert_eq!(groups.get(CHUNK as u32).unwrap().sessions, 2);
        assert!(groups.get(CHUNK as u32 + 1).is_none());
    }
}
