//! IP fragment reassembly for IPv4 and IPv6.
//!
//! Owns the fragments of datagrams not yet complete, keyed by (source, destination,
//! identification, and for IPv4 the protocol), and rebuilds each datagram once every byte has
//! arrived: the offset-0 fragment's header with the fragment fields removed and the length set to
//! the whole datagram, then the payload, so the ordinary IP parsing runs on it unchanged.
//!
//! Policy (docs/zeek-differences.md, "IP fragments"): overlapping bytes keep what arrived first
//! (as Zeek does); overlaps are counted, and separately those whose bytes differ. A datagram is
//! given up when it times out (capture time since its first fragment, Zeek's `frag_timeout`,
//! 5 minutes by default, 0 = never), when the limits on pending datagrams or pending bytes need
//! room (oldest first), or when it is malformed (longer than an IP length field can state, or
//! more than [`MAX_FRAGMENTS_PER_DATAGRAM`] fragments); every fragment given up is counted.
//! Promises: no panic on any bytes, memory bounded by the configured limits, and allocation only
//! for fragmented datagrams (an unfragmented packet never reaches this module).

use super::ip::IpLayer;
use crate::capture::Timestamp;
use crate::config::FragmentConfig;
use ahash::AHashMap;
use std::collections::VecDeque;
use std::net::IpAddr;

/// More fragments than this in one datagram is not real traffic (a 64 KiB datagram over IPv6's
/// minimum MTU of 1280 bytes takes 52).
pub const MAX_FRAGMENTS_PER_DATAGRAM: u32 = 128;
/// The longest IP datagram a length field can state (IPv4 total length, IPv6 payload length).
const MAX_IP_LENGTH: usize = 65535;
/// Bookkeeping bytes charged per pending datagram on top of its buffers.
const ENTRY_OVERHEAD_BYTES: usize = 160;

const PROTO_HOP_BY_HOP: u8 = 0;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_DEST_OPTS: u8 = 60;
/// Extension headers walked before the fragment header, at most.
const MAX_IPV6_EXT_HEADERS: usize = 16;

/// What the reassembler did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentStats {
    /// Fragments taken for reassembly.
    pub fragments: u64,
    /// Datagrams rebuilt from their fragments (each then counts as one packet).
    pub reassembled: u64,
    /// Datagrams given up because their fragments stopped arriving (`frag_timeout`).
    pub timed_out: u64,
    /// Datagrams given up to respect the limits on pending datagrams or bytes.
    pub evicted: u64,
    /// Datagrams given up as malformed (too long, too many fragments).
    pub malformed: u64,
    /// Datagrams still incomplete when the statistics were taken (end of the capture).
    pub pending: u64,
    /// Fragments of datagrams that never completed (timed out, evicted, malformed, pending).
    pub fragments_lost: u64,
    /// Fragments overlapping bytes already received (duplicates included).
    pub overlapping: u64,
    /// Of those, fragments whose overlapping bytes differ from the ones kept.
    pub overlapping_different: u64,
    /// Fragments captured only in part (the snaplen): not reassembled, decoded as they are.
    pub cut_by_snaplen: u64,
    /// Most datagrams pending at once.
    pub peak_pending: u64,
}

impl FragmentStats {
    /// Adds `other` (another worker's or file's counts); peaks add up (an upper bound).
    pub fn merge(&mut self, other: &FragmentStats) {
        let pairs = [
            (&mut self.fragments, other.fragments),
            (&mut self.reassembled, other.reassembled),
            (&mut self.timed_out, other.timed_out),
            (&mut self.evicted, other.evicted),
            (&mut self.malformed, other.malformed),
            (&mut self.pending, other.pending),
            (&mut self.fragments_lost, other.fragments_lost),
            (&mut self.overlapping, other.overlapping),
            (&mut self.overlapping_different, other.overlapping_different),
            (&mut self.cut_by_snaplen, other.cut_by_snaplen),
            (&mut self.peak_pending, other.peak_pending),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }
}

/// What one reassembled datagram's fragments did that an evader would do, for its session's
/// `anomalies` (Zeek's weird names: fragment_overlap, fragment_inconsistency,
/// fragment_size_inconsistency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyNotes {
    /// Fragments overlapping bytes already received, with the same bytes (duplicates too).
    pub overlap_same: u32,
    /// Fragments overlapping bytes already received, with other bytes.
    pub overlap_different: u32,
    /// Fragments disagreeing about the datagram's length (a last fragment ending before bytes
    /// already received, or a fragment reaching past the last one's end).
    pub size_inconsistent: u32,
    /// Fragments whose TTL (hop limit) differs from the first fragment received.
    pub ttl_changes: u32,
}

/// What became of one fragment handed to [`FragmentReassembler::add`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FragmentVerdict {
    /// Not taken: the fragment was cut by the snaplen (or its IPv4 header checksum is wrong
    /// and checksums are verified), so it is decoded as it stands, like Zeek does.
    NotTaken,
    /// Taken; its datagram is not complete (or was given up, as the statistics count).
    Held,
    /// This fragment completed its datagram: the rebuilt IP packet, header first, and what
    /// its fragments did.
    Complete(Vec<u8>, ReassemblyNotes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// IPv4's protocol (part of its reassembly key, RFC 791); 0 for IPv6 (RFC 8200 keys by
    /// addresses and identification only).
    protocol: u8,
}

/// The header of the offset-0 fragment, kept to rebuild the datagram.
#[derive(Debug)]
struct FirstHeader {
    /// IPv4: the whole header. IPv6: the fixed header and the extension headers before the
    /// fragment header (the unfragmentable part).
    bytes: Vec<u8>,
    /// IPv6: where the next-header byte that named the fragment header sits, and the protocol
    /// the fragment header names (written there when rebuilding).
    v6_next_header: Option<(usize, u8)>,
}

#[derive(Debug)]
struct Pending {
    serial: u64,
    first_seen: Timestamp,
    first: Option<FirstHeader>,
    payload: Vec<u8>,
    /// Byte ranges of `payload` received, sorted, disjoint and not touching.
    ranges: Vec<(usize, usize)>,
    /// Payload length, known once the last fragment (more-fragments clear) arrived.
    total: Option<usize>,
    fragments: u32,
    /// TTL of the first fragment received.
    first_ttl: Option<u8>,
    notes: ReassemblyNotes,
}

impl Pending {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD_BYTES
            + self.payload.capacity()
            + self.first.as_ref().map_or(0, |f| f.bytes.capacity())
            + self.ranges.capacity() * std::mem::size_of::<(usize, usize)>()
    }

    fn is_complete(&self) -> bool {
        match (self.total, &self.first) {
            (Some(0), Some(_)) => self.ranges.is_empty(),
            (Some(total), Some(_)) => self.ranges.as_slice() == [(0, total)],
            _ => false,
        }
    }

    /// Copies `data` at `offset` where nothing was received yet (first arrival wins).
    /// Returns (overlaps, overlapping bytes differ).
    fn insert(&mut self, offset: usize, data: &[u8]) -> (bool, bool) {
        let end = offset + data.len();
        if data.is_empty() {
            return (false, false);
        }
        if self.payload.len() < end {
            self.payload.reserve_exact(end - self.payload.len());
            self.payload.resize(end, 0);
        }
        let (mut overlap, mut differ) = (false, false);
        let mut cursor = offset;
        let copy = |from: usize, to: usize, payload: &mut Vec<u8>| {
            if let (Some(dst), Some(src)) = (
                payload.get_mut(from..to),
                data.get(from - offset..to - offset),
            ) {
                dst.copy_from_slice(src);
            }
        };
        for &(start, stop) in &self.ranges {
            if stop <= cursor || start >= end {
                continue;
            }
            if start > cursor {
                copy(cursor, start, &mut self.payload);
            }
            let (from, to) = (start.max(cursor), stop.min(end));
            overlap = true;
            if self.payload.get(from..to) != data.get(from - offset..to - offset) {
                differ = true;
            }
            cursor = to;
        }
        if cursor < end {
            copy(cursor, end, &mut self.payload);
        }
        self.add_range(offset, end);
        (overlap, differ)
    }

    fn add_range(&mut self, start: usize, end: usize) {
        let at = self.ranges.partition_point(|r| r.1 < start);
        let mut merged = (start, end);
        let mut last = at;
        while let Some(&(s, e)) = self.ranges.get(last) {
            if s > merged.1 {
                break;
            }
            merged = (merged.0.min(s), merged.1.max(e));
            last += 1;
        }
        self.ranges.splice(at..last, [merged]);
    }

    /// The datagram as one IP packet, or None when its length cannot be stated.
    fn rebuild(self) -> Option<Vec<u8>> {
        let total = self.total?;
        let first = self.first?;
        let mut packet = first.bytes;
        let header_len = packet.len();
        match first.v6_next_header {
            None => {
                let length = u16::try_from(header_len.checked_add(total)?).ok()?;
                packet.get_mut(2..4)?.copy_from_slice(&length.to_be_bytes());
                // Keep don't-fragment; clear more-fragments and the offset.
                let flags = packet.get(6).copied()? & 0x40;
                packet.get_mut(6..8)?.copy_from_slice(&[flags, 0]);
                packet.get_mut(10..12)?.copy_from_slice(&[0, 0]);
                let checksum = !fold(sum_words(&packet));
                packet
                    .get_mut(10..12)?
                    .copy_from_slice(&checksum.to_be_bytes());
            }
            Some((at, protocol)) => {
                let length = u16::try_from(header_len.checked_sub(40)?.checked_add(total)?).ok()?;
                *packet.get_mut(at)? = protocol;
                packet.get_mut(4..6)?.copy_from_slice(&length.to_be_bytes());
            }
        }
        packet.extend_from_slice(self.payload.get(..total)?);
        Some(packet)
    }
}

fn sum_words(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => u32::from(u16::from_be_bytes([*hi, *lo])),
            [hi] => u32::from(*hi) << 8,
            _ => 0,
        })
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One fragment's place in its datagram, read from its bytes.
struct Piece<'a> {
    key: Key,
    offset: usize,
    more: bool,
    data: &'a [u8],
    first: Option<FirstHeader>,
    ttl: u8,
}

/// Where the IPv6 fragment header sits: the unfragmentable part's length, the position of the
/// next-header byte naming the fragment header, and what the fragment header names.
fn ipv6_fragment_header(packet: &[u8]) -> Option<(usize, usize, u8)> {
    let mut next = *packet.get(6)?;
    let mut next_at = 6usize;
    let mut at = 40usize;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            PROTO_FRAGMENT => return Some((at, next_at, *packet.get(at)?)),
            PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS => {
                (usize::from(*packet.get(at + 1)?) + 1) * 8
            }
            PROTO_AH => (usize::from(*packet.get(at + 1)?) + 2) * 4,
            _ => return None,
        };
        next = *packet.get(at)?;
        next_at = at;
        at = at.checked_add(len)?;
    }
    None
}

/// Reads a fragment of `packet` (the IP header at its start, `layer` its parse), or None when
/// it was not captured whole.
fn piece<'a>(packet: &'a [u8], layer: &IpLayer<'a>) -> Option<Piece<'a>> {
    let fragment = layer.fragment?;
    let offset = usize::try_from(fragment.offset).ok()?;
    let (protocol, data, first) = match layer.src {
        IpAddr::V4(_) => {
            if layer.l4.len() != usize::try_from(layer.l4_len).ok()? {
                return None;
            }
            let first = (offset == 0).then(|| FirstHeader {
                bytes: layer.header.to_vec(),
                v6_next_header: None,
            });
            (layer.protocol, layer.l4, first)
        }
        IpAddr::V6(_) => {
            let end = usize::try_from(layer.ip_len).ok()?;
            let whole = packet.get(..end)?;
            let (unfragmentable, next_at, protocol) = ipv6_fragment_header(whole)?;
            let data = whole.get(unfragmentable.checked_add(8)?..)?;
            let first = (offset == 0).then(|| FirstHeader {
                bytes: whole.get(..unfragmentable).unwrap_or(&[]).to_vec(),
                v6_next_header: Some((next_at, protocol)),
            });
            (0, data, first)
        }
    };
    Some(Piece {
        key: Key {
            src: layer.src,
            dst: layer.dst,
            id: fragment.id,
            protocol,
        },
        offset,
        more: fragment.more,
        data,
        first,
        ttl: layer.ttl,
    })
}

/// Pending datagrams and their fragments; see the module documentation.
#[derive(Debug)]
pub struct FragmentReassembler {
    config: FragmentConfig,
    /// Also leave IPv4 fragments with a wrong header checksum to the normal path (which drops
    /// them), as Zeek checks each fragment before reassembly.
    verify_ip_checksums: bool,
    pending: AHashMap<Key, Pending>,
    /// Datagrams in creation order (serial numbers tell live entries from finished ones).
    order: VecDeque<(u64, Key)>,
    next_serial: u64,
    /// Bytes charged to pending datagrams (buffers plus bookkeeping).
    bytes: usize,
    stats: FragmentStats,
}

impl FragmentReassembler {
    pub fn new(config: FragmentConfig, verify_ip_checksums: bool) -> Self {
        FragmentReassembler {
            config,
            verify_ip_checksums,
            pending: AHashMap::new(),
            order: VecDeque::new(),
            next_serial: 0,
            bytes: 0,
            stats: FragmentStats::default(),
        }
    }

    /// Counts so far; `pending` says how many datagrams are still incomplete.
    pub fn stats(&self) -> FragmentStats {
        let mut stats = self.stats;
        stats.pending = self.pending.len() as u64;
        let pending_fragments: u64 = self.pending.values().map(|p| u64::from(p.fragments)).sum();
        stats.fragments_lost = stats.fragments_lost.saturating_add(pending_fragments);
        stats
    }

    /// Bytes held for pending datagrams now.
    pub fn bytes_in_use(&self) -> usize {
        self.bytes
    }

    /// Hands over one IP fragment seen at `ts`: `packet` starts at its IP header and `layer` is
    /// its parse (with `layer.fragment` set).
    pub(super) fn add(
        &mut self,
        ts: Timestamp,
        packet: &[u8],
        layer: &IpLayer<'_>,
    ) -> FragmentVerdict {
        if self.verify_ip_checksums
            && !layer.header.is_empty()
            && fold(sum_words(layer.header)) != 0xffff
        {
            return FragmentVerdict::NotTaken;
        }
        let Some(piece) = piece(packet, layer) else {
            self.stats.cut_by_snaplen += 1;
            return FragmentVerdict::NotTaken;
        };
        self.stats.fragments += 1;
        self.expire(ts);
        let end = piece.offset.saturating_add(piece.data.len());
        if end > MAX_IP_LENGTH {
            self.give_up(piece.key, Outcome::Malformed, 1);
            return FragmentVerdict::Held;
        }
        if !self.pending.contains_key(&piece.key) {
            while self.pending.len() >= self.config.max_datagrams.max(1) {
                if !self.evict_oldest() {
                    break;
                }
            }
            let serial = self.next_serial;
            self.next_serial += 1;
            let entry = Pending {
                serial,
                first_seen: ts,
                first: None,
                payload: Vec::new(),
                ranges: Vec::new(),
                total: None,
                fragments: 0,
                first_ttl: None,
                notes: ReassemblyNotes::default(),
            };
            self.bytes += entry.cost();
            self.pending.insert(piece.key, entry);
            self.order.push_back((serial, piece.key));
            self.stats.peak_pending = self.stats.peak_pending.max(self.pending.len() as u64);
        }
        // Room for this fragment's bytes: evict older datagrams, or give this one up.
        let growth = end
            .saturating_sub(self.pending.get(&piece.key).map_or(0, |p| p.payload.len()))
            + piece.first.as_ref().map_or(0, |f| f.bytes.len());
        while self.bytes.saturating_add(growth) > self.config.max_bytes {
            let oldest_is_this = self.oldest_live().is_none_or(|key| key == piece.key);
            if oldest_is_this || !self.evict_oldest() {
                self.give_up(piece.key, Outcome::Evicted, 1);
                return FragmentVerdict::Held;
            }
        }
        let Some(entry) = self.pending.get_mut(&piece.key) else {
            return FragmentVerdict::Held;
        };
        let cost_before = entry.cost();
        entry.fragments += 1;
        if entry.fragments > MAX_FRAGMENTS_PER_DATAGRAM {
            self.give_up(piece.key, Outcome::Malformed, 0);
            return FragmentVerdict::Held;
        }
        if entry.first.is_none() {
            entry.first = piece.first;
        }
        if *entry.first_ttl.get_or_insert(piece.ttl) != piece.ttl {
            entry.notes.ttl_changes += 1;
        }
        // Bytes already received reach this far (the teardrop's last fragment ends before).
        let received_end = entry.ranges.last().map_or(0, |r| r.1);
        if !piece.more {
            // The last fragment states the length; a disagreement keeps the longer (as Zeek).
            let longest = entry.total.unwrap_or(0).max(received_end);
            if longest > end || entry.total.is_some_and(|t| t != end) {
                entry.notes.size_inconsistent += 1;
            }
            entry.total = Some(longest.max(end));
        } else if entry.total.is_some_and(|t| end > t) {
            entry.notes.size_inconsistent += 1;
            entry.total = Some(end);
        }
        let (overlap, differ) = entry.insert(piece.offset, piece.data);
        self.stats.overlapping += u64::from(overlap);
        self.stats.overlapping_different += u64::from(differ);
        if differ {
            entry.notes.overlap_different += 1;
        } else if overlap {
            entry.notes.overlap_same += 1;
        }
        let complete = entry.is_complete();
        let cost_after = entry.cost();
        self.bytes = (self.bytes + cost_after).saturating_sub(cost_before);
        if !complete {
            return FragmentVerdict::Held;
        }
        let Some(entry) = self.remove(piece.key) else {
            return FragmentVerdict::Held;
        };
        let fragments = entry.fragments;
        let notes = entry.notes;
        match entry.rebuild() {
            Some(datagram) => {
                self.stats.reassembled += 1;
                FragmentVerdict::Complete(datagram, notes)
            }
            None => {
                self.stats.malformed += 1;
                self.stats.fragments_lost += u64::from(fragments);
                FragmentVerdict::Held
            }
        }
    }

    /// Gives up datagrams whose first fragment is older than the timeout.
    fn expire(&mut self, now: Timestamp) {
        let timeout = u64::try_from(self.config.timeout.as_nanos()).unwrap_or(u64::MAX);
        if timeout == 0 {
            return;
        }
        while let Some(&(serial, key)) = self.order.front() {
            match self.pending.get(&key) {
                Some(entry) if entry.serial == serial => {
                    if now.nanos_since(entry.first_seen) < timeout {
                        return;
                    }
                    self.give_up(key, Outcome::TimedOut, 0);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    fn oldest_live(&mut self) -> Option<Key> {
        while let Some(&(serial, key)) = self.order.front() {
            if self.pending.get(&key).is_some_and(|e| e.serial == serial) {
                return Some(key);
            }
            self.order.pop_front();
        }
        None
    }

    fn evict_oldest(&mut self) -> bool {
        match self.oldest_live() {
            Some(key) => {
                self.give_up(key, Outcome::Evicted, 0);
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: Key) -> Option<Pending> {
        let entry = self.pending.remove(&key)?;
        self.bytes = self.bytes.saturating_sub(entry.cost());
        // Finished entries leave stale records behind; drop them before they pile up.
        if self.order.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.order
                .retain(|(serial, key)| pending.get(key).is_some_and(|e| e.serial == *serial));
        }
        Some(entry)
    }

    /// Abandons the datagram at `key` (if pending), counting it and its fragments plus
    /// `extra_fragments` not yet recorded in it.
    fn give_up(&mut self, key: Key, outcome: Outcome, extra_fragments: u32) {
        let fragments = self.remove(key).map_or(0, |e| e.fragments) + extra_fragments;
        self.stats.fragments_lost += u64::from(fragments);
        let counter = match outcome {
            Outcome::TimedOut => &mut self.stats.timed_out,
            Outcome::Evicted => &mut self.stats.evicted,
            Outcome::Malformed => &mut self.stats.malformed,
        };
        *counter += 1;
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    TimedOut,
    Evicted,
    Malformed,
}

#[cfg(test)]
mod tests {
    //! Fragment sets built here by splitting a datagram written here; what a reassembled
    //! datagram must look like is the original datagram decoded without fragmentation.
    use super::super::{
        ChecksumVerdict, Decoder, IpPacket, SkipReason, Transport, decode, verify_checksums,
    };
    use super::*;
    use crate::capture::LinkType;
    use std::time::Duration;

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [10, 0, 0, 2];

    fn v6(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        a
    }

    fn checksum(header: &[u8]) -> u16 {
        let mut sum: u32 = header
            .chunks(2)
            .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// An IPv4 header (id `id`, protocol `proto`, TTL 64, valid checksum) for `payload_len`
    /// bytes at `offset` (bytes, a multiple of 8).
    fn ipv4_header(proto: u8, id: u16, payload_len: usize, offset: usize, more: bool) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let frag = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&SRC4);
        h.extend_from_slice(&DST4);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// UDP 1234 -> 53 with `len` payload bytes counting up, checksum 0 (none).
    fn udp(len: usize) -> Vec<u8> {
        let mut u = vec![0x04, 0xd2, 0, 53];
        u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend((0..len).map(|i| (i % 251) as u8));
        u
    }

    fn ipv4_datagram(proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut d = ipv4_header(proto, id, payload.len(), 0, false);
        d.extend_from_slice(payload);
        d
    }

    /// `payload` cut at the given byte offsets into IPv4 fragments (in order).
    fn ipv4_fragments(proto: u8, id: u16, payload: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(payload.len());
        bounds
            .windows(2)
            .map(|w| {
                let more = w[1] < payload.len();
                let mut f = ipv4_header(proto, id, w[1] - w[0], w[0], more);
                f.extend_from_slice(&payload[w[0]..w[1]]);
                f
            })
            .collect()
    }

    fn ipv6_header(next: u8, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload_len as u16).to_be_bytes());
        h.extend_from_slice(&[next, 61]);
        h.extend_from_slice(&v6(1));
        h.extend_from_slice(&v6(2));
        h
    }

    /// `payload` (of protocol `next`) cut into IPv6 fragments, with `before` (hop-by-hop
    /// options, protocol 0) ahead of the fragment header when given.
    fn ipv6_fragments(
        next: u8,
        id: u32,
        payload: &[u8],
        cuts: &[usize],
        before: &[u8],
    ) -> Vec<Vec<u8>> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(payload.len());
        bounds
            .windows(2)
            .map(|w| {
                let more = w[1] < payload.len();
                let first_next = if before.is_empty() { 44 } else { 0 };
                let mut f = ipv6_header(first_next, before.len() + 8 + w[1] - w[0]);
                if !before.is_empty() {
                    let mut b = before.to_vec();
                    b[0] = 44;
                    f.extend_from_slice(&b);
                }
                let frag = ((w[0] / 8) as u16) << 3 | u16::from(more);
                f.extend_from_slice(&[next, 0]);
                f.extend_from_slice(&frag.to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
                f.extend_from_slice(&payload[w[0]..w[1]]);
                f
            })
            .collect()
    }

    /// What a visitor needs to check, owned.
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        ip_len: u32,
        protocol: u8,
        depth: u8,
        fragment: bool,
        ports: Option<(u16, u16)>,
        l4: Vec<u8>,
        checksums: ChecksumVerdict,
    }

    fn seen(p: &IpPacket<'_>) -> Seen {
        Seen {
            ip_len: p.ip_len,
            protocol: p.protocol,
            depth: p.depth,
            fragment: p.fragment.is_some(),
            ports: match p.transport {
                Transport::Udp {
                    src_port, dst_port, ..
                }
                | Transport::Tcp {
                    src_port, dst_port, ..
                } => Some((src_port, dst_port)),
                _ => None,
            },
            l4: p.l4.to_vec(),
            checksums: verify_checksums(p),
        }
    }

    /// The original datagram decoded whole (no fragments involved).
    fn unfragmented(datagram: &[u8]) -> Vec<Seen> {
        let mut out = Vec::new();
        decode(LinkType::RAW, datagram, &mut |p: &IpPacket<'_>| {
            out.push(seen(p))
        })
        .unwrap();
        out
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_secs_nanos(1_700_000_000 + s, 0)
    }

    /// Feeds frames (at the given seconds) and returns what each frame visited.
    fn feed(decoder: &mut Decoder, frames: &[(i64, &[u8])]) -> Vec<Vec<Seen>> {
        frames
            .iter()
            .map(|(t, frame)| {
                let mut out = Vec::new();
                let result =
                    decoder.decode(secs(*t), LinkType::RAW, frame, &mut |p: &IpPacket<'_>| {
                        out.push(seen(p))
                    });
                assert_eq!(result, Ok(()));
                out
            })
            .collect()
    }

    fn decoder() -> Decoder {
        Decoder::new(FragmentConfig::default(), true)
    }

    #[test]
    fn in_order_ipv4_fragments_make_one_packet_of_full_length() {
        let payload = udp(3000);
        let whole = ipv4_datagram(17, 7, &payload);
        let frags = ipv4_fragments(17, 7, &payload, &[1480, 2960]);
        let mut d = decoder();
        let frames: Vec<(i64, &[u8])> = frags.iter().map(|f| (0, f.as_slice())).collect();
        let visits = feed(&mut d, &frames);
        assert!(visits[0].is_empty() && visits[1].is_empty());
        assert!(d.held_fragment());
        let expected = unfragmented(&whole);
        assert_eq!(visits[2], expected);
        assert_eq!(expected[0].ip_len, 20 + 8 + 3000);
        assert_eq!(expected[0].ports, Some((1234, 53)));
        assert_eq!(expected[0].checksums, ChecksumVerdict::Valid);
        let s = d.fragment_stats();
        assert_eq!((s.fragments, s.reassembled, s.fragments_lost), (3, 1, 0));
        assert_eq!((s.pending, s.overlapping), (0, 0));
    }

    #[test]
    fn reversed_fragments_reassemble() {
        let payload = udp(2000);
        let whole = ipv4_datagram(17, 9, &payload);
        let mut frags = ipv4_fragments(17, 9, &payload, &[800, 1600]);
        frags.reverse();
        let mut d = decoder();
        let frames: Vec<(i64, &[u8])> = frags.iter().map(|f| (0, f.as_slice())).collect();
        let visits = feed(&mut d, &frames);
        assert!(visits[0].is_empty() && visits[1].is_empty());
        assert_eq!(visits[2], unfragmented(&whole));
        assert_eq!(d.fragment_stats().reassembled, 1);
    }

    #[test]
    fn duplicate_fragment_counts_as_overlap_with_same_bytes() {
        let payload = udp(1000);
        let whole = ipv4_datagram(17, 3, &payload);
        let frags = ipv4_fragments(17, 3, &payload, &[504]);
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0]), (0, &frags[0]), (0, &frags[1])]);
        assert_eq!(visits[2], unfragmented(&whole));
        let s = d.fragment_stats();
        assert_eq!((s.overlapping, s.overlapping_different), (1, 0));
        assert_eq!((s.fragments, s.reassembled), (3, 1));
        // The copy arriving after completion starts a new datagram that never completes.
        feed(&mut d, &[(1, &frags[1])]);
        assert_eq!(d.fragment_stats().pending, 1);
    }

    #[test]
    fn overlap_with_different_bytes_keeps_the_first_received() {
        let payload = udp(1000);
        let whole = ipv4_datagram(17, 4, &payload);
        let frags = ipv4_fragments(17, 4, &payload, &[504]);
        // A rogue fragment covering bytes 496..520 with other contents, sent after the first.
        let rogue_data = vec![0xee; 24];
        let mut rogue = ipv4_header(17, 4, 24, 496, true);
        rogue.extend_from_slice(&rogue_data);
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0]), (0, &rogue), (0, &frags[1])]);
        let s = d.fragment_stats();
        // The rogue overlaps the first fragment; the last fragment overlaps the rogue's tail.
        assert_eq!((s.overlapping, s.overlapping_different), (2, 2));
        // Bytes 496..504 come from the first fragment, 504..520 from the rogue.
        let mut expected_l4 = payload.clone();
        expected_l4[504..520].copy_from_slice(&rogue_data[8..]);
        assert_eq!(visits[2].len(), 1);
        assert_eq!(visits[2][0].l4, expected_l4);
        assert_eq!(visits[2][0].ip_len, unfragmented(&whole)[0].ip_len);
    }

    #[test]
    fn missing_middle_never_completes_and_is_counted() {
        let payload = udp(3000);
        let frags = ipv4_fragments(17, 5, &payload, &[1000, 2000]);
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0]), (0, &frags[2])]);
        assert!(visits.iter().all(Vec::is_empty));
        let s = d.fragment_stats();
        assert_eq!((s.reassembled, s.pending, s.fragments_lost), (0, 1, 2));
        assert!(d.fragments.bytes_in_use() > 3000 - 1000);
    }

    #[test]
    fn timeout_in_capture_time_gives_up_the_datagram() {
        let payload = udp(2000);
        let whole = ipv4_datagram(17, 6, &payload);
        let frags = ipv4_fragments(17, 6, &payload, &[1000]);
        let mut d = decoder();
        // 300 s is Zeek's frag_timeout: the first fragment is gone when the second arrives.
        let visits = feed(&mut d, &[(0, &frags[0]), (301, &frags[1])]);
        assert!(visits[1].is_empty());
        let s = d.fragment_stats();
        assert_eq!((s.timed_out, s.pending, s.fragments_lost), (1, 1, 2));
        // Just inside the timeout, the datagram completes.
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0]), (299, &frags[1])]);
        assert_eq!(visits[1], unfragmented(&whole));
        // A zero timeout never gives up.
        let mut d = Decoder::new(
            FragmentConfig {
                timeout: Duration::ZERO,
                ..FragmentConfig::default()
            },
            true,
        );
        let visits = feed(&mut d, &[(0, &frags[0]), (86_400, &frags[1])]);
        assert_eq!(visits[1], unfragmented(&whole));
    }

    #[test]
    fn pending_datagram_limit_evicts_the_oldest() {
        let payload = udp(1000);
        let sets: Vec<Vec<Vec<u8>>> = (1..=3)
            .map(|id| ipv4_fragments(17, id, &payload, &[504]))
            .collect();
        let mut d = Decoder::new(
            FragmentConfig {
                max_datagrams: 2,
                ..FragmentConfig::default()
            },
            true,
        );
        let visits = feed(
            &mut d,
            &[
                (0, &sets[0][0]),
                (1, &sets[1][0]),
                (2, &sets[2][0]),
                (3, &sets[0][1]),
                (4, &sets[2][1]),
            ],
        );
        // Datagram 1 was evicted by datagram 3; its last fragment starts a new one.
        assert!(visits[3].is_empty());
        assert_eq!(visits[4].len(), 1);
        let s = d.fragment_stats();
        assert_eq!((s.evicted, s.reassembled, s.peak_pending), (2, 1, 2));
    }

    #[test]
    fn byte_limit_bounds_memory() {
        let payload = udp(8000);
        let frags = ipv4_fragments(17, 11, &payload, &[4000]);
        let limit = 6000;
        let mut d = Decoder::new(
            FragmentConfig {
                max_bytes: limit,
                ..FragmentConfig::default()
            },
            true,
        );
        // The last fragment alone needs 8008 bytes of buffer: more than the limit allows.
        let visits = feed(&mut d, &[(0, &frags[0]), (0, &frags[1])]);
        assert!(visits.iter().all(Vec::is_empty));
        assert!(d.fragments.bytes_in_use() <= limit);
        let s = d.fragment_stats();
        assert_eq!(s.reassembled, 0);
        assert!(s.evicted >= 1 && s.fragments_lost == 2, "{s:?}");
    }

    #[test]
    fn ipv6_fragments_reassemble_without_the_fragment_header() {
        let payload = udp(2500);
        let mut whole = ipv6_header(17, payload.len());
        whole.extend_from_slice(&payload);
        let mut d = decoder();
        let frags = ipv6_fragments(17, 0xdead_beef, &payload, &[1232], &[]);
        let visits = feed(&mut d, &[(0, &frags[1]), (0, &frags[0])]);
        let expected = unfragmented(&whole);
        assert_eq!(expected[0].ip_len, 40 + 8 + 2500);
        assert_eq!(visits[1], expected);
        // With hop-by-hop options before the fragment header, they stay in the datagram.
        let hop_by_hop = [0u8, 0, 1, 4, 0, 0, 0, 0];
        let mut whole = ipv6_header(0, 8 + payload.len());
        let mut h = hop_by_hop;
        h[0] = 17;
        whole.extend_from_slice(&h);
        whole.extend_from_slice(&payload);
        let frags = ipv6_fragments(17, 1, &payload, &[1232], &hop_by_hop);
        let visits = feed(&mut d, &[(1, &frags[0]), (1, &frags[1])]);
        assert_eq!(visits[1], unfragmented(&whole));
        assert_eq!(d.fragment_stats().reassembled, 2);
    }

    #[test]
    fn fragmented_tunnel_reassembles_and_its_inside_is_visited() {
        // IP-in-IP: an outer datagram (protocol 4) carrying an inner UDP packet, fragmented.
        let inner = ipv4_datagram(17, 99, &udp(2000));
        let whole = ipv4_datagram(4, 42, &inner);
        let frags = ipv4_fragments(4, 42, &inner, &[1480]);
        // Without reassembly the later fragment is a tunnel that cannot be followed.
        let mut stateless = 0;
        let result = decode(LinkType::RAW, &frags[1], &mut |_: &IpPacket<'_>| {
            stateless += 1
        });
        assert_eq!(result, Err(SkipReason::FragmentedTunnel));
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0]), (0, &frags[1])]);
        let expected = unfragmented(&whole);
        assert_eq!(expected.len(), 1);
        assert_eq!((expected[0].depth, expected[0].ip_len), (1, 20 + 8 + 2000));
        assert_eq!(visits[1], expected);
    }

    #[test]
    fn fragment_cut_by_snaplen_is_decoded_as_it_stands() {
        let payload = udp(2000);
        let frags = ipv4_fragments(17, 12, &payload, &[1000]);
        let cut = &frags[0][..200];
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, cut)]);
        assert_eq!(visits[0].len(), 1);
        assert!(visits[0][0].fragment);
        assert_eq!(visits[0][0].ports, Some((1234, 53)));
        assert!(!d.held_fragment());
        assert_eq!(d.fragment_stats().cut_by_snaplen, 1);
    }

    #[test]
    fn unfragmented_packets_do_not_touch_the_reassembler() {
        let whole = ipv4_datagram(17, 1, &udp(100));
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &whole)]);
        assert_eq!(visits[0], unfragmented(&whole));
        assert_eq!(d.fragment_stats(), FragmentStats::default());
    }

    #[test]
    fn bad_header_checksum_fragment_is_left_to_the_tracker_when_verifying() {
        let payload = udp(1000);
        let mut frags = ipv4_fragments(17, 13, &payload, &[504]);
        frags[0][10] ^= 0xff;
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &frags[0])]);
        assert_eq!(visits[0].len(), 1);
        assert_eq!(visits[0][0].checksums, ChecksumVerdict::BadIpHeader);
        assert_eq!(d.fragment_stats().fragments, 0);
    }

    #[test]
    fn datagram_longer_than_an_ip_length_is_malformed() {
        // Offset 65528 (the largest) with 16 bytes ends past 65535.
        let mut f = ipv4_header(17, 14, 16, 65528, false);
        f.extend_from_slice(&[0; 16]);
        let first = ipv4_fragments(17, 14, &udp(100), &[])[0].clone();
        let mut first_more = ipv4_header(17, 14, first.len() - 20, 0, true);
        first_more.extend_from_slice(&first[20..]);
        let mut d = decoder();
        let visits = feed(&mut d, &[(0, &first_more), (0, &f)]);
        assert!(visits.iter().all(Vec::is_empty));
        let s = d.fragment_stats();
        assert_eq!((s.malformed, s.fragments_lost, s.pending), (1, 2, 0));
    }

    #[test]
    fn too_many_fragments_give_up_the_datagram() {
        let payload = udp(8 * 200);
        let cuts: Vec<usize> = (1..200).map(|i| i * 8).collect();
        let frags = ipv4_fragments(17, 15, &payload, &cuts);
        let mut d = decoder();
        let frames: Vec<(i64, &[u8])> = frags.iter().map(|f| (0, f.as_slice())).collect();
        let visits = feed(&mut d, &frames);
        assert!(visits.iter().all(Vec::is_empty));
        let s = d.fragment_stats();
        assert_eq!(s.malformed, 1);
        assert_eq!(s.reassembled, 0);
        // 200 fragments: the first 129 give the datagram up, the other 71 start a new one
        // that lacks its start; none is counted in a session.
        assert_eq!(frags.len(), 200);
        assert_eq!((s.fragments, s.fragments_lost, s.pending), (200, 200, 1));
        assert_eq!(MAX_FRAGMENTS_PER_DATAGRAM, 128);
    }

    #[test]
    fn garbage_fragments_never_panic() {
        let mut d = decoder();
        let mut state = 0x1234_5678u32;
        for round in 0..3000 {
            let len = 20 + (round % 90);
            let mut frame: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            if round % 2 == 0 {
                frame[0] = 0x45;
                frame[6] = (frame[6] & 0x3f) | 0x20; // more fragments
                frame[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            } else {
                frame[0] = 0x60;
                frame[6] = 44;
                frame[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            }
            let _ = d.decode(secs(0), LinkType::RAW, &frame, &mut |_: &IpPacket<'_>| {});
        }
        assert!(d.fragments.bytes_in_use() <= FragmentConfig::default().max_bytes);
    }
}
