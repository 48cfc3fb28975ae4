//! Packet sources: capture files (pcap and pcapng, from a path or a pipe) and, with the `live`
//! feature, network interfaces through libpcap ([`live`]).
//!
//! Owns reading bytes into [`RawPacket`]s: borrowed frames with their capture timestamp,
//! link type and original length. Promises: streaming with a bounded buffer (memory never
//! grows with file size), no panic on any bytes, and every error names the file and the
//! packet number or byte offset where reading stopped. [`set`] decides which files make one
//! capture and in which order they are read.

mod file;
#[cfg(feature = "live")]
pub mod live;
mod read_ahead;
pub mod set;

pub use file::{
    CaptureError, CaptureFormat, CaptureReader, MAX_BLOCK_BYTES, Place, ReadAheadCapture,
};

use std::fmt;

/// A capture timestamp: nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(i64::from(nanos)),
        )
    }
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros.saturating_mul(1_000))
    }
    /// Whole microseconds since the epoch (what Zeek and libpcap show).
    pub fn as_micros(self) -> i64 {
        self.0.div_euclid(1_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Saturating `self - earlier` in nanoseconds, never negative.
    pub fn nanos_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
    pub fn add_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(nanos).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    /// Epoch seconds with six decimals, as Zeek writes `ts`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.as_micros();
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000);
        write!(f, "{secs}.{frac:06}")
    }
}

/// A link-layer header type (the pcap `LINKTYPE_`/`DLT_` number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// BSD/OS SLIP: a 16-byte header (direction, compression state) before the IP packet.
    pub const SLIP: LinkType = LinkType(8);
    pub const PPP: LinkType = LinkType(9);
    pub const RAW_DLT12: LinkType = LinkType(12);
    pub const RAW_DLT14: LinkType = LinkType(14);
    pub const PPP_HDLC: LinkType = LinkType(50);
    pub const PPP_ETHER: LinkType = LinkType(51);
    /// RFC 1483 LLC/SNAP-encapsulated ATM.
    pub const ATM_RFC1483: LinkType = LinkType(100);
    pub const RAW: LinkType = LinkType(101);
    /// Cisco HDLC: address, control and an ethertype (router serial links).
    pub const C_HDLC: LinkType = LinkType(104);
    pub const IEEE802_11: LinkType = LinkType(105);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// OpenBSD/FreeBSD pf's log (`tcpdump -i pflog0`): the rule's verdict, then the packet.
    pub const PFLOG: LinkType = LinkType(117);
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    /// Per-Packet Information: a header naming the link type of the frame that follows.
    pub const PPI: LinkType = LinkType(192);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    /// Linux netfilter's log (`tcpdump -i nflog:N`): TLVs, one of them the packet.
    pub const NFLOG: LinkType = LinkType(239);
    /// IP over InfiniBand (RFC 4391), with the two 20-byte hardware addresses.
    pub const IPOIB: LinkType = LinkType(242);
    /// Apple's packet metadata (`tcpdump -k` on macOS): a header naming the inner link type.
    pub const PKTAP: LinkType = LinkType(258);
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// Anything that yields captured frames one at a time: a capture file, a pipe, an interface.
/// The analysis after it is the same whatever the source.
pub trait PacketSource {
    /// What the source reads from (a file name, an interface), for the summary and errors.
    fn name(&self) -> &str;
    /// The next frame, `Ok(None)` at a clean end. The frame borrows the source until the next call.
    fn next_packet(
        &mut self,
    ) -> Result<Option<RawPacket<'_>>, Box<dyn std::error::Error + Send + Sync>>;
    /// Bytes consumed so far (for progress).
    fn bytes_read(&self) -> u64;
    /// After `next_packet` returned `Ok(None)`: true when the source only waited without a
    /// packet (a live read timeout) and more may come, false at its real end. Files never wait.
    fn waiting(&self) -> bool {
        false
    }
    /// True when the reader should run its progress callback now although the packet count
    /// does not call for it (a live source: some capture time passed). Checked per packet.
    fn progress_due(&mut self) -> bool {
        false
    }
}

impl PacketSource for CaptureReader {
    fn name(&self) -> &str {
        CaptureReader::name(self)
    }
    fn next_packet(
        &mut self,
    ) -> Result<Option<RawPacket<'_>>, Box<dyn std::error::Error + Send + Sync>> {
        CaptureReader::next_packet(self)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    }
    fn bytes_read(&self) -> u64 {
        CaptureReader::bytes_read(self)
    }
}

/// One captured frame, borrowed from the reader's buffer until the next packet is read.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// 1-based position of the packet in its capture file.
    pub number: u64,
    pub ts: Timestamp,
    pub link: LinkType,
    /// The captured bytes (at most the snaplen).
    pub data: &'a [u8],
    /// The frame's length on the wire (>= `data.len()` when the snaplen cut it).
    pub wire_len: u32,
}
