//! Start-order output for rows that arrive in end order, in bounded memory.
//!
//! Sessions finish in the order they end, but sessions.csv lists them in the order they
//! started. [`StartOrderBuffer`] keeps finished rows (already formatted) with their sort key
//! in fixed-size byte chunks (never reallocated and copied as they fill, and reused after a
//! spill); when it holds `max_rows_in_memory` rows it sorts them and spills a sorted
//! run to a temporary file in the output directory. [`StartOrderBuffer::finish`] k-way merges
//! the runs and the rows still in memory into the caller's writer and deletes the temporary
//! files (they are also deleted when the buffer is dropped). Promises: memory bounded by the
//! row cap, output sorted by (start, uid, row bytes) so it does not depend on arrival order or
//! on the cap, and no more than [`MAX_OPEN_RUNS`] run files at once. Runs are merged in tiers,
//! as a log-structured merge does: when that many exist, the runs of the lowest tier that has
//! two or more (with the single runs below it) become one run of the next tier, so a row is
//! rewritten about once per 64-fold growth of the rows on disk, never at every compaction.

use crate::capture::Timestamp;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Rows held in memory before a sorted run is spilled (about 10 MB of sessions.csv rows).
/// Every row but the last run's goes through a run file whatever the cap, so a larger cap
/// only keeps more memory touched: measured on the 1 GiB benchmark capture, 65,536 against
/// 250,000 took max RSS from 175 to 112 MB and CPU time down 5-11% (fifth session), and 32,768
/// against 65,536 max RSS from 135 to 121 MB at the same speed once runs were written 1 MiB at
/// a time (docs/performance.md, "twelfth session").
pub const DEFAULT_MAX_ROWS_IN_MEMORY: usize = 32_768;

/// Run files open at most; reaching it merges the runs of the lowest full tier into one.
pub const MAX_OPEN_RUNS: usize = 64;

/// Longest uid a key keeps (sessionscope uids are 18 characters at most).
const KEY_UID_LEN: usize = 24;

/// Sort key of a row: the session's start, then its uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKey {
    pub start: Timestamp,
    uid: [u8; KEY_UID_LEN],
    uid_len: u8,
}

impl RowKey {
    /// A key for `uid` (truncated to 24 bytes, which no sessionscope uid reaches).
    pub fn new(start: Timestamp, uid: &str) -> Self {
        let bytes = uid.as_bytes();
        let len = bytes.len().min(KEY_UID_LEN);
        let mut key = RowKey {
            start,
            uid: [0; KEY_UID_LEN],
            uid_len: len as u8,
        };
        if let (Some(dst), Some(src)) = (key.uid.get_mut(..len), bytes.get(..len)) {
            dst.copy_from_slice(src);
        }
        key
    }

    pub fn uid(&self) -> &[u8] {
        self.uid.get(..usize::from(self.uid_len)).unwrap_or(&[])
    }
}

impl Ord for RowKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.start
            .cmp(&other.start)
            .then_with(|| self.uid().cmp(other.uid()))
    }
}

impl PartialOrd for RowKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bytes per arena chunk (a longer row gets a chunk of its own).
const CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: RowKey,
    chunk: u32,
    offset: u32,
    len: u32,
}

/// Rows back to back in chunks that are filled in turn and kept for reuse.
#[derive(Debug, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    /// The chunk being filled.
    current: usize,
}

impl Arena {
    /// Stores the row made of `parts` back to back (`len` bytes in all), returning (chunk,
    /// offset).
    fn push(&mut self, parts: &[&[u8]], len: usize) -> (u32, u32) {
        let fits = |c: &Vec<u8>| c.capacity() - c.len() >= len;
        if !self.chunks.get(self.current).is_some_and(fits) {
            if !self.chunks.is_empty() {
                self.current += 1;
            }
            match self.chunks.get_mut(self.current) {
                Some(chunk) if chunk.capacity() >= len => {}
                Some(chunk) => *chunk = Vec::with_capacity(len),
                None => self.chunks.push(Vec::with_capacity(CHUNK_BYTES.max(len))),
            }
        }
        let chunk = self.current;
        let Some(bytes) = self.chunks.get_mut(chunk) else {
            return (u32::MAX, 0);
        };
        let offset = bytes.len();
        for part in parts {
            bytes.extend_from_slice(part);
        }
        (chunk as u32, offset as u32)
    }

    fn get(&self, e: &Entry) -> &[u8] {
        let start = e.offset as usize;
        self.chunks
            .get(e.chunk as usize)
            .and_then(|c| c.get(start..start + e.len as usize))
            .unwrap_or(&[])
    }

    /// Forgets every row, keeping the chunks' memory.
    fn clear(&mut self) {
        for chunk in &mut self.chunks {
            chunk.clear();
        }
        self.current = 0;
    }
}

/// Buffers rows and writes them out sorted by [`RowKey`]; see the module documentation.
pub struct StartOrderBuffer {
    dir: PathBuf,
    max_rows: usize,
    arena: Arena,
    entries: Vec<Entry>,
    runs: Vec<Run>,
    next_run_id: u64,
    runs_spilled: u64,
    rows_total: u64,
    /// Rows rewritten by compactions (for the test that bounds it).
    rows_compacted: u64,
}

/// A sorted run on disk.
struct Run {
    path: PathBuf,
    rows: u64,
    /// 0 for a spilled run; one more than the highest tier merged into it.
    tier: u32,
}

/// What a finished buffer did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderStats {
    pub rows: u64,
    /// Sorted runs written to disk over the whole capture (0 when everything fit in memory).
    pub runs_spilled: u64,
}

impl StartOrderBuffer {
    /// Temporary run files go in `dir` (the output directory, so they land on the same disk).
    pub fn new(dir: &Path, max_rows_in_memory: usize) -> Self {
        StartOrderBuffer {
            dir: dir.to_path_buf(),
            max_rows: max_rows_in_memory.max(1),
            arena: Arena::default(),
            entries: Vec::new(),
            runs: Vec::new(),
            next_run_id: 0,
            runs_spilled: 0,
            rows_total: 0,
            rows_compacted: 0,
        }
    }

    /// Adds one complete row (including its line terminator), made of `parts` back to back
    /// and copied once.
    pub fn push(&mut self, key: RowKey, parts: &[&[u8]]) -> io::Result<()> {
        if self.entries.len() >= self.max_rows {
            self.spill()?;
        }
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let len = u32::try_from(total)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "row longer than 4 GiB"))?;
        let (chunk, offset) = self.arena.push(parts, total);
        self.entries.push(Entry {
            key,
            chunk,
            offset,
            len,
        });
        self.rows_total += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows_total
    }

    /// Runs currently on disk.
    pub fn runs_on_disk(&self) -> usize {
        self.runs.len()
    }

    /// Writes every row, in key order, to `out` and removes the temporary files.
    pub fn finish(self, out: &mut dyn Write) -> io::Result<OrderStats> {
        self.finish_each(&mut |row| out.write_all(row))
    }

    /// Hands every row, in key order, to `each` (one call per row, so one ordered stream can
    /// feed several output formats) and removes the temporary files.
    pub fn finish_each(
        mut self,
        each: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<OrderStats> {
        self.sort_in_memory();
        let mut sources: Vec<Box<dyn RowSource + '_>> = Vec::with_capacity(self.runs.len() + 1);
        for run in &self.runs {
            sources.push(Box::new(RunReader::open(&run.path)?));
        }
        sources.push(Box::new(MemorySource {
            arena: &self.arena,
            entries: &self.entries,
            next: 0,
        }));
        merge(sources, &mut |_, row| each(row))?;
        self.remove_runs();
        Ok(OrderStats {
            rows: self.rows_total,
            runs_spilled: self.runs_spilled,
        })
    }

    /// Sorts the rows held in memory now (finishing sorts them anyway; sorted rows make that
    /// a single pass), so a caller with a spare core can do it beside other end-of-run work.
    pub fn sort_now(&mut self) {
        self.sort_in_memory();
    }

    fn sort_in_memory(&mut self) {
        let arena = &self.arena;
        let row = |e: &Entry| arena.get(e);
        self.entries
            .sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| row(a).cmp(row(b))));
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.runs.len() >= MAX_OPEN_RUNS {
            self.compact_runs()?;
        }
        self.sort_in_memory();
        let path = self.new_run_path();
        let mut writer = RunWriter::create(&path)?;
        self.runs.push(Run {
            path,
            rows: self.entries.len() as u64,
            tier: 0,
        });
        for e in &self.entries {
            writer.write(&e.key, self.arena.get(e))?;
        }
        writer.finish()?;
        self.runs_spilled += 1;
        self.entries.clear();
        self.arena.clear();
        Ok(())
    }

    /// Merges the runs of the lowest tier that has two or more, with every run below that
    /// tier, into one run of the next tier: the count of open files stays bounded, and rows
    /// already merged into a high tier are not rewritten until that tier fills in turn.
    fn compact_runs(&mut self) -> io::Result<()> {
        let mut tiers: Vec<u32> = self.runs.iter().map(|run| run.tier).collect();
        tiers.sort_unstable();
        let Some(tier) = tiers
            .windows(2)
            .find(|pair| matches!(pair, [a, b] if a == b))
            .and_then(|pair| pair.first().copied())
        else {
            // Every run in a tier of its own: fewer runs than tiers can make, never reached.
            return Ok(());
        };
        let (old, kept): (Vec<Run>, Vec<Run>) = std::mem::take(&mut self.runs)
            .into_iter()
            .partition(|run| run.tier <= tier);
        self.runs = kept;
        let rows = old.iter().map(|run| run.rows).sum();
        let path = self.new_run_path();
        // Listed before it is written, so a failed merge still leaves no file behind.
        self.runs.push(Run {
            path: path.clone(),
            rows,
            tier: tier.saturating_add(1),
        });
        let merged = (|| {
            let mut writer = RunWriter::create(&path)?;
            let mut sources: Vec<Box<dyn RowSource>> = Vec::with_capacity(old.len());
            for run in &old {
                sources.push(Box::new(RunReader::open(&run.path)?));
            }
            merge(sources, &mut |key, row| writer.write(key, row))?;
            writer.finish()
        })();
        for run in old {
            let _ = fs::remove_file(run.path);
        }
        merged?;
        self.rows_compacted += rows;
        Ok(())
    }

    fn new_run_path(&mut self) -> PathBuf {
        self.next_run_id += 1;
        self.dir.join(format!(
            ".sessions.csv.run-{}-{}.tmp",
            std::process::id(),
            self.next_run_id
        ))
    }

    fn remove_runs(&mut self) {
        for run in self.runs.drain(..) {
            let _ = fs::remove_file(run.path);
        }
    }
}

impl Drop for StartOrderBuffer {
    fn drop(&mut self) {
        self.remove_runs();
    }
}

/// Something that yields rows in key order, one at a time, into a reused buffer.
trait RowSource {
    /// Fills `row` with the next row and returns its key, or `None` at the end.
    fn next_into(&mut self, row: &mut Vec<u8>) -> io::Result<Option<RowKey>>;
}

struct MemorySource<'a> {
    arena: &'a Arena,
    entries: &'a [Entry],
    next: usize,
}

impl RowSource for MemorySource<'_> {
    fn next_into(&mut self, row: &mut Vec<u8>) -> io::Result<Option<RowKey>> {
        let Some(e) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        row.clear();
        row.extend_from_slice(self.arena.get(e));
        Ok(Some(e.key))
    }
}

/// Bytes per write to a run file. The kernel's cost per byte written falls with the write's
/// size (larger page-cache folios): with 64 KiB writes the spills cost one thread ~0.1 s more on
/// the 1 GiB benchmark capture (docs/performance.md, "twelfth session").
const RUN_WRITE_BYTES: usize = 1 << 20;

/// Bytes per read from a run file; up to [`MAX_OPEN_RUNS`] are read at once when merging.
const RUN_READ_BYTES: usize = 256 << 10;

/// Run file record: start (i64 LE), uid length (u8), uid, row length (u32 LE), row.
struct RunWriter {
    out: BufWriter<File>,
}

impl RunWriter {
    fn create(path: &Path) -> io::Result<Self> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(RUN_WRITE_BYTES, File::create(path)?),
        })
    }

    fn write(&mut self, key: &RowKey, row: &[u8]) -> io::Result<()> {
        let len = u32::try_from(row.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "row longer than 4 GiB"))?;
        self.out.write_all(&key.start.0.to_le_bytes())?;
        self.out.write_all(&[key.uid_len])?;
        self.out.write_all(key.uid())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(row)
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct RunReader {
    input: BufReader<File>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(RunReader {
            input: BufReader::with_capacity(RUN_READ_BYTES, File::open(path)?),
        })
    }
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "temporary sort run is corrupt")
}

impl RowSource for RunReader {
    fn next_into(&mut self, row: &mut Vec<u8>) -> io::Result<Option<RowKey>> {
        let mut start = [0u8; 8];
        match self.input.read_exact(&mut start) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut uid_len = [0u8; 1];
        self.input.read_exact(&mut uid_len)?;
        let len = usize::from(uid_len[0]);
        let mut uid = [0u8; KEY_UID_LEN];
        self.input
            .read_exact(uid.get_mut(..len).ok_or_else(corrupt)?)?;
        let mut row_len = [0u8; 4];
        self.input.read_exact(&mut row_len)?;
        let row_len = u32::from_le_bytes(row_len) as usize;
        row.clear();
        let got = (&mut self.input).take(row_len as u64).read_to_end(row)?;
        if got != row_len {
            return Err(corrupt());
        }
        Ok(Some(RowKey {
            start: Timestamp(i64::from_le_bytes(start)),
            uid,
            uid_len: uid_len[0],
        }))
    }
}

/// The head row of one source, ordered for a min-heap (ties: row bytes, then source).
struct Head {
    key: RowKey,
    row: Vec<u8>,
    source: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        other
            .key
            .cmp(&self.key)
            .then_with(|| other.row.cmp(&self.row))
            .then_with(|| other.source.cmp(&self.source))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

fn merge<'a>(
    mut sources: Vec<Box<dyn RowSource + 'a>>,
    emit: &mut dyn FnMut(&RowKey, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (source, src) in sources.iter_mut().enumerate() {
        let mut row = Vec::new();
        if let Some(key) = src.next_into(&mut row)? {
            heap.push(Head { key, row, source });
        }
    }
    while let Some(mut head) = heap.pop() {
        emit(&head.key, &head.row)?;
        let src = sources.get_mut(head.source).ok_or_else(corrupt)?;
        if let Some(key) = src.next_into(&mut head.row)? {
            head.key = key;
            heap.push(head);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sessionscope-order-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Deterministic shuffle (xorshift) so the test needs no extra crate.
    fn shuffled(n: u64, seed: u64) -> Vec<u64> {
        let mut v: Vec<u64> = (0..n).collect();
        let mut s = seed;
        for i in (1..v.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.swap(i, (s % (i as u64 + 1)) as usize);
        }
        v
    }

    fn row_for(i: u64) -> (RowKey, String) {
        // Several rows share a start time so the uid decides; uids sort as strings.
        let start = Timestamp((i / 3) as i64 * 1_000);
        let uid = format!("C{:03}", i % 3);
        (
            RowKey::new(start, &uid),
            format!("{},{uid},row{i}\n", start.0),
        )
    }

    fn run(n: u64, cap: usize, name: &str) -> (String, OrderStats, PathBuf) {
        let dir = temp_dir(name);
        let mut buf = StartOrderBuffer::new(&dir, cap);
        for i in shuffled(n, 0x9e37_79b9_7f4a_7c15) {
            let (key, row) = row_for(i);
            buf.push(key, &[row.as_bytes()]).unwrap();
        }
        let mut out = Vec::new();
        let stats = buf.finish(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), stats, dir)
    }

    fn expected(n: u64) -> String {
        (0..n).map(|i| row_for(i).1).collect()
    }

    #[test]
    fn in_memory_sorts_by_start_then_uid() {
        let (out, stats, dir) = run(100, 1000, "mem");
        assert_eq!(out, expected(100));
        assert_eq!(
            stats,
            OrderStats {
                rows: 100,
                runs_spilled: 0
            }
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn spill_path_merges_runs_and_cleans_up() {
        let (out, stats, dir) = run(1000, 7, "spill");
        assert_eq!(out, expected(1000));
        assert_eq!(stats.rows, 1000);
        assert_eq!(stats.runs_spilled, 1000 / 7);
        // Every temporary file is gone; the directory is empty again.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn many_runs_are_compacted() {
        // Cap 2 with 1000 rows makes 499 runs: more than MAX_OPEN_RUNS.
        let (out, stats, dir) = run(1000, 2, "compact");
        assert_eq!(out, expected(1000));
        assert_eq!(stats.runs_spilled, 499);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compaction_rewrites_a_row_about_once_per_tier() {
        // Cap 1: 20,000 runs of one row. Merging every run at each compaction would rewrite
        // about 3.2 million rows (each compaction all rows so far, every 63 spills); tiers of
        // up to 64 runs rewrite each row once per tier: about twice for 20,000 = 64^2.4 runs.
        let n = 20_000;
        let dir = temp_dir("tiers");
        let mut buf = StartOrderBuffer::new(&dir, 1);
        for i in shuffled(n, 7) {
            let (key, row) = row_for(i);
            buf.push(key, &[row.as_bytes()]).unwrap();
            assert!(buf.runs_on_disk() <= MAX_OPEN_RUNS);
        }
        let compacted = buf.rows_compacted;
        let mut out = Vec::new();
        buf.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected(n));
        assert!(compacted <= 3 * n, "{compacted} rows rewritten for {n}");
        assert!(
            compacted >= n / 2,
            "{compacted}: the runs were merged in tiers"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn equal_keys_order_by_row_whatever_the_cap() {
        let dir = temp_dir("ties");
        let rows = ["b\n", "a\n", "c\n", "a\n"];
        for cap in [1, 2, 10] {
            let mut buf = StartOrderBuffer::new(&dir, cap);
            for r in rows {
                buf.push(RowKey::new(Timestamp(5), ""), &[r.as_bytes()])
                    .unwrap();
            }
            let mut out = Vec::new();
            buf.finish(&mut out).unwrap();
            assert_eq!(out, b"a\na\nb\nc\n");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn drop_without_finish_removes_runs() {
        let dir = temp_dir("drop");
        let mut buf = StartOrderBuffer::new(&dir, 1);
        for i in 0..5 {
            let (key, row) = row_for(i);
            buf.push(key, &[row.as_bytes()]).unwrap();
        }
        assert!(buf.runs_on_disk() > 0);
        drop(buf);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }
}
