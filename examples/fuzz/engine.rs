//! The fuzzing engine: a coverage-guided mutation loop that runs on the stable toolchain.
//!
//! Owns the random source, the mutations (plain byte mutations plus structure-aware ones that
//! know pcap records, pcapng blocks and `[link type][frame]` inputs), the coverage map and the
//! failure checks (panic, hang, memory). Coverage comes from LLVM's SanitizerCoverage inline
//! 8-bit counters, which stable rustc emits with `-C passes=sancov-module -C
//! llvm-args=-sanitizer-coverage-inline-8bit-counters` (see `scripts/fuzz.sh`); the module
//! constructor hands us the counter array through `__sanitizer_cov_8bit_counters_init`. Built
//! without those flags the engine still runs, as a blind mutation fuzzer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Coverage

static COUNTERS_START: AtomicUsize = AtomicUsize::new(0);
static COUNTERS_END: AtomicUsize = AtomicUsize::new(0);

/// Called by the SanitizerCoverage module constructors with the bounds of the counter section.
///
/// # Safety
/// Only LLVM's instrumentation calls this, with a valid `[start, stop)` range that lives as
/// long as the program.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    let (start, stop) = (start as usize, stop as usize);
    if stop <= start {
        return;
    }
    // Every module passes the same linker-section bounds; keep the widest.
    let old_start = COUNTERS_START.load(Ordering::Relaxed);
    if old_start == 0 || start < old_start {
        COUNTERS_START.store(start, Ordering::Relaxed);
    }
    if stop > COUNTERS_END.load(Ordering::Relaxed) {
        COUNTERS_END.store(stop, Ordering::Relaxed);
    }
}

fn counters() -> &'static [u8] {
    let start = COUNTERS_START.load(Ordering::Relaxed);
    let end = COUNTERS_END.load(Ordering::Relaxed);
    if start == 0 || end <= start {
        return &[];
    }
    // SAFETY: the range was given by the instrumentation and lives for the whole program.
    // Instrumented code only increments it; reading a stale count is harmless.
    unsafe { std::slice::from_raw_parts(start as *const u8, end - start) }
}

/// Number of coverage counters compiled in (0 without instrumentation).
pub fn counter_count() -> usize {
    counters().len()
}

/// AFL's hit-count buckets: a counter's value becomes one bit.
fn bucket(count: u8) -> u8 {
    match count {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        _ => 128,
    }
}

/// The buckets seen so far for one target.
pub struct CoverageMap {
    seen: Vec<u8>,
    pub edges: usize,
}

impl CoverageMap {
    pub fn new() -> Self {
        CoverageMap {
            seen: vec![0; counter_count()],
            edges: 0,
        }
    }

    pub fn reset_counters() {
        let counts = counters();
        // SAFETY: the same live range as above; zeroing it is what the instrumentation expects
        // between runs.
        unsafe { std::ptr::write_bytes(counts.as_ptr() as *mut u8, 0, counts.len()) };
    }

    /// Folds the counters of the last run in; true when a new bucket appeared.
    pub fn absorb(&mut self) -> bool {
        let counts = counters();
        let mut new = false;
        let (words, tail) = counts.as_chunks::<8>();
        let mut visit = |index: usize, count: u8| {
            let bit = bucket(count);
            if let Some(seen) = self.seen.get_mut(index)
                && *seen & bit == 0
            {
                if *seen == 0 {
                    self.edges += 1;
                }
                *seen |= bit;
                new = true;
            }
        };
        for (word_index, word) in words.iter().enumerate() {
            // Most words are all zero: one compare skips eight counters.
            if u64::from_ne_bytes(*word) == 0 {
                continue;
            }
            for (i, &count) in word.iter().enumerate() {
                if count != 0 {
                    visit(word_index * 8 + i, count);
                }
            }
        }
        for (i, &count) in tail.iter().enumerate() {
            if count != 0 {
                visit(words.len() * 8 + i, count);
            }
        }
        new
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator, so an input that makes the code hold too much is a failure.

pub struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        new
    }
}

/// Starts measuring the peak of live heap bytes from now.
pub fn reset_peak() -> usize {
    let live = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(live, Ordering::Relaxed);
    live
}

pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Random numbers (splitmix64: small, fast, reproducible from the seed)

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

pub use crate::targets::Kind as InputKind;

const INTERESTING_8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x60, 0x10];
const INTERESTING_16: [u16; 12] = [
    0, 1, 0x7fff, 0x8000, 0xffff, 0x0800, 0x86dd, 0x8100, 0x88a8, 0x8847, 0x0806, 0x0014,
];
const INTERESTING_32: [u32; 10] = [
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0xa1b2_c3d4,
    0xd4c3_b2a1,
    0x0a0d_0d0a,
    0x1a2b_3c4d,
    0x0100_0000,
];

/// Link types worth trying: every one decode knows, and a few it does not.
pub const LINK_TYPES: [u16; 18] = [
    0, 1, 9, 12, 14, 50, 51, 101, 105, 108, 113, 127, 228, 229, 276, 147, 192, 65535,
];

/// Most bytes an input may grow to, by kind.
pub fn max_len(kind: InputKind) -> usize {
    match kind {
        InputKind::Capture => 96 * 1024,
        InputKind::Frame => 4096,
        InputKind::Bytes => 2048,
    }
}

/// One plain byte-level mutation.
fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng, others: &[Vec<u8>], max: usize) {
    if data.is_empty() {
        let n = 1 + rng.below(16);
        data.extend((0..n).map(|_| rng.byte()));
        return;
    }
    let len = data.len();
    let pos = rng.below(len);
    match rng.below(13) {
        0 => data[pos] ^= 1 << rng.below(8),
        1 => data[pos] = rng.byte(),
        2 => data[pos] = INTERESTING_8[rng.below(INTERESTING_8.len())],
        3 => {
            let v = INTERESTING_16[rng.below(INTERESTING_16.len())];
            let bytes = if rng.chance(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            put(data, pos, &bytes);
        }
        4 => {
            let v = INTERESTING_32[rng.below(INTERESTING_32.len())];
            let bytes = if rng.chance(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            put(data, pos, &bytes);
        }
        5 => {
            let delta = 1 + rng.below(35) as u8;
            data[pos] = if rng.chance(2) {
                data[pos].wrapping_add(delta)
            } else {
                data[pos].wrapping_sub(delta)
            };
        }
        6 => {
            // Add to a big-endian u16 (lengths, ports, ethertypes).
            if let Some(pair) = data.get_mut(pos..pos + 2) {
                let v = u16::from_be_bytes([pair[0], pair[1]]);
                let delta = rng.below(64) as u16;
                let v = if rng.chance(2) {
                    v.wrapping_add(delta)
                } else {
                    v.wrapping_sub(delta)
                };
                pair.copy_from_slice(&v.to_be_bytes());
            }
        }
        7 => {
            let n = 1 + rng.below((len - pos).min(64));
            data.drain(pos..pos + n);
        }
        8 => {
            let n = 1 + rng.below(len.min(64));
            let from = rng.below(len - n + 1);
            let chunk: Vec<u8> = data[from..from + n].to_vec();
            if len + n <= max {
                data.splice(pos..pos, chunk);
            }
        }
        9 => {
            let n = 1 + rng.below(16);
            if len + n <= max {
                let fill = if rng.chance(2) { rng.byte() } else { 0 };
                data.splice(pos..pos, std::iter::repeat_n(fill, n));
            }
        }
        10 => data.truncate(pos.max(1)),
        11 => {
            // Overwrite with bytes from another input at the same place (keeps alignment).
            if let Some(other) = others.get(rng.below(others.len())) {
                let n = 1 + rng.below(64);
                if let Some(src) = other.get(pos..(pos + n).min(other.len())) {
                    let end = (pos + src.len()).min(len);
                    data[pos..end].copy_from_slice(&src[..end - pos]);
                }
            }
        }
        _ => {
            // Splice: our head, another input's tail.
            if let Some(other) = others.get(rng.below(others.len()))
                && !other.is_empty()
            {
                let cut = rng.below(other.len());
                data.truncate(pos);
                let room = max.saturating_sub(data.len());
                data.extend_from_slice(&other[cut..other.len().min(cut + room)]);
            }
        }
    }
}

fn put(data: &mut [u8], pos: usize, bytes: &[u8]) {
    let end = (pos + bytes.len()).min(data.len());
    data[pos..end].copy_from_slice(&bytes[..end - pos]);
}

/// The record or block layout of a capture input: the header length and each record's range.
struct Records {
    header: usize,
    ranges: Vec<(usize, usize)>,
    /// Offset of the length fields inside a record: pcap records carry caplen at 8 and len
    /// at 12; pcapng blocks their total length at 4 (and repeated at the end).
    pcap: bool,
    big_endian: bool,
}

fn split_records(data: &[u8]) -> Option<Records> {
    let magic = data.get(0..4)?;
    let read_u32 = |bytes: &[u8], big: bool| -> Option<u32> {
        let b: [u8; 4] = bytes.get(0..4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let pcap_big = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(false),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(true),
        _ => None,
    };
    let mut ranges = Vec::new();
    if let Some(big) = pcap_big {
        let mut at = 24;
        while at + 16 <= data.len() && ranges.len() < 4096 {
            let caplen = read_u32(data.get(at + 8..)?, big)? as usize;
            let end = at.checked_add(16)?.checked_add(caplen)?;
            if end > data.len() {
                break;
            }
            ranges.push((at, end));
            at = end;
        }
        return Some(Records {
            header: 24,
            ranges,
            pcap: true,
            big_endian: big,
        });
    }
    if magic != [0x0a, 0x0d, 0x0d, 0x0a] {
        return None;
    }
    let big = data.get(8..12)? == [0x1a, 0x2b, 0x3c, 0x4d];
    let mut at = 0;
    while at + 12 <= data.len() && ranges.len() < 4096 {
        let len = read_u32(data.get(at + 4..)?, big)? as usize;
        if len < 12 || !len.is_multiple_of(4) {
            break;
        }
        let end = at.checked_add(len)?;
        if end > data.len() {
            break;
        }
        ranges.push((at, end));
        at = end;
    }
    Some(Records {
        header: 0,
        ranges,
        pcap: false,
        big_endian: big,
    })
}

/// One structure-aware mutation of a capture; false when the input has no structure to use.
fn mutate_capture(data: &mut Vec<u8>, rng: &mut Rng, others: &[Vec<u8>], max: usize) -> bool {
    let Some(records) = split_records(data) else {
        return false;
    };
    if records.ranges.is_empty() {
        return false;
    }
    let pick = records.ranges[rng.below(records.ranges.len())];
    let put_u32 = |data: &mut Vec<u8>, at: usize, v: u32| {
        let bytes = if records.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        put(data, at, &bytes);
    };
    match rng.below(9) {
        0 => {
            // Drop a record.
            data.drain(pick.0..pick.1);
        }
        1 => {
            // Duplicate a record (retransmission, repeated block).
            if data.len() + (pick.1 - pick.0) <= max {
                let copy = data[pick.0..pick.1].to_vec();
                data.splice(pick.1..pick.1, copy);
            }
        }
        2 => {
            // Move a record elsewhere (reordering).
            let copy: Vec<u8> = data.drain(pick.0..pick.1).collect();
            let remaining = split_records(data).map(|r| r.ranges).unwrap_or_default();
            let at = remaining
                .get(rng.below(remaining.len() + 1))
                .map_or(data.len(), |r| r.0);
            data.splice(at..at, copy);
        }
        3 => {
            // Bring in a record from another capture of the same layout.
            if let Some(other) = others.get(rng.below(others.len()))
                && let Some(theirs) = split_records(other)
                && theirs.pcap == records.pcap
                && theirs.big_endian == records.big_endian
                && !theirs.ranges.is_empty()
            {
                let (from, to) = theirs.ranges[rng.below(theirs.ranges.len())];
                if data.len() + (to - from) <= max && from >= theirs.header {
                    data.splice(pick.1..pick.1, other[from..to].iter().copied());
                }
            }
        }
        4 => {
            // A length field set to something interesting.
            let field = if records.pcap {
                pick.0 + if rng.chance(2) { 8 } else { 12 }
            } else if rng.chance(2) {
                pick.0 + 4
            } else {
                pick.1 - 4
            };
            let len = (pick.1 - pick.0) as u32;
            let v = match rng.below(6) {
                0 => 0,
                1 => len.wrapping_add(1 + rng.below(8) as u32),
                2 => len.wrapping_sub(1 + rng.below(8) as u32),
                3 => 0xffff_ffff,
                4 => 16 * 1024 * 1024 + 1,
                _ => rng.next_u64() as u32,
            };
            put_u32(data, field, v);
        }
        5 if records.pcap => {
            // Timestamps: backwards, equal, far future, bad sub-second.
            let v = match rng.below(4) {
                0 => 0,
                1 => 0xffff_ffff,
                2 => 1_000_000_000 + rng.below(10) as u32,
                _ => rng.next_u64() as u32,
            };
            put_u32(data, pick.0 + 4 * rng.below(2), v);
        }
        6 if records.pcap && pick.1 > pick.0 + 16 => {
            // Cut a packet short (as a snaplen would) while keeping the file consistent.
            let caplen = (pick.1 - pick.0 - 16) as u32;
            let new_len = rng.below(caplen as usize) as u32;
            data.drain(pick.0 + 16 + new_len as usize..pick.1);
            put_u32(data, pick.0 + 8, new_len);
        }
        7 if records.pcap => {
            // Another link type in the file header.
            let link = LINK_TYPES[rng.below(LINK_TYPES.len())];
            put_u32(data, 20, u32::from(link));
        }
        _ => {
            // Mutate inside one record's bytes only, several times (headers live there).
            let mut inner = data[pick.0..pick.1].to_vec();
            for _ in 0..1 + rng.below(4) {
                mutate_bytes(&mut inner, rng, &[], max);
            }
            if records.pcap && inner.len() >= 16 {
                // Keep the record's caplen in step with its new size, usually.
                if !rng.chance(4) {
                    let caplen = (inner.len() - 16) as u32;
                    let bytes = if records.big_endian {
                        caplen.to_be_bytes()
                    } else {
                        caplen.to_le_bytes()
                    };
                    inner[8..12].copy_from_slice(&bytes);
                }
            }
            if data.len() - (pick.1 - pick.0) + inner.len() <= max {
                data.splice(pick.0..pick.1, inner);
            }
        }
    }
    true
}

/// Applies a short stack of mutations suited to the input's kind.
pub fn mutate(data: &mut Vec<u8>, kind: InputKind, rng: &mut Rng, others: &[Vec<u8>]) {
    let max = max_len(kind);
    let rounds = 1 << rng.below(4);
    for _ in 0..rounds {
        match kind {
            InputKind::Capture if rng.below(3) != 0 => {
                if !mutate_capture(data, rng, others, max) {
                    mutate_bytes(data, rng, others, max);
                }
            }
            InputKind::Frame if rng.chance(8) && data.len() >= 2 => {
                let link = LINK_TYPES[rng.below(LINK_TYPES.len())];
                data[0..2].copy_from_slice(&link.to_be_bytes());
            }
            _ => mutate_bytes(data, rng, others, max),
        }
    }
    data.truncate(max);
}

// ---------------------------------------------------------------------------------------------
// Running inputs: panics are caught, hangs are caught by a watchdog thread.

/// The input being run, for the watchdog to save when it hangs.
static CURRENT_INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static RUN_STARTED_MS: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);
static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());

fn epoch() -> &'static Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// Installs a quiet panic hook (the message is kept for the report) and a watchdog that
/// saves the input and exits with status 2 when one input runs longer than `limit`.
pub fn install_guards(limit: Duration, hang_path: std::path::PathBuf, target_name: fn() -> String) {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut message) = PANIC_MESSAGE.lock() {
            *message = info.to_string();
        }
    }));
    let _ = epoch();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if !RUNNING.load(Ordering::Acquire) {
                continue;
            }
            let started = RUN_STARTED_MS.load(Ordering::Acquire);
            if now_ms().saturating_sub(started) > limit.as_millis() as u64 {
                let input = CURRENT_INPUT.lock().map(|i| i.clone()).unwrap_or_default();
                let path = hang_path.join(format!("{}-hang-{:016x}", target_name(), hash(&input)));
                let _ = std::fs::create_dir_all(&hang_path);
                let _ = std::fs::write(&path, &input);
                eprintln!(
                    "fuzz: HANG: target {} ran one input for more than {} ms; input saved to {}",
                    target_name(),
                    limit.as_millis(),
                    path.display()
                );
                std::process::exit(2);
            }
        }
    });
}

/// Runs one input; `Err` carries the panic message.
pub fn run_guarded(run: fn(&[u8]), input: &[u8]) -> Result<(), String> {
    if let Ok(mut current) = CURRENT_INPUT.lock() {
        current.clear();
        current.extend_from_slice(input);
    }
    RUN_STARTED_MS.store(now_ms(), Ordering::Release);
    RUNNING.store(true, Ordering::Release);
    let result = std::panic::catch_unwind(|| run(input));
    RUNNING.store(false, Ordering::Release);
    result.map_err(|_| {
        PANIC_MESSAGE
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| "panic".to_string())
    })
}

/// FNV-1a, to name saved inputs.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
