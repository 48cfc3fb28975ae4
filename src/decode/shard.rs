//! Handing decoded IP packets to session workers on other threads.
//!
//! When sessions are tracked on several threads, the reading thread decodes every frame
//! (link layers, tunnels, fragment reassembly) and each IP layer goes to the worker that
//! [`shard_key`] names. The key hashes the layer's address pair, ordered so that both
//! directions give the same key: a session's packets meet in one worker whichever tunnel or
//! frame carried them (fragments are rebuilt before, on the reading thread). An ICMP error is
//! keyed by the pair of the datagram it quotes, so that it meets the session it reports on.
//!
//! [`PacketParts`] is what crosses the thread: the layer's fixed fields, with its IP header and
//! transport bytes copied beside it; [`PacketParts::rebuild`] gives the worker the same
//! [`IpPacket`] the reading thread saw. Promise: pure functions, no allocation, never panic.

use super::ip::{self, IpLayer};
use super::{Fragment, IpPacket, ReassemblyNotes, TunnelKind};
use std::net::IpAddr;

/// The worker key of an IP layer: equal for the two directions of an address pair.
pub fn shard_key(packet: &IpPacket<'_>) -> u64 {
    // By address pair, not by ports: the ICMP errors one host sends another about several
    // flows form one ICMP session, and they must meet it and the flows they quote.
    match packet.transport.icmp_error_quote() {
        Some(quoted) => pair_hash(quoted.src, quoted.dst),
        None => pair_hash(packet.src, packet.dst),
    }
}

fn pair_hash(a: IpAddr, b: IpAddr) -> u64 {
    // Fixed constants, no seed: a session goes to the same worker in every run. Once per
    // packet on the reading thread, so two folds and a mix rather than a general hasher.
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    mix(fold(low) ^ fold(high).rotate_left(32))
}

/// An address in 64 bits (IPv6 halves combined so that either half changes the result).
fn fold(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ ((bits >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    }
}

/// SplitMix64's finaliser: every input bit reaches the low bits the buckets use.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Address-pair buckets a [`ShardMap`] assigns (a power of two).
const SHARD_BUCKETS: usize = 1 << 16;
/// What one layer weighs against its bytes when the load of a worker is counted: tracking a
/// packet costs about as much as moving this many bytes.
const LAYER_WEIGHT: u64 = 256;
const UNASSIGNED: u8 = u8::MAX;
/// What worker 0's load counts for against the others': it runs on the reading thread, which
/// also reads and decodes every frame, so it is given about a third of another worker's share.
/// Measured on the 1 GiB benchmark capture with two threads: with equal shares the reading
/// thread was busy 1.26 s and worker 1 0.62 s; weights 2.5 to 5 cut the wall time by ~8%.
const FIRST_WORKER_WEIGHT: u64 = 3;

/// Which worker each address pair goes to, balanced by load (worker 0's counted
/// [`FIRST_WORKER_WEIGHT`] times).
///
/// A hash modulo the workers leaves them as uneven as the traffic: a capture whose bytes are
/// mostly a few address pairs (a backup, a sensor on one link) loads one worker and idles
/// another. Here a bucket of [`shard_key`]s is given, the first time it is seen, to the
/// worker that has had the least load so far, and keeps it for good: both directions and
/// every later session of a pair still meet in one worker, and the map depends only on the
/// capture, so a run gives the same sessions whatever the timing.
#[derive(Debug, Clone)]
pub struct ShardMap {
    buckets: Box<[u8]>,
    load: Vec<u64>,
}

impl ShardMap {
    /// A map over `workers` workers (at most 255 of them are given pairs).
    pub fn new(workers: usize) -> Self {
        ShardMap {
            buckets: vec![UNASSIGNED; SHARD_BUCKETS].into_boxed_slice(),
            load: vec![0; workers.clamp(1, usize::from(UNASSIGNED))],
        }
    }

    /// The worker for a layer of `bytes` bytes whose key is `key`, counting its load.
    pub fn worker(&mut self, key: u64, bytes: usize) -> usize {
        let bucket = (key as usize) & (SHARD_BUCKETS - 1);
        let Some(slot) = self.buckets.get_mut(bucket) else {
            return 0;
        };
        let worker = if *slot == UNASSIGNED {
            let least = self
                .load
                .iter()
                .enumerate()
                .min_by_key(|&(_, load)| *load)
                .map_or(0, |(index, _)| index);
            *slot = u8::try_from(least).unwrap_or(0);
            least
        } else {
            usize::from(*slot)
        };
        let weight = if worker == 0 { FIRST_WORKER_WEIGHT } else { 1 };
        if let Some(load) = self.load.get_mut(worker) {
            *load = load.saturating_add((LAYER_WEIGHT + bytes as u64).saturating_mul(weight));
        }
        worker
    }
}

/// An [`IpPacket`]'s fields without its borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct PacketParts {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub ip_len: u32,
    pub ttl: u8,
    pub fragment: Option<Fragment>,
    pub depth: u8,
    pub tunnel: Option<TunnelKind>,
    pub l4_len: u32,
    pub reassembly: Option<ReassemblyNotes>,
}

impl PacketParts {
    pub fn of(packet: &IpPacket<'_>) -> Self {
        PacketParts {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            ip_len: packet.ip_len,
            ttl: packet.ttl,
            fragment: packet.fragment,
            depth: packet.depth,
            tunnel: packet.tunnel,
            l4_len: packet.l4_len,
            reassembly: packet.reassembly,
        }
    }

    /// The packet again, over copies of its `ip_header` and `l4` bytes. `None` only if the
    /// bytes are not those the parts were taken with (the transport no longer parses).
    pub fn rebuild<'a>(&self, ip_header: &'a [u8], l4: &'a [u8]) -> Option<IpPacket<'a>> {
        let layer = IpLayer {
            src: self.src,
            dst: self.dst,
            protocol: self.protocol,
            ip_len: self.ip_len,
            ttl: self.ttl,
            fragment: self.fragment,
            l4,
            l4_len: self.l4_len,
            header: ip_header,
        };
        let transport = ip::parse_transport(&layer).ok()?;
        Some(IpPacket {
            src: self.src,
            dst: self.dst,
            protocol: self.protocol,
            ip_len: self.ip_len,
            ttl: self.ttl,
            fragment: self.fragment,
            depth: self.depth,
            tunnel: self.tunnel,
            transport,
            l4,
            l4_len: self.l4_len,
            ip_header,
            reassembly: self.reassembly,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 10, 0, 0, b'h', b'i']);
        p
    }

    fn key_of(frame: &[u8]) -> u64 {
        let mut key = None;
        let _ = crate::decode::decode(LinkType::RAW, frame, &mut |p| {
            key.get_or_insert(shard_key(p));
        });
        key.unwrap_or(0)
    }

    #[test]
    fn both_directions_share_a_key() {
        let a = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53);
        let b = ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], 53, 1234);
        assert_eq!(key_of(&a), key_of(&b));
        let c = ipv4_udp([10, 0, 0, 3], [10, 0, 0, 1], 53, 1234);
        assert_ne!(key_of(&a), key_of(&c));
    }

    #[test]
    fn icmp_error_goes_with_the_datagram_it_quotes() {
        let quoted = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53);
        // Port unreachable from a router (10.0.0.254) to the sender, quoting the datagram.
        let mut icmp = vec![
            0x45, 0, 0, 58, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 254, 10, 0, 0, 1,
        ];
        icmp.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        icmp.extend_from_slice(&quoted);
        assert_eq!(key_of(&icmp), key_of(&quoted));
    }

    #[test]
    fn neighbouring_pairs_spread_over_the_buckets() {
        // 10,000 clients differing only in middle bits (10.x.y.1; IPv6 in the upper half)
        // talking to one server: the keys' low bits (the bucket) must differ about as much as
        // random ones would (about 9,270 distinct buckets of 65,536 expected).
        let server4 = IpAddr::from([192, 0, 2, 1]);
        let server6: IpAddr = "2001:db8::1".parse().unwrap();
        for server in [server4, server6] {
            let mut buckets = std::collections::HashSet::new();
            for i in 0u32..10_000 {
                let client = match server {
                    IpAddr::V4(_) => IpAddr::from((0x0a00_0001 | (i << 8)).to_be_bytes()),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(
                        0x2001_0db8_0000_0000_0000_0000_0000_0001u128 | (u128::from(i) << 80),
                    )),
                };
                buckets.insert(pair_hash(client, server) as usize & (SHARD_BUCKETS - 1));
            }
            assert!(buckets.len() > 9_000, "{server}: {} buckets", buckets.len());
        }
    }

    #[test]
    fn pairs_are_spread_by_load_and_keep_their_worker() {
        let mut map = ShardMap::new(2);
        // A heavy pair first: the next new pair goes to the other worker.
        let heavy = map.worker(1, 100_000);
        let second = map.worker(2, 10);
        assert_ne!(heavy, second);
        // Worker of pair 2 is still the lighter one: pair 3 joins it.
        assert_eq!(map.worker(3, 10), second);
        // Seen pairs keep their worker whatever the load now says.
        for _ in 0..1000 {
            assert_eq!(map.worker(2, 100_000), second);
        }
        assert_eq!(map.worker(1, 10), heavy);
        // Keys that differ only above the bucket bits share a bucket, hence a worker.
        assert_eq!(map.worker(2 + (1 << 20), 10), second);
        assert!(ShardMap::new(0).worker(7, 1) == 0);
    }

    #[test]
    fn the_first_worker_is_given_a_smaller_share() {
        // 4,000 pairs of equal load: worker 0 (on the reading thread) ends with about a
        // quarter of them for two workers, and with about a tenth for four.
        for (workers, low, high) in [(2, 900, 1_100), (4, 300, 450)] {
            let mut map = ShardMap::new(workers);
            let first = (0..4_000u64)
                .filter(|&pair| map.worker(pair, 1_000) == 0)
                .count();
            assert!((low..=high).contains(&first), "{workers} workers: {first}");
        }
    }

    #[test]
    fn rebuilt_packet_equals_the_original() {
        let frame = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53);
        let _ = crate::decode::decode(LinkType::RAW, &frame, &mut |p| {
            let header = p.ip_header.to_vec();
            let l4 = p.l4.to_vec();
            let again = PacketParts::of(p).rebuild(&header, &l4);
            assert_eq!(format!("{:?}", Some(*p)), format!("{again:?}"));
        });
    }
}
