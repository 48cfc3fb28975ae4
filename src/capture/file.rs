//! pcap and pcapng files read in one streaming pass.
//!
//! Owns the read buffer and the file formats. The buffer starts at 256 KiB and only grows to
//! hold one block, never past [`MAX_BLOCK_BYTES`], so memory does not grow with file size; a
//! file opened with [`CaptureReader::open_read_ahead`] is parsed in the blocks its read-ahead
//! thread filled instead (`read_ahead.rs`), a record cut by a block's end made whole in the
//! next block's headroom.
//! Every block's length is checked against the cap and then read in full before anything
//! parses it, so a short read is always a truncation at a known offset, never a retry loop.
//! pcap-parser parses the pcap file header and the pcapng section and interface blocks; the
//! fixed-layout packet records and blocks are decoded here because its EPB parser allocates
//! the option list per packet, its timestamp helpers reject power-of-2 resolutions, and its
//! pcap record parser does not know the swapped lengths of pre-2.3 files.

use super::read_ahead::{self, Block, ReadAhead};
use super::{LinkType, RawPacket, Timestamp};
use pcap_parser::parse_pcap_header;
use pcap_parser::pcapng::{
    EPB_MAGIC, IDB_MAGIC, InterfaceDescriptionBlock, OptionCode, SHB_MAGIC, SPB_MAGIC,
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock,
};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest block (pcap record or pcapng block) the reader accepts; beyond it the file is
/// reported as corrupt instead of growing the buffer.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
const INITIAL_BUFFER_BYTES: usize = 256 * 1024;
/// More interfaces than this in one pcapng section is treated as a corrupt file, so the
/// interface table stays bounded too.
const MAX_INTERFACES: usize = 65_536;
/// A reader that keeps answering `Interrupted` is given up on after this many tries.
const MAX_INTERRUPTED_READS: u32 = 64;

const PCAP_FILE_HEADER_BYTES: usize = 24;
/// The obsolete pcapng Packet Block (type 2), still written by old tools.
const OBSOLETE_PB_MAGIC: u32 = 0x0000_0002;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const NRB_MAGIC: u32 = 0x0000_0004;
const ISB_MAGIC: u32 = 0x0000_0005;
const DSB_MAGIC: u32 = 0x0000_000A;
const CUSTOM_MAGIC: u32 = 0x0000_0BAD;
const CUSTOM_NOCOPY_MAGIC: u32 = 0x4000_0BAD;

/// Where in the file a problem was found, as the user should read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The pcap file header or the first pcapng section header.
    FileHeader,
    /// A packet record or packet block, by its 1-based number.
    Packet(u64),
    /// A pcapng block that carries no packet, after the given number of packets.
    Block {
        kind: &'static str,
        after_packet: u64,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::FileHeader => write!(f, "the file header"),
            Place::Packet(number) => write!(f, "packet {number}"),
            Place::Block {
                kind,
                after_packet: 0,
            } => {
                write!(f, "a {kind} block (before any packet)")
            }
            Place::Block { kind, after_packet } => {
                write!(f, "a {kind} block (after packet {after_packet})")
            }
        }
    }
}

/// Why reading a capture stopped. Every variant names the file; the Display text is what the
/// user sees.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {source}")]
    Open {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not a capture file: {detail}")]
    NotCapture { file: String, detail: String },
    #[error(
        "{file}: the file is cut off in the middle of {place}, which starts at byte offset \
         {offset} ({needed} bytes needed, only {available} present)"
    )]
    Truncated {
        file: String,
        place: Place,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error(
        "{file}: {place} at byte offset {offset} declares {size} bytes, more than the \
         {limit}-byte limit (the file is probably corrupt)"
    )]
    TooLarge {
        file: String,
        place: Place,
        offset: u64,
        size: u64,
        limit: u64,
    },
    #[error("{file}: {place} at byte offset {offset} is malformed: {reason}")]
    Malformed {
        file: String,
        place: Place,
        offset: u64,
        reason: String,
    },
    #[error("{file}: read error at byte offset {offset}: {source}")]
    Read {
        file: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Which of the two file formats a capture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    PcapNg,
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::PcapNg => "pcapng",
        })
    }
}

/// What the pcap file header says about every record.
#[derive(Debug, Clone, Copy)]
struct PcapLayout {
    big_endian: bool,
    nanosecond: bool,
    record_header_len: usize,
    lengths: LengthOrder,
    link: LinkType,
}

/// Which length comes first in a pcap record header. Files older than format 2.3 wrote the
/// wire length first; 2.3 files were written both ways (libpcap and Wireshark guess the same
/// way: a "captured" length above the wire length means the two are swapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthOrder {
    CapturedFirst,
    WireFirst,
    Unsure,
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Pcap(PcapLayout),
    PcapNg,
}

/// One pcapng interface (IDB) of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second (from `if_tsresol`).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// Where the packet just found lies in the buffer, and what it says; no borrow held.
#[derive(Debug, Clone, Copy)]
struct FoundPacket {
    data_start: usize,
    data_len: usize,
    ts: Timestamp,
    link: LinkType,
    wire_len: u32,
}

/// Where the bytes come from.
enum Source {
    /// Read into the reader's own buffer as it needs them (pipes, small files, tests).
    Stream(Box<dyn Read + Send>),
    /// A file read ahead in blocks on another thread; the buffer is the current block.
    Ahead(ReadAhead),
}

impl Drop for CaptureReader {
    fn drop(&mut self) {
        // The current block's buffer serves the next file read ahead.
        if matches!(self.source, Source::Ahead(_)) {
            read_ahead::keep_spare(std::mem::take(&mut self.buf));
        }
    }
}

/// Streams packets out of one pcap or pcapng file (or a pipe).
pub struct CaptureReader {
    name: String,
    source: Source,
    total: Option<u64>,
    /// `buf[start..end]` holds bytes read but not consumed; `offset` is the file offset of
    /// `buf[start]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    at_eof: bool,
    /// Size of the block returned last; consumed when the next packet is asked for, because
    /// the returned packet borrows it.
    pending: usize,
    finished: bool,
    layout: Layout,
    /// Packet records or packet blocks met so far (including skipped ones).
    packets: u64,
    skipped_bad_interface: u64,
    // pcapng section state
    big_endian: bool,
    interfaces: Vec<Interface>,
    last_ts: Timestamp,
    /// File offset up to which the cache has been asked for the bytes (see [`PREFETCH_BYTES`]).
    prefetched_to: u64,
    /// The capture to read after this one, started once this file is read to its end.
    next: Option<NextCapture>,
}

/// The file that comes after the one being read (see [`CaptureReader::read_next_ahead`]).
enum NextCapture {
    /// To be started once the current file's read-ahead has read it all.
    Waiting(PathBuf),
    Started(ReadAheadCapture),
}

/// A capture file whose read-ahead has started, for [`CaptureReader::open_started`].
pub struct ReadAheadCapture {
    path: PathBuf,
    total: u64,
    ahead: ReadAhead,
}

impl ReadAheadCapture {
    /// Starts reading `path` ahead when it is a regular file of 8 MiB or more
    /// (`read_ahead::MIN_FILE_BYTES`); `None` otherwise, or when it cannot be opened (opening
    /// it again then says why).
    fn start(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path)
            .ok()
            .filter(|meta| meta.is_file() && meta.len() >= read_ahead::MIN_FILE_BYTES)?;
        let file = std::fs::File::open(path).ok()?;
        Some(ReadAheadCapture {
            path: path.to_path_buf(),
            total: meta.len(),
            ahead: ReadAhead::start(path, file)?,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How far ahead of the parser the file's bytes are asked into the cache. Read-ahead blocks
/// come from the disk, not through a copy that leaves them cached, and the parser's walk
/// from record to record is one dependent miss after another without this.
const PREFETCH_BYTES: u64 = 4096;

impl CaptureReader {
    /// Opens a capture by path; `-` reads standard input.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        if path.as_os_str() == "-" {
            return Self::from_reader(name, Box::new(io::stdin()));
        }
        let file = std::fs::File::open(path).map_err(|source| CaptureError::Open {
            file: name.clone(),
            source,
        })?;
        let meta = file.metadata().ok();
        if meta.as_ref().is_some_and(|meta| meta.is_dir()) {
            return Err(CaptureError::Open {
                file: name,
                source: io::Error::other("it is a directory"),
            });
        }
        let total = meta.filter(|meta| meta.is_file()).map(|meta| meta.len());
        let mut reader = Self::from_reader(name, Box::new(file))?;
        reader.total = total;
        Ok(reader)
    }

    /// Opens a capture to read it through, start to end: a regular file of 8 MiB or more
    /// (`read_ahead::MIN_FILE_BYTES`) is read ahead of the parser on a thread of its own, with
    /// direct I/O where the file system allows it (the parser then reads the blocks the disk
    /// filled, with no copy); anything else as [`CaptureReader::open`] does.
    pub fn open_read_ahead(path: &Path) -> Result<Self, CaptureError> {
        match ReadAheadCapture::start(path) {
            Some(started) => Self::open_started(started),
            None => Self::open(path),
        }
    }

    /// Opens a capture whose read-ahead has started (see [`CaptureReader::take_next`]).
    pub fn open_started(started: ReadAheadCapture) -> Result<Self, CaptureError> {
        let name = started.path.display().to_string();
        let mut reader = Self::with_source(name, Source::Ahead(started.ahead), Vec::new())?;
        reader.total = Some(started.total);
        Ok(reader)
    }

    /// Names the file to be read after this one: once this file is read ahead to its end
    /// (its last blocks still to parse), the next one's read-ahead starts, so that its first
    /// blocks are ready when it is opened. A file not read ahead, or a next file too small for
    /// it, gets nothing. At most two files' blocks exist at once.
    pub fn read_next_ahead(&mut self, path: &Path) {
        if matches!(self.source, Source::Ahead(_)) {
            self.next = Some(NextCapture::Waiting(path.to_path_buf()));
        }
    }

    /// The next file, if its read-ahead started (see [`CaptureReader::read_next_ahead`]).
    pub fn take_next(&mut self) -> Option<ReadAheadCapture> {
        match self.next.take() {
            Some(NextCapture::Started(started)) => Some(started),
            _ => None,
        }
    }

    /// Reads a capture from any byte stream; `name` is used in errors. Reads and checks the
    /// file header, so a file that is not a capture fails here.
    pub fn from_reader(name: String, source: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        Self::with_source(name, Source::Stream(source), vec![0; INITIAL_BUFFER_BYTES])
    }

    fn with_source(name: String, source: Source, buf: Vec<u8>) -> Result<Self, CaptureError> {
        let mut reader = CaptureReader {
            name,
            source,
            total: None,
            buf,
            start: 0,
            end: 0,
            offset: 0,
            at_eof: false,
            pending: 0,
            finished: false,
            layout: Layout::PcapNg,
            packets: 0,
            skipped_bad_interface: 0,
            big_endian: false,
            interfaces: Vec::new(),
            last_ts: Timestamp::ZERO,
            prefetched_to: 0,
            next: None,
        };
        reader.read_file_header()?;
        Ok(reader)
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// pcap or pcapng.
    pub fn format(&self) -> CaptureFormat {
        match self.layout {
            Layout::Pcap(_) => CaptureFormat::Pcap,
            Layout::PcapNg => CaptureFormat::PcapNg,
        }
    }

    /// Bytes consumed from the file so far (for progress), up to the end of the last packet
    /// returned.
    pub fn bytes_read(&self) -> u64 {
        self.offset.saturating_add(self.pending as u64)
    }

    /// The file's size when it is a regular file.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    /// Packet blocks skipped because they named an interface the section does not describe.
    /// They still take their packet number.
    pub fn skipped_bad_interface(&self) -> u64 {
        self.skipped_bad_interface
    }

    /// The next packet, `Ok(None)` at a clean end of file. The packet borrows the reader's
    /// buffer until the next call. After an error every later call returns `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        self.advance(self.pending);
        self.pending = 0;
        if self.finished {
            return Ok(None);
        }
        self.prefetch_ahead();
        let found = match self.layout {
            Layout::Pcap(layout) => self.next_pcap_record(layout),
            Layout::PcapNg => self.next_pcapng_packet(),
        };
        let found = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.finished = true;
                return Ok(None);
            }
            Err(err) => {
                self.finished = true;
                return Err(err);
            }
        };
        let data = found
            .data_start
            .checked_add(found.data_len)
            .and_then(|data_end| self.buf.get(found.data_start..data_end))
            .unwrap_or_default();
        Ok(Some(RawPacket {
            number: self.packets,
            ts: found.ts,
            link: found.link,
            data,
            wire_len: found.wire_len,
        }))
    }

    // ---- buffer ----

    /// Asks the cache for the bytes up to [`PREFETCH_BYTES`] past the parser.
    #[inline]
    fn prefetch_ahead(&mut self) {
        let ahead_to = self.offset + (self.available() as u64).min(PREFETCH_BYTES);
        if ahead_to <= self.prefetched_to {
            return;
        }
        let from = self.prefetched_to.max(self.offset);
        let in_buf = |offset: u64| self.start + (offset - self.offset) as usize;
        if let Some(bytes) = self.buf.get(in_buf(from)..in_buf(ahead_to)) {
            crate::prefetch::prefetch_bytes(bytes);
        }
        self.prefetched_to = ahead_to;
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// The unconsumed bytes.
    fn window(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn advance(&mut self, len: usize) {
        let len = len.min(self.available());
        self.start += len;
        self.offset = self.offset.saturating_add(len as u64);
    }

    /// Makes `needed` (at most [`MAX_BLOCK_BYTES`]) unconsumed bytes available. `Ok(false)`
    /// when the input ends first.
    fn fill_to(&mut self, needed: usize) -> Result<bool, CaptureError> {
        if self.available() >= needed {
            return Ok(true);
        }
        if self.at_eof {
            return Ok(false);
        }
        let source = match &mut self.source {
            Source::Stream(source) => source,
            Source::Ahead(ahead) => {
                let filled =
                    fill_from_blocks(ahead, &mut self.buf, &mut self.start, &mut self.end, needed);
                if ahead.reading_done()
                    && let Some(NextCapture::Waiting(path)) = &self.next
                {
                    self.next = ReadAheadCapture::start(path).map(NextCapture::Started);
                }
                return match filled {
                    Ok(more) => {
                        self.at_eof = !more;
                        Ok(more)
                    }
                    Err(failure) => Err(CaptureError::Read {
                        file: self.name.clone(),
                        offset: failure.offset,
                        source: failure.error,
                    }),
                };
            }
        };
        if needed > self.buf.len() - self.start || self.start > self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if needed > self.buf.len() {
            let new_len = needed
                .checked_next_power_of_two()
                .unwrap_or(needed)
                .clamp(needed, MAX_BLOCK_BYTES.max(needed));
            self.buf.resize(new_len, 0);
        }
        let mut interrupted = 0;
        while self.end - self.start < needed {
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            let space_len = space.len();
            match source.read(space) {
                Ok(0) => {
                    self.at_eof = true;
                    return Ok(false);
                }
                Ok(read) => self.end += read.min(space_len),
                Err(err)
                    if err.kind() == io::ErrorKind::Interrupted
                        && interrupted < MAX_INTERRUPTED_READS =>
                {
                    interrupted += 1;
                }
                Err(source) => {
                    return Err(CaptureError::Read {
                        file: self.name.clone(),
                        offset: self.offset.saturating_add(self.available() as u64),
                        source,
                    });
                }
            }
        }
        Ok(true)
    }

    // ---- errors ----

    fn truncated(&self, place: Place, needed: usize) -> CaptureError {
        CaptureError::Truncated {
            file: self.name.clone(),
            place,
            offset: self.offset,
            needed: needed as u64,
            available: self.available() as u64,
        }
    }

    fn malformed(&self, place: Place, reason: impl Into<String>) -> CaptureError {
        CaptureError::Malformed {
            file: self.name.clone(),
            place,
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn too_large(&self, place: Place, size: u64) -> CaptureError {
        CaptureError::TooLarge {
            file: self.name.clone(),
            place,
            offset: self.offset,
            size,
            limit: MAX_BLOCK_BYTES as u64,
        }
    }

    // ---- file header ----

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        self.fill_to(4)?;
        let head = self.window();
        let Some(magic) = head.first_chunk::<4>() else {
            let detail = if head.is_empty() {
                "the file is empty".to_string()
            } else {
                format!("the file is only {} bytes long", head.len())
            };
            return Err(CaptureError::NotCapture {
                file: self.name.clone(),
                detail,
            });
        };
        let magic_le = u32::from_le_bytes(*magic);
        match magic_le {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
                self.read_pcap_header()
            }
            SHB_MAGIC => {
                if !self.fill_to(12)? {
                    return Err(self.truncated(Place::FileHeader, 12));
                }
                if self.section_byte_order().is_none() {
                    return Err(CaptureError::NotCapture {
                        file: self.name.clone(),
                        detail: "it starts like pcapng but its byte-order magic is wrong"
                            .to_string(),
                    });
                }
                self.layout = Layout::PcapNg;
                Ok(())
            }
            _ => {
                let shown: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
                let hint = if magic.starts_with(&[0x1f, 0x8b]) {
                    " (it looks gzip-compressed: decompress it first)"
                } else {
                    ""
                };
                Err(CaptureError::NotCapture {
                    file: self.name.clone(),
                    detail: format!(
                        "it starts with bytes {}, which is neither a pcap nor a pcapng magic \
                         number{hint}",
                        shown.join(" ")
                    ),
                })
            }
        }
    }

    fn read_pcap_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill_to(PCAP_FILE_HEADER_BYTES)? {
            return Err(self.truncated(Place::FileHeader, PCAP_FILE_HEADER_BYTES));
        }
        let header = match parse_pcap_header(self.window()) {
            Ok((_, header)) => header,
            Err(err) => {
                return Err(self.malformed(Place::FileHeader, format!("pcap-parser: {err:?}")));
            }
        };
        let modified = header.is_modified_format();
        // The upper bits of the link type field carry FCS information, not the link type.
        let link = LinkType((header.network.0 as u32) & 0xFFFF);
        self.layout = Layout::Pcap(PcapLayout {
            big_endian: header.is_bigendian(),
            nanosecond: header.is_nanosecond_precision(),
            // The "modified" (Alexey Kuznetzov) format adds ifindex, protocol and packet type.
            record_header_len: if modified { 24 } else { 16 },
            lengths: match (header.version_major, header.version_minor) {
                (2, 0..=2) => LengthOrder::WireFirst,
                (2, 3) => LengthOrder::Unsure,
                _ => LengthOrder::CapturedFirst,
            },
            link,
        });
        self.advance(PCAP_FILE_HEADER_BYTES);
        Ok(())
    }

    // ---- pcap ----

    fn next_pcap_record(
        &mut self,
        layout: PcapLayout,
    ) -> Result<Option<FoundPacket>, CaptureError> {
        if !self.fill_to(1)? {
            return Ok(None);
        }
        let place = Place::Packet(self.packets.saturating_add(1));
        let header_len = layout.record_header_len;
        if !self.fill_to(header_len)? {
            return Err(self.truncated(place, header_len));
        }
        let be = layout.big_endian;
        let header = self.window();
        let fields = (
            read_u32(header, 0, be),
            read_u32(header, 4, be),
            read_u32(header, 8, be),
            read_u32(header, 12, be),
        );
        let (Some(ts_sec), Some(ts_frac), Some(first_len), Some(second_len)) = fields else {
            return Err(self.truncated(place, header_len));
        };
        let (caplen, origlen) = match layout.lengths {
            LengthOrder::CapturedFirst => (first_len, second_len),
            LengthOrder::WireFirst => (second_len, first_len),
            LengthOrder::Unsure if first_len > second_len => (second_len, first_len),
            LengthOrder::Unsure => (first_len, second_len),
        };
        let record_len = usize::try_from(caplen)
            .ok()
            .and_then(|caplen| caplen.checked_add(header_len))
            .filter(|&len| len <= MAX_BLOCK_BYTES);
        let Some(record_len) = record_len else {
            return Err(self.too_large(place, u64::from(caplen) + header_len as u64));
        };
        if !self.fill_to(record_len)? {
            return Err(self.truncated(place, record_len));
        }
        let nanos = if layout.nanosecond {
            i64::from(ts_frac)
        } else {
            i64::from(ts_frac) * 1_000
        };
        let ts = Timestamp(
            i64::from(ts_sec)
                .saturating_mul(1_000_000_000)
                .saturating_add(nanos),
        );
        let found = FoundPacket {
            data_start: self.start + header_len,
            data_len: record_len - header_len,
            ts,
            link: layout.link,
            wire_len: origlen.max(caplen),
        };
        self.packets = self.packets.saturating_add(1);
        self.pending = record_len;
        Ok(Some(found))
    }

    // ---- pcapng ----

    /// The byte order a section header at the window's start declares (`Some(true)` for big
    /// endian), `None` when its byte-order magic is neither.
    fn section_byte_order(&self) -> Option<bool> {
        match read_u32(self.window(), 8, false)? {
            BYTE_ORDER_MAGIC => Some(false),
            magic if magic == BYTE_ORDER_MAGIC.swap_bytes() => Some(true),
            _ => None,
        }
    }

    fn block_place(&self, block_type: Option<u32>) -> Place {
        let after_packet = self.packets;
        let kind = match block_type {
            Some(EPB_MAGIC | SPB_MAGIC | OBSOLETE_PB_MAGIC) => {
                return Place::Packet(self.packets.saturating_add(1));
            }
            Some(SHB_MAGIC) if self.offset == 0 => return Place::FileHeader,
            Some(SHB_MAGIC) => "section header",
            Some(IDB_MAGIC) => "interface description",
            Some(NRB_MAGIC) => "name resolution",
            Some(ISB_MAGIC) => "interface statistics",
            Some(DSB_MAGIC) => "decryption secrets",
            Some(CUSTOM_MAGIC | CUSTOM_NOCOPY_MAGIC) => "custom",
            Some(_) => "pcapng",
            None => "pcapng",
        };
        Place::Block { kind, after_packet }
    }

    fn next_pcapng_packet(&mut self) -> Result<Option<FoundPacket>, CaptureError> {
        loop {
            if !self.fill_to(1)? {
                return Ok(None);
            }
            if !self.fill_to(8)? {
                let block_type = read_u32(self.window(), 0, self.big_endian);
                return Err(self.truncated(self.block_place(block_type), 8));
            }
            // The section header's type reads the same in both byte orders; its byte-order
            // magic decides how this and the following blocks are read.
            if read_u32(self.window(), 0, false) == Some(SHB_MAGIC) {
                let place = self.block_place(Some(SHB_MAGIC));
                if !self.fill_to(12)? {
                    return Err(self.truncated(place, 12));
                }
                match self.section_byte_order() {
                    Some(big_endian) => self.big_endian = big_endian,
                    None => return Err(self.malformed(place, "unknown byte-order magic")),
                }
            }
            let big_endian = self.big_endian;
            let block_type = read_u32(self.window(), 0, big_endian).unwrap_or(0);
            let block_len = read_u32(self.window(), 4, big_endian).unwrap_or(0);
            let place = self.block_place(Some(block_type));
            if block_len < 12 || !block_len.is_multiple_of(4) {
                let reason =
                    format!("block length {block_len} is not a multiple of 4 of at least 12");
                return Err(self.malformed(place, reason));
            }
            let Some(block_len) = usize::try_from(block_len)
                .ok()
                .filter(|&len| len <= MAX_BLOCK_BYTES)
            else {
                return Err(self.too_large(place, u64::from(block_len)));
            };
            if !self.fill_to(block_len)? {
                return Err(self.truncated(place, block_len));
            }
            let trailer = read_u32(self.window(), block_len - 4, big_endian).unwrap_or(0);
            if trailer as usize != block_len {
                let reason = format!(
                    "the length at its end ({trailer}) differs from the one at its start \
                     ({block_len})"
                );
                return Err(self.malformed(place, reason));
            }
            let found = match block_type {
                SHB_MAGIC => {
                    self.read_section_header(place, block_len)?;
                    None
                }
                IDB_MAGIC => {
                    self.read_interface(place, block_len)?;
                    None
                }
                EPB_MAGIC | OBSOLETE_PB_MAGIC => {
                    self.packets = self.packets.saturating_add(1);
                    self.read_packet_block(place, block_type, block_len)?
                }
                SPB_MAGIC => {
                    self.packets = self.packets.saturating_add(1);
                    self.read_simple_packet_block(block_len)
                }
                // Name resolution, statistics, secrets, custom and unknown blocks carry no
                // packets.
                _ => None,
            };
            match found {
                Some(found) => {
                    self.pending = block_len;
                    return Ok(Some(found));
                }
                None => self.advance(block_len),
            }
        }
    }

    fn read_section_header(&mut self, place: Place, block_len: usize) -> Result<(), CaptureError> {
        let block = self.window().get(..block_len).unwrap_or_default();
        if let Err(err) = parse_sectionheaderblock(block) {
            let reason = format!("pcap-parser: {err:?}");
            return Err(self.malformed(place, reason));
        }
        self.interfaces.clear();
        Ok(())
    }

    fn read_interface(&mut self, place: Place, block_len: usize) -> Result<(), CaptureError> {
        let block = self.window().get(..block_len).unwrap_or_default();
        let parsed = if self.big_endian {
            parse_interfacedescriptionblock_be(block)
        } else {
            parse_interfacedescriptionblock_le(block)
        };
        let interface = match parsed {
            Ok((_, idb)) => interface_from_block(&idb, self.big_endian),
            Err(err) => Err(format!("pcap-parser: {err:?}")),
        };
        let interface = interface.map_err(|reason| self.malformed(place, reason))?;
        if self.interfaces.len() >= MAX_INTERFACES {
            let reason = format!("more than {MAX_INTERFACES} interfaces in one section");
            return Err(self.malformed(place, reason));
        }
        self.interfaces.push(interface);
        Ok(())
    }

    /// An Enhanced Packet Block or an obsolete Packet Block; `None` when it names an
    /// interface the section does not have.
    fn read_packet_block(
        &mut self,
        place: Place,
        block_type: u32,
        block_len: usize,
    ) -> Result<Option<FoundPacket>, CaptureError> {
        // type, length, interface, ts high, ts low, captured length, original length, ...,
        // trailing length
        const FIXED_BYTES: usize = 32;
        let be = self.big_endian;
        let block = self.window().get(..block_len).unwrap_or_default();
        if block_len < FIXED_BYTES {
            let reason = format!("{block_len} bytes is too short for a packet block");
            return Err(self.malformed(place, reason));
        }
        let interface_id = if block_type == OBSOLETE_PB_MAGIC {
            read_u16(block, 8, be).map(u32::from)
        } else {
            read_u32(block, 8, be)
        };
        let fields = (
            interface_id,
            read_u32(block, 12, be),
            read_u32(block, 16, be),
            read_u32(block, 20, be),
            read_u32(block, 24, be),
        );
        let (Some(interface_id), Some(ts_high), Some(ts_low), Some(caplen), Some(origlen)) = fields
        else {
            return Err(self.malformed(place, "header fields missing"));
        };
        let room = block_len - FIXED_BYTES;
        if caplen as usize > room {
            let reason = format!(
                "captured length {caplen} does not fit in the block ({room} bytes of data)"
            );
            return Err(self.malformed(place, reason));
        }
        let interface = usize::try_from(interface_id)
            .ok()
            .and_then(|id| self.interfaces.get(id))
            .copied();
        let Some(interface) = interface else {
            self.skipped_bad_interface = self.skipped_bad_interface.saturating_add(1);
            return Ok(None);
        };
        let raw_ts = (u64::from(ts_high) << 32) | u64::from(ts_low);
        let ts = pcapng_timestamp(raw_ts, interface.units_per_sec, interface.offset_secs);
        self.last_ts = ts;
        Ok(Some(FoundPacket {
            data_start: self.start + 28,
            data_len: caplen as usize,
            ts,
            link: interface.link,
            wire_len: origlen.max(caplen),
        }))
    }

    /// A Simple Packet Block: interface 0, no timestamp (the last one seen is used), captured
    /// length implied by the block and the interface's snaplen.
    fn read_simple_packet_block(&mut self, block_len: usize) -> Option<FoundPacket> {
        const FIXED_BYTES: usize = 16;
        let Some(interface) = self.interfaces.first().copied() else {
            self.skipped_bad_interface = self.skipped_bad_interface.saturating_add(1);
            return None;
        };
        let origlen = read_u32(self.window(), 8, self.big_endian).unwrap_or(0);
        let room = block_len.saturating_sub(FIXED_BYTES);
        let mut caplen = room.min(origlen as usize);
        if interface.snaplen != 0 {
            caplen = caplen.min(interface.snaplen as usize);
        }
        Some(FoundPacket {
            data_start: self.start + 12,
            data_len: caplen,
            ts: self.last_ts,
            link: interface.link,
            wire_len: origlen.max(caplen as u32),
        })
    }
}

/// Makes `needed` unconsumed bytes (`buf[start..end]`) available from the blocks `ahead`
/// reads: the usual case swaps in the next block and copies the unconsumed tail (part of one
/// record) into its headroom; a record longer than the headroom is gathered into a vector of
/// its own. `Ok(false)` when the file ends first.
fn fill_from_blocks(
    ahead: &mut ReadAhead,
    buf: &mut Vec<u8>,
    start: &mut usize,
    end: &mut usize,
    needed: usize,
) -> Result<bool, read_ahead::ReadFailure> {
    while *end - *start < needed {
        let Some(block) = ahead.next_block()? else {
            return Ok(false);
        };
        let tail_len = *end - *start;
        let data = block.data_at..block.data_at + block.len;
        let Block {
            buf: mut next,
            data_at,
            ..
        } = block;
        let joined = match (
            buf.get(*start..*end),
            data_at
                .checked_sub(tail_len)
                .and_then(|from| next.get_mut(from..data_at)),
        ) {
            (Some(tail), Some(room)) => {
                room.copy_from_slice(tail);
                *start = data_at - tail_len;
                *end = data.end;
                std::mem::replace(buf, next)
            }
            (tail, _) => {
                let mut whole = Vec::with_capacity(tail_len + data.len());
                whole.extend_from_slice(tail.unwrap_or_default());
                whole.extend_from_slice(next.get(data).unwrap_or_default());
                *start = 0;
                *end = whole.len();
                ahead.give_back(next);
                std::mem::replace(buf, whole)
            }
        };
        ahead.give_back(joined);
    }
    Ok(true)
}

/// Link type, snaplen and timestamp scale of an IDB; the options are read here in the
/// section's byte order.
fn interface_from_block(
    idb: &InterfaceDescriptionBlock<'_>,
    big_endian: bool,
) -> Result<Interface, String> {
    let mut units_per_sec = 1_000_000;
    let mut offset_secs = 0i64;
    for option in &idb.options {
        match option.code {
            OptionCode::IfTsresol => {
                if let Some(&resolution) = option.value.first() {
                    units_per_sec = units_per_second(resolution)
                        .ok_or_else(|| format!("unsupported if_tsresol {resolution:#04x}"))?;
                }
            }
            OptionCode::IfTsoffset => {
                if let Some(bytes) = option.value.first_chunk::<8>() {
                    offset_secs = if big_endian {
                        i64::from_be_bytes(*bytes)
                    } else {
                        i64::from_le_bytes(*bytes)
                    };
                }
            }
            _ => {}
        }
    }
    Ok(Interface {
        link: LinkType((idb.linktype.0 as u32) & 0xFFFF),
        snaplen: idb.snaplen,
        units_per_sec,
        offset_secs,
    })
}

/// Timestamp units per second for an `if_tsresol` value: 10^n, or 2^n when the top bit is set.
fn units_per_second(resolution: u8) -> Option<u64> {
    let exponent = u32::from(resolution & 0x7F);
    if resolution & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent).filter(|_| exponent < 64)
    }
}

fn pcapng_timestamp(raw: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let units_per_sec = units_per_sec.max(1);
    let secs = i64::try_from(raw / units_per_sec).unwrap_or(i64::MAX);
    let fraction = raw % units_per_sec;
    let nanos = u128::from(fraction) * 1_000_000_000 / u128::from(units_per_sec);
    let nanos = u32::try_from(nanos).unwrap_or(999_999_999);
    Timestamp::from_secs_nanos(secs.saturating_add(offset_secs), nanos)
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let field = *bytes.get(at..)?.first_chunk::<4>()?;
    Some(if big_endian {
        u32::from_be_bytes(field)
    } else {
        u32::from_le_bytes(field)
    })
}

fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let field = *bytes.get(at..)?.first_chunk::<2>()?;
    Some(if big_endian {
        u16::from_be_bytes(field)
    } else {
        u16::from_le_bytes(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    // ---- capture builders: every byte written out so expected values are known ----

    fn u16b(value: u16, be: bool) -> [u8; 2] {
        if be {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }
    fn u32b(value: u32, be: bool) -> [u8; 4] {
        if be {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    /// A pcap file header; the magic bytes are spelled out as they appear on disk.
    fn pcap_header(be: bool, nano: bool, snaplen: u32, link: u32) -> Vec<u8> {
        let magic: [u8; 4] = match (be, nano) {
            (false, false) => [0xd4, 0xc3, 0xb2, 0xa1],
            (true, false) => [0xa1, 0xb2, 0xc3, 0xd4],
            (false, true) => [0x4d, 0x3c, 0xb2, 0xa1],
            (true, true) => [0xa1, 0xb2, 0x3c, 0x4d],
        };
        let mut out = magic.to_vec();
        out.extend(u16b(2, be));
        out.extend(u16b(4, be));
        out.extend(u32b(0, be)); // thiszone
        out.extend(u32b(0, be)); // sigfigs
        out.extend(u32b(snaplen, be));
        out.extend(u32b(link, be));
        assert_eq!(out.len(), 24);
        out
    }

    fn pcap_record(be: bool, secs: u32, frac: u32, data: &[u8], wire_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(u32b(secs, be));
        out.extend(u32b(frac, be));
        out.extend(u32b(data.len() as u32, be));
        out.extend(u32b(wire_len, be));
        out.extend(data);
        out
    }

    fn ng_block(be: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
        let mut padded = body.to_vec();
        while !padded.len().is_multiple_of(4) {
            padded.push(0);
        }
        let total = 12 + padded.len() as u32;
        let mut out = Vec::new();
        out.extend(u32b(block_type, be));
        out.extend(u32b(total, be));
        out.extend(padded);
        out.extend(u32b(total, be));
        out
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(u32b(0x1A2B_3C4D, be));
        body.extend(u16b(1, be));
        body.extend(u16b(0, be));
        body.extend([0xff; 8]); // section length unknown (-1)
        ng_block(be, 0x0A0D_0D0A, &body)
    }

    fn option(be: bool, code: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(u16b(code, be));
        out.extend(u16b(value.len() as u16, be));
        out.extend(value);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    fn idb(be: bool, link: u16, snaplen: u32, options: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(u16b(link, be));
        body.extend(u16b(0, be));
        body.extend(u32b(snaplen, be));
        if !options.is_empty() {
            for opt in options {
                body.extend(opt);
            }
            body.extend([0, 0, 0, 0]); // opt_endofopt
        }
        ng_block(be, 1, &body)
    }

    fn epb(be: bool, interface: u32, ts: u64, data: &[u8], wire_len: u32) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(u32b(interface, be));
        body.extend(u32b((ts >> 32) as u32, be));
        body.extend(u32b(ts as u32, be));
        body.extend(u32b(data.len() as u32, be));
        body.extend(u32b(wire_len, be));
        body.extend(data);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        // epb_flags option, as Wireshark writes it, then end of options
        body.extend(option(be, 2, &u32b(1, be)));
        body.extend([0, 0, 0, 0]);
        ng_block(be, 6, &body)
    }

    fn obsolete_pb(be: bool, interface: u16, ts: u64, data: &[u8], wire_len: u32) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(u16b(interface, be));
        body.extend(u16b(0, be)); // drops
        body.extend(u32b((ts >> 32) as u32, be));
        body.extend(u32b(ts as u32, be));
        body.extend(u32b(data.len() as u32, be));
        body.extend(u32b(wire_len, be));
        body.extend(data);
        ng_block(be, 2, &body)
    }

    fn spb(be: bool, data: &[u8], wire_len: u32) -> Vec<u8> {
        let mut body = u32b(wire_len, be).to_vec();
        body.extend(data);
        ng_block(be, 3, &body)
    }

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader("test.cap".to_string(), Box::new(Cursor::new(bytes)))
    }

    /// Everything a packet says, owned, so tests can collect them.
    #[derive(Debug, PartialEq)]
    struct Seen {
        number: u64,
        ts: i64,
        link: u32,
        data: Vec<u8>,
        wire_len: u32,
    }

    fn read_all(reader: &mut CaptureReader) -> (Vec<Seen>, Option<CaptureError>) {
        let mut seen = Vec::new();
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => seen.push(Seen {
                    number: p.number,
                    ts: p.ts.0,
                    link: p.link.0,
                    data: p.data.to_vec(),
                    wire_len: p.wire_len,
                }),
                Ok(None) => return (seen, None),
                Err(err) => return (seen, Some(err)),
            }
        }
    }

    /// Hands out at most 3 bytes per read, like a slow pipe.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = buf.len().min(3);
            self.0.read(&mut buf[..len])
        }
    }

    // ---- pcap ----

    #[test]
    fn pcap_all_byte_orders_and_resolutions() {
        for be in [false, true] {
            for nano in [false, true] {
                let mut file = pcap_header(be, nano, 65535, 1);
                file.extend(pcap_record(be, 1_700_000_000, 123_456, b"abcd", 60));
                file.extend(pcap_record(be, 1_700_000_001, 999_999, b"xyz", 3));
                let total = file.len() as u64;
                let mut r = reader(file).unwrap();
                assert_eq!(r.format(), CaptureFormat::Pcap);
                let (seen, err) = read_all(&mut r);
                assert!(err.is_none(), "{err:?}");
                let scale = if nano { 1 } else { 1_000 };
                assert_eq!(
                    seen,
                    vec![
                        Seen {
                            number: 1,
                            ts: 1_700_000_000 * 1_000_000_000 + 123_456 * scale,
                            link: 1,
                            data: b"abcd".to_vec(),
                            wire_len: 60,
                        },
                        Seen {
                            number: 2,
                            ts: 1_700_000_001 * 1_000_000_000 + 999_999 * scale,
                            link: 1,
                            data: b"xyz".to_vec(),
                            wire_len: 3,
                        },
                    ],
                    "be={be} nano={nano}"
                );
                assert_eq!(r.bytes_read(), total);
            }
        }
    }

    #[test]
    fn pcap_microsecond_timestamp_displays_like_zeek() {
        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1_258_535_653, 2_345, b"x", 1));
        let mut r = reader(file).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.ts.to_string(), "1258535653.002345");
    }

    #[test]
    fn pcap_link_type_from_header_without_fcs_bits() {
        // LINKTYPE_LINUX_SLL (113) with the "FCS present" bits set above bit 16.
        let mut file = pcap_header(true, false, 65535, 113 | 0x1000_0000);
        file.extend(pcap_record(true, 1, 0, b"zz", 2));
        let mut r = reader(file).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().link, LinkType::LINUX_SLL);
    }

    #[test]
    fn pcap_caplen_beyond_snaplen_and_wire_len_is_kept() {
        let mut file = pcap_header(false, false, 4, 1);
        file.extend(pcap_record(false, 5, 0, b"0123456789", 6));
        file.extend(pcap_record(false, 6, 0, b"ok", 2));
        let mut r = reader(file).unwrap();
        let (seen, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].data, b"0123456789");
        assert_eq!(seen[0].wire_len, 10);
        assert_eq!(seen[1].data, b"ok");
    }

    #[test]
    fn pcap_before_version_2_3_has_the_wire_length_first() {
        let mut file = pcap_header(false, false, 65535, 1);
        file[6..8].copy_from_slice(&[2, 0]); // version 2.2
        let mut record = pcap_record(false, 1, 0, b"abc", 0);
        record[8..12].copy_from_slice(&60u32.to_le_bytes()); // wire length
        record[12..16].copy_from_slice(&3u32.to_le_bytes()); // captured length
        file.extend(record);
        let (seen, err) = read_all(&mut reader(file.clone()).unwrap());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            (seen[0].data.as_slice(), seen[0].wire_len),
            (&b"abc"[..], 60)
        );

        // version 2.3 guesses: a captured length above the wire length means swapped
        file[6..8].copy_from_slice(&[3, 0]);
        let (seen, _) = read_all(&mut reader(file.clone()).unwrap());
        assert_eq!(
            (seen[0].data.as_slice(), seen[0].wire_len),
            (&b"abc"[..], 60)
        );
    }

    #[test]
    fn pcap_header_only_is_a_clean_empty_capture() {
        let mut r = reader(pcap_header(false, false, 65535, 1)).unwrap();
        assert!(r.next_packet().unwrap().is_none());
        assert!(r.next_packet().unwrap().is_none());
        assert_eq!(r.bytes_read(), 24);
    }

    #[test]
    fn pcap_cut_mid_packet_names_packet_and_offset() {
        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1, 0, &[1; 100], 100));
        file.extend(pcap_record(false, 2, 0, &[2; 50], 50));
        file.extend(pcap_record(false, 3, 0, &[3; 40], 40));
        // packet 3 starts at 24 + (16 + 100) + (16 + 50) = 206; keep its header and 10 bytes
        file.truncate(206 + 16 + 10);
        let mut r = reader(file).unwrap();
        let (seen, err) = read_all(&mut r);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].data, vec![2; 50]);
        let err = err.unwrap();
        assert!(
            matches!(
                err,
                CaptureError::Truncated {
                    place: Place::Packet(3),
                    offset: 206,
                    needed: 56,
                    available: 26,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with("test.cap: "), "{text}");
        assert!(text.contains("packet 3"), "{text}");
        assert!(text.contains("byte offset 206"), "{text}");
        // stops for good after an error
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn pcap_cut_mid_record_header_is_truncation_of_next_packet() {
        let mut file = pcap_header(true, true, 65535, 1);
        file.extend(pcap_record(true, 1, 0, &[1; 20], 20));
        file.extend([0, 0]); // 2 bytes of packet 2's 16-byte header
        let mut r = reader(file).unwrap();
        let (seen, err) = read_all(&mut r);
        assert_eq!(seen.len(), 1);
        assert!(matches!(
            err,
            Some(CaptureError::Truncated {
                place: Place::Packet(2),
                offset: 60,
                needed: 16,
                available: 2,
                ..
            })
        ));
    }

    #[test]
    fn pcap_record_beyond_the_cap_is_an_error_without_allocating() {
        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1, 0, b"fine", 4));
        let mut bad = pcap_record(false, 2, 0, b"", 0);
        bad[8..12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        file.extend(bad);
        let mut r = reader(file).unwrap();
        let (seen, err) = read_all(&mut r);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert!(
            matches!(
                err,
                CaptureError::TooLarge {
                    place: Place::Packet(2),
                    offset: 44,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(r.buf.len() <= INITIAL_BUFFER_BYTES);
    }

    #[test]
    fn pcap_packet_larger_than_the_initial_buffer_is_read() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = pcap_header(false, false, 400_000, 1);
        file.extend(pcap_record(false, 1, 0, b"small", 5));
        file.extend(pcap_record(false, 2, 0, &big, 300_000));
        file.extend(pcap_record(false, 3, 0, b"after", 5));
        let mut r = reader(file).unwrap();
        let (seen, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].data, big);
        assert_eq!(seen[2].data, b"after");
        assert!(r.buf.len() <= 2 * 300_016);
    }

    #[test]
    fn trickling_pipe_gives_the_same_packets() {
        let mut file = pcap_header(false, true, 65535, 1);
        for i in 0..50u32 {
            file.extend(pcap_record(
                false,
                i,
                i * 7,
                &vec![i as u8; i as usize],
                1000,
            ));
        }
        let (whole, _) = read_all(&mut reader(file.clone()).unwrap());
        let mut slow =
            CaptureReader::from_reader("pipe".into(), Box::new(Trickle(Cursor::new(file))))
                .unwrap();
        let (trickled, err) = read_all(&mut slow);
        assert!(err.is_none());
        assert_eq!(whole.len(), 50);
        assert_eq!(trickled, whole);
    }

    // ---- not captures ----

    #[test]
    fn empty_file_is_not_a_capture() {
        let err = reader(Vec::new()).err().unwrap();
        assert!(matches!(err, CaptureError::NotCapture { .. }));
        assert_eq!(
            err.to_string(),
            "test.cap: not a capture file: the file is empty"
        );
    }

    #[test]
    fn garbage_is_not_a_capture_and_says_what_it_saw() {
        let err = reader(b"<html><body>".to_vec()).err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, CaptureError::NotCapture { .. }));
        assert!(text.contains("3c 68 74 6d"), "{text}");
        let gz = reader(vec![0x1f, 0x8b, 8, 0, 0, 0])
            .err()
            .unwrap()
            .to_string();
        assert!(gz.contains("gzip"), "{gz}");
    }

    #[test]
    fn pcap_header_cut_short_is_a_truncation() {
        let mut file = pcap_header(false, false, 65535, 1);
        file.truncate(10);
        let err = reader(file).err().unwrap();
        assert!(
            matches!(
                err,
                CaptureError::Truncated {
                    place: Place::FileHeader,
                    offset: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn open_reports_the_missing_file_and_sizes_a_real_one() {
        let dir = CaptureReader::open(&std::env::temp_dir()).err().unwrap();
        assert!(matches!(dir, CaptureError::Open { .. }), "{dir:?}");

        let missing = Path::new("/nonexistent/dir/x.pcap");
        let err = CaptureReader::open(missing).err().unwrap();
        assert!(matches!(err, CaptureError::Open { .. }));
        assert!(
            err.to_string()
                .starts_with("/nonexistent/dir/x.pcap: cannot open: ")
        );

        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1, 0, b"abc", 3));
        let path = std::env::temp_dir().join(format!("capture-test-{}.pcap", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        assert_eq!(r.total_bytes(), Some(file.len() as u64));
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"abc");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_error_mid_file_names_the_offset() {
        struct FailsAfter(Cursor<Vec<u8>>);
        impl Read for FailsAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("disk on fire")),
                    n => Ok(n),
                }
            }
        }
        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1, 0, b"abc", 3));
        file.extend([0; 5]);
        let mut r = CaptureReader::from_reader("f".into(), Box::new(FailsAfter(Cursor::new(file))))
            .unwrap();
        let (seen, err) = read_all(&mut r);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert!(
            matches!(err, CaptureError::Read { offset: 48, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("disk on fire"));
    }

    // ---- pcapng ----

    #[test]
    fn pcapng_interfaces_resolutions_sections_and_block_kinds() {
        let le = false;
        let mut file = shb(le);
        // interface 0: Ethernet, nanoseconds (if_tsresol 9)
        file.extend(idb(le, 1, 0, &[option(le, 9, &[9])]));
        // interface 1: raw IP, 2^-10 s units (if_tsresol 0x8a), clock 100 s behind (if_tsoffset)
        file.extend(idb(
            le,
            101,
            0,
            &[
                option(le, 9, &[0x8a]),
                option(le, 14, &100i64.to_le_bytes()),
            ],
        ));
        file.extend(ng_block(le, 4, &[0, 0, 0, 0])); // NRB with only the end record
        file.extend(epb(le, 0, 1_700_000_000_123_456_789, b"eth-frame", 64));
        file.extend(epb(le, 1, 1_600_000_000 * 1024 + 256, b"ip", 2));
        file.extend(ng_block(le, 5, &[0; 12])); // ISB
        file.extend(ng_block(le, 0x0BAD, &[1, 2, 3, 4, 5])); // custom block
        file.extend(spb(le, b"simple-pkt", 10)); // interface 0, ts of the last packet
        file.extend(epb(le, 7, 5, b"nobody", 6)); // no interface 7: skipped
        // a second section, big endian: the interface list starts again
        let be = true;
        file.extend(shb(be));
        file.extend(idb(be, 113, 0, &[])); // default resolution: microseconds
        file.extend(epb(be, 1, 42, b"gone", 4)); // interface 1 existed only in section 1
        file.extend(epb(be, 0, 1_500_000_000_000_001, b"sll", 3));
        file.extend(obsolete_pb(be, 0, 1_500_000_000_000_002, b"old", 30));
        let total = file.len() as u64;

        let mut r = reader(file.clone()).unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg);
        let (seen, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        let expected = vec![
            Seen {
                number: 1,
                ts: 1_700_000_000_123_456_789,
                link: 1,
                data: b"eth-frame".to_vec(),
                wire_len: 64,
            },
            // 1_600_000_000 s + 256/1024 s + 100 s offset
            Seen {
                number: 2,
                ts: 1_600_000_100_250_000_000,
                link: 101,
                data: b"ip".to_vec(),
                wire_len: 2,
            },
            Seen {
                number: 3,
                ts: 1_600_000_100_250_000_000,
                link: 1,
                data: b"simple-pkt".to_vec(),
                wire_len: 10,
            },
            Seen {
                number: 6,
                ts: 1_500_000_000_000_001_000,
                link: 113,
                data: b"sll".to_vec(),
                wire_len: 3,
            },
            Seen {
                number: 7,
                ts: 1_500_000_000_000_002_000,
                link: 113,
                data: b"old".to_vec(),
                wire_len: 30,
            },
        ];
        assert_eq!(seen, expected);
        assert_eq!(r.skipped_bad_interface(), 2);
        assert_eq!(r.bytes_read(), total);

        let mut slow =
            CaptureReader::from_reader("pipe".into(), Box::new(Trickle(Cursor::new(file))))
                .unwrap();
        assert_eq!(read_all(&mut slow).0, expected);
    }

    #[test]
    fn pcapng_simple_packet_block_trims_padding_and_snaplen() {
        let le = false;
        let mut file = shb(le);
        file.extend(idb(le, 1, 4, &[]));
        file.extend(spb(le, b"abcdef", 6)); // snaplen 4 cuts it
        file.extend(spb(le, b"xy", 2)); // 2 bytes of padding in the block
        let (seen, err) = read_all(&mut reader(file).unwrap());
        assert!(err.is_none());
        assert_eq!(seen[0].data, b"abcd");
        assert_eq!(seen[0].wire_len, 6);
        assert_eq!(seen[1].data, b"xy");
        assert_eq!(seen[0].ts, 0);
    }

    #[test]
    fn pcapng_section_header_only_is_a_clean_empty_capture() {
        let mut file = shb(true);
        file.extend(idb(true, 1, 0, &[]));
        let mut r = reader(file).unwrap();
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn pcapng_cut_mid_packet_names_packet_and_offset() {
        let le = false;
        let mut file = shb(le);
        file.extend(idb(le, 1, 0, &[]));
        let first = file.len();
        file.extend(epb(le, 0, 1, b"one", 3));
        let second = file.len();
        file.extend(epb(le, 0, 2, b"two-two-two", 11));
        file.truncate(second + 20);
        let (seen, err) = read_all(&mut reader(file).unwrap());
        assert_eq!(seen.len(), 1);
        assert!(first < second);
        let err = err.unwrap();
        assert!(
            matches!(err, CaptureError::Truncated { place: Place::Packet(2), offset, available: 20, .. } if offset == second as u64),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("packet 2, which starts at byte offset {second}"))
        );
    }

    #[test]
    fn pcapng_malformed_blocks_are_errors_not_loops() {
        let le = false;
        let mut base = shb(le);
        base.extend(idb(le, 1, 0, &[]));
        let at = base.len() as u64;

        // trailing length differs from the leading one
        let mut file = base.clone();
        let mut block = epb(le, 0, 1, b"abc", 3);
        let end = block.len();
        block[end - 4] ^= 0x10;
        file.extend(block);
        let err = read_all(&mut reader(file).unwrap()).1.unwrap();
        assert!(
            matches!(err, CaptureError::Malformed { place: Place::Packet(1), offset, .. } if offset == at),
            "{err:?}"
        );

        // block length below the minimum
        let mut file = base.clone();
        file.extend([6, 0, 0, 0, 4, 0, 0, 0]);
        let err = read_all(&mut reader(file).unwrap()).1.unwrap();
        assert!(matches!(err, CaptureError::Malformed { .. }), "{err:?}");

        // captured length larger than the block
        let mut file = base.clone();
        let mut block = epb(le, 0, 1, b"abcd", 4);
        block[20..24].copy_from_slice(&1000u32.to_le_bytes());
        file.extend(block);
        let err = read_all(&mut reader(file).unwrap()).1.unwrap();
        assert!(
            matches!(
                err,
                CaptureError::Malformed {
                    place: Place::Packet(1),
                    ..
                }
            ),
            "{err:?}"
        );

        // block length beyond the cap
        let mut file = base.clone();
        file.extend([6, 0, 0, 0, 0, 0, 0, 0x40]);
        let err = read_all(&mut reader(file).unwrap()).1.unwrap();
        assert!(
            matches!(
                err,
                CaptureError::TooLarge {
                    place: Place::Packet(1),
                    ..
                }
            ),
            "{err:?}"
        );

        // bad byte-order magic in a later section
        let mut file = base.clone();
        let mut section = shb(le);
        section[8] = 0x99;
        file.extend(section);
        let err = read_all(&mut reader(file).unwrap()).1.unwrap();
        assert!(matches!(err, CaptureError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn timestamp_units() {
        assert_eq!(units_per_second(6), Some(1_000_000));
        assert_eq!(units_per_second(9), Some(1_000_000_000));
        assert_eq!(units_per_second(0x8a), Some(1024));
        assert_eq!(units_per_second(20), None);
        assert_eq!(units_per_second(0xff), None);
        // 3.5 s in 2^-1 units, 10 s offset
        assert_eq!(pcapng_timestamp(7, 2, 10), Timestamp(13_500_000_000));
        // does not overflow with the largest values
        let _ = pcapng_timestamp(u64::MAX, 1, i64::MAX);
    }

    // ---- third-party corpus ----

    /// Reads every capture in the shared corpus (when present) and compares the packet count
    /// with capinfos and tcpdump, and the clean-or-truncated verdict with tcpdump.
    #[test]
    fn corpus_packet_counts_match_capinfos_and_tcpdump() {
        let root = Path::new("/work/shared/corpus");
        let Ok(entries) = std::fs::read_dir(root.join("captures")) else {
            eprintln!("corpus not present, skipped");
            return;
        };
        let mut names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        let mut disagreements = Vec::new();
        let mut problems_ts = Vec::new();
        let mut times_compared = 0;
        for name in &names {
            let name = name.to_string_lossy();
            let stem = name.rsplit_once('.').map_or(&*name, |(stem, _)| stem);
            let capinfos =
                std::fs::read_to_string(root.join(format!("expected/{stem}.capinfos.tsv")))
                    .unwrap_or_default();
            let capinfos_packets: Option<u64> = capinfos
                .lines()
                .last()
                .and_then(|line| line.split('\t').nth(3))
                .and_then(|n| n.parse().ok());
            let tcpdump =
                std::fs::read_to_string(root.join(format!("expected/{stem}.tcpdump-count.tsv")))
                    .unwrap_or_default();
            let field = |key: &str| {
                tcpdump
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
                    .map(str::to_string)
            };
            let tcpdump_packets: Option<u64> = field("packets_read").and_then(|n| n.parse().ok());
            let tcpdump_error = field("error").unwrap_or_default();

            let path = root.join("captures").join(&*name);
            let (count, err, earliest, latest) = match CaptureReader::open(&path) {
                Ok(mut r) => {
                    let (seen, err) = read_all(&mut r);
                    let earliest = seen.iter().map(|p| p.ts).min();
                    let latest = seen.iter().map(|p| p.ts).max();
                    (seen.len() as u64, err, earliest, latest)
                }
                Err(err) => (0, Some(err), None, None),
            };
            // capinfos prints the earliest and latest time in UTC with the file's precision.
            let capinfos_times: Vec<&str> = capinfos
                .lines()
                .last()
                .map(|line| line.split('\t').skip(4).collect())
                .unwrap_or_default();
            if let ([first, last], Some(earliest), Some(latest)) =
                (capinfos_times.as_slice(), earliest, latest)
            {
                let digits = first.rsplit_once('.').map_or(0, |(_, frac)| frac.len());
                // 10 digits: capinfos shows a nanosecond field above 10^9 as is; skip those.
                if digits == 6 || digits == 9 {
                    times_compared += 1;
                    let show = |ts: i64| {
                        let secs = ts.div_euclid(1_000_000_000);
                        let nanos = ts.rem_euclid(1_000_000_000);
                        let date = chrono::DateTime::from_timestamp(secs, 0).unwrap();
                        let frac = if digits == 6 {
                            format!("{:06}", nanos / 1_000)
                        } else {
                            format!("{nanos:09}")
                        };
                        format!("{}.{frac}", date.format("%Y-%m-%d %H:%M:%S"))
                    };
                    if (show(earliest).as_str(), show(latest).as_str()) != (*first, *last) {
                        problems_ts.push(format!(
                            "{name}: times {} .. {} but capinfos {first} .. {last}",
                            show(earliest),
                            show(latest)
                        ));
                    }
                }
            }
            if let Some(err) = &err {
                eprintln!("  {name}: stopped with: {err}");
            }
            let ours_truncated = matches!(err, Some(CaptureError::Truncated { .. }));
            let tcpdump_truncated = tcpdump_error.contains("truncated");
            let mut problems = Vec::new();
            if capinfos_packets != Some(count) {
                problems.push(format!("capinfos says {capinfos_packets:?}"));
            }
            // tcpdump's count is of printed lines, and it prints some packets (tunnels, hex
            // dumps) on several lines, so it can only be an upper bound.
            if tcpdump_packets.is_none_or(|printed| printed < count) {
                problems.push(format!("tcpdump printed {tcpdump_packets:?}"));
            }
            if err.is_some() && !ours_truncated || ours_truncated != tcpdump_truncated {
                problems.push(format!("tcpdump error {tcpdump_error:?}"));
            }
            if !problems.is_empty() {
                let ours = err.map_or("clean".to_string(), |e| e.to_string());
                disagreements.push(format!(
                    "{name}: we read {count} ({ours}); {}",
                    problems.join("; ")
                ));
            }
        }
        eprintln!(
            "corpus: {} files, {} disagree on counts; {times_compared} time ranges compared, {} differ",
            names.len(),
            disagreements.len(),
            problems_ts.len()
        );
        for line in &disagreements {
            eprintln!("  {line}");
        }
        for line in &problems_ts {
            eprintln!("  {line}");
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
        assert!(problems_ts.is_empty(), "{problems_ts:#?}");
    }

    /// A pcap file of about 40 read-ahead blocks whose records cut the block boundaries
    /// everywhere, headers included: frames of every length below 97 bytes, and every 50th a
    /// frame longer than a block's headroom, some longer than a whole block (so a record also
    /// spans boundaries with more than the headroom before it).
    fn big_pcap() -> Vec<u8> {
        let mut file = pcap_header(false, true, 2 << 20, 1);
        let mut i: u32 = 0;
        while file.len() < 40 * read_ahead::BLOCK_BYTES + 12_345 {
            let len = if i % 50 == 49 {
                read_ahead::HEADROOM + 1000 + (i as usize % 7) * read_ahead::BLOCK_BYTES / 3
            } else {
                (i as usize * 37) % 97
            };
            let data: Vec<u8> = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
            file.extend(pcap_record(false, 1_000 + i, i, &data, len as u32 + 4));
            i += 1;
        }
        file
    }

    fn temp_capture(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "capture-read-ahead-{name}-{}.pcap",
            std::process::id()
        ));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn read_ahead_gives_the_same_packets_as_plain_reads() {
        let file = big_pcap();
        assert!(file.len() as u64 > read_ahead::MIN_FILE_BYTES);
        let path = temp_capture("same", &file);
        let (plain, plain_err) = read_all(&mut CaptureReader::open(&path).unwrap());
        let mut ahead = CaptureReader::open_read_ahead(&path).unwrap();
        assert!(matches!(ahead.source, Source::Ahead(_)));
        assert_eq!(ahead.total_bytes(), Some(file.len() as u64));
        let (seen, err) = read_all(&mut ahead);
        assert!(plain_err.is_none() && err.is_none(), "{err:?}");
        assert!(plain.len() > 1_000, "{} packets", plain.len());
        assert!(plain.iter().any(|p| p.data.len() > read_ahead::BLOCK_BYTES));
        assert_eq!(seen.len(), plain.len());
        assert!(seen == plain);
        assert_eq!(ahead.bytes_read(), file.len() as u64);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn files_read_ahead_one_after_another_reuse_the_blocks_whatever_they_held() {
        let file = big_pcap();
        let path = temp_capture("reuse", &file);
        let (plain, _) = read_all(&mut CaptureReader::open(&path).unwrap());
        // Buffers an earlier file left, full of bytes that are not this file's: a reader that
        // used a byte it did not read would show it.
        for _ in 0..2 * read_ahead::BLOCKS {
            read_ahead::keep_spare(vec![0xa5; Block::BUFFER_BYTES]);
        }
        for _ in 0..3 {
            let (seen, err) = read_all(&mut CaptureReader::open_read_ahead(&path).unwrap());
            assert!(err.is_none(), "{err:?}");
            assert!(seen == plain);
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_ahead_ends_cleanly_on_a_block_boundary() {
        // A file of exactly three blocks: the thread's last read finds nothing.
        let mut file = pcap_header(false, true, 2 << 20, 1);
        let size = 3 * read_ahead::BLOCK_BYTES;
        let mut i = 0u32;
        while file.len() + 16 + 3000 < size {
            file.extend(pcap_record(false, i, 0, &[i as u8; 1000], 1000));
            i += 1;
        }
        let last = vec![7u8; size - file.len() - 16];
        file.extend(pcap_record(false, i, 0, &last, last.len() as u32));
        assert_eq!(file.len(), size);
        let path = temp_capture("exact", &file);
        let (seen, err) = read_all(&mut CaptureReader::open_read_ahead(&path).unwrap());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(seen.len() as u32, i + 1);
        assert_eq!(seen.last().unwrap().data, last);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_ahead_reports_a_truncated_end_like_plain_reads() {
        let mut file = big_pcap();
        // Cut the last record in the middle of its data.
        file.truncate(file.len() - 3);
        let path = temp_capture("cut", &file);
        let (plain, plain_err) = read_all(&mut CaptureReader::open(&path).unwrap());
        let (seen, err) = read_all(&mut CaptureReader::open_read_ahead(&path).unwrap());
        assert_eq!(seen.len(), plain.len());
        let (err, plain_err) = (err.unwrap(), plain_err.unwrap());
        assert!(matches!(err, CaptureError::Truncated { .. }), "{err}");
        assert_eq!(err.to_string(), plain_err.to_string());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_ahead_stops_its_thread_when_dropped_early() {
        let path = temp_capture("drop", &big_pcap());
        for packets in [0, 1, 500] {
            let mut r = CaptureReader::open_read_ahead(&path).unwrap();
            for _ in 0..packets {
                assert!(r.next_packet().unwrap().is_some());
            }
            // Dropping joins the reading thread: a thread stuck on a full queue would hang here.
            drop(r);
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_next_file_is_read_ahead_while_the_last_blocks_of_this_one_are_parsed() {
        let first = temp_capture("first", &big_pcap());
        let mut second_bytes = pcap_header(false, false, 65535, 1);
        for i in 0..5_000u32 {
            second_bytes.extend(pcap_record(false, i, 0, &i.to_le_bytes(), 4));
        }
        let second = temp_capture("second", &second_bytes);
        let small = temp_capture("small-next", &big_pcap()[..1000]);
        let missing = std::env::temp_dir().join("sessionscope-no-such-capture.pcap");

        let mut reader = CaptureReader::open_read_ahead(&first).unwrap();
        reader.read_next_ahead(&second);
        let (seen, err) = read_all(&mut reader);
        assert!(err.is_none() && !seen.is_empty());
        let started = reader
            .take_next()
            .expect("the next file's read-ahead started");
        assert_eq!(started.path(), second.as_path());
        let mut next = CaptureReader::open_started(started).unwrap();
        assert_eq!(next.total_bytes(), Some(second_bytes.len() as u64));
        let (plain, _) = read_all(&mut CaptureReader::open(&second).unwrap());
        let (ahead, err) = read_all(&mut next);
        assert!(err.is_none());
        assert_eq!(ahead.len(), 5_000);
        assert!(ahead == plain);

        // A next file too small to read ahead, or missing, is left to be opened as usual.
        for path in [&small, &missing] {
            let mut reader = CaptureReader::open_read_ahead(&first).unwrap();
            reader.read_next_ahead(path);
            let _ = read_all(&mut reader);
            assert!(reader.take_next().is_none(), "{}", path.display());
        }
        for path in [first, second, small] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn small_files_and_pipes_are_read_without_a_thread() {
        let mut file = pcap_header(false, false, 65535, 1);
        file.extend(pcap_record(false, 1, 0, b"abc", 3));
        let path = temp_capture("small", &file);
        let r = CaptureReader::open_read_ahead(&path).unwrap();
        assert!(matches!(r.source, Source::Stream(_)));
        std::fs::remove_file(&path).unwrap();
    }
}
