//! The per-session facts the initiator label needs, in a compact byte form.
//!
//! Labels can only be decided once the whole capture is known (periodicity), but sessions.csv
//! rows are produced when sessions end. So each row carries a [`SessionSketch`] as an opaque tag
//! (kept with the row in the CSV writer's bounded, spilling buffer) and the label is computed from
//! it when rows are written. Promises: `encode` then `decode` gives the sketch back (server names
//! longer than [`MAX_NAME_LEN`] bytes are cut at a character boundary); `decode` never panics on
//! any bytes and returns `None` for anything it did not write.

use crate::capture::Timestamp;
use crate::session::SessionRecord;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest server name kept in a sketch, in bytes (a DNS name is at most 253).
pub const MAX_NAME_LEN: usize = 255;
const VERSION: u8 = 1;

/// What a session's label is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSketch<'a> {
    pub start: Timestamp,
    pub duration_nanos: u64,
    pub orig: IpAddr,
    pub orig_port: u16,
    pub resp: IpAddr,
    pub resp_port: u16,
    pub ip_proto: u8,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub pkts: u64,
    /// The name the session was made for, when content classification saw one (SNI, Host).
    pub server_name: Option<&'a str>,
}

impl<'a> SessionSketch<'a> {
    pub fn from_record(record: &SessionRecord, server_name: Option<&'a str>) -> Self {
        SessionSketch {
            start: record.start,
            duration_nanos: record.duration_nanos(),
            orig: record.orig.addr,
            orig_port: record.orig.port,
            resp: record.resp.addr,
            resp_port: record.resp.port,
            ip_proto: record.ip_proto,
            orig_bytes: record.orig_stats.bytes,
            resp_bytes: record.resp_stats.bytes,
            pkts: record
                .orig_stats
                .pkts
                .saturating_add(record.resp_stats.pkts),
            server_name: server_name.map(|n| cut(n, MAX_NAME_LEN)),
        }
    }

    /// Appends the byte form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_named(self.server_name, out);
    }

    /// Appends the byte form of this sketch with `server_name` for its name (whatever its own
    /// is), so a caller holding the name borrowed need not copy it into the sketch.
    pub fn encode_named(&self, server_name: Option<&str>, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.start.0.to_le_bytes());
        out.extend_from_slice(&self.duration_nanos.to_le_bytes());
        put_addr(out, self.orig);
        out.extend_from_slice(&self.orig_port.to_le_bytes());
        put_addr(out, self.resp);
        out.extend_from_slice(&self.resp_port.to_le_bytes());
        out.push(self.ip_proto);
        out.extend_from_slice(&self.orig_bytes.to_le_bytes());
        out.extend_from_slice(&self.resp_bytes.to_le_bytes());
        out.extend_from_slice(&self.pkts.to_le_bytes());
        let name = server_name.map_or("", |n| cut(n, MAX_NAME_LEN));
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }

    /// The sketch in `bytes`, its name borrowed from them.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let start = Timestamp(i64::from_le_bytes(r.array()?));
        let duration_nanos = u64::from_le_bytes(r.array()?);
        let orig = r.addr()?;
        let orig_port = u16::from_le_bytes(r.array()?);
        let resp = r.addr()?;
        let resp_port = u16::from_le_bytes(r.array()?);
        let ip_proto = r.u8()?;
        let orig_bytes = u64::from_le_bytes(r.array()?);
        let resp_bytes = u64::from_le_bytes(r.array()?);
        let pkts = u64::from_le_bytes(r.array()?);
        let name_len = usize::from(r.u8()?);
        let name = r.take(name_len)?;
        let server_name = if name.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(name).ok()?)
        };
        Some(SessionSketch {
            start,
            duration_nanos,
            orig,
            orig_port,
            resp,
            resp_port,
            ip_proto,
            orig_bytes,
            resp_bytes,
            pkts,
            server_name,
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn addr(&mut self) -> Option<IpAddr> {
        match self.u8()? {
            4 => Some(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(name: Option<&str>) -> SessionSketch<'_> {
        SessionSketch {
            start: Timestamp::from_micros(1_700_000_000_123_456),
            duration_nanos: 42,
            orig: "192.0.2.1".parse().unwrap(),
            orig_port: 40000,
            resp: "2001:db8::2".parse().unwrap(),
            resp_port: 443,
            ip_proto: 6,
            orig_bytes: 1,
            resp_bytes: u64::MAX,
            pkts: 9,
            server_name: name,
        }
    }

    #[test]
    fn round_trip() {
        for s in [sketch(None), sketch(Some("www.example.test"))] {
            let mut bytes = Vec::new();
            s.encode(&mut bytes);
            assert_eq!(SessionSketch::decode(&bytes), Some(s));
        }
    }

    #[test]
    fn a_borrowed_name_encodes_as_an_owned_one() {
        let mut owned = Vec::new();
        sketch(Some("www.example.test")).encode(&mut owned);
        let mut borrowed = Vec::new();
        sketch(None).encode_named(Some("www.example.test"), &mut borrowed);
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let mut bytes = Vec::new();
        sketch(Some(&long)).encode(&mut bytes);
        let back = SessionSketch::decode(&bytes).unwrap().server_name.unwrap();
        assert_eq!(back.len(), 254);
        assert!(long.starts_with(back));
    }

    #[test]
    fn decode_rejects_what_it_did_not_write() {
        let mut bytes = Vec::new();
        sketch(Some("a.test")).encode(&mut bytes);
        for len in 0..bytes.len() {
            assert_eq!(SessionSketch::decode(&bytes[..len]), None, "prefix {len}");
        }
        assert_eq!(SessionSketch::decode(&[2, 0, 0]), None);
    }
}
