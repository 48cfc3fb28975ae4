//! `--write-streams DIR`: each reassembled TCP stream to a file, one per direction, as tcpflow
//! names them, so a user finds a session's files from its sessions.csv row.
//!
//! A file is named `<src ip>.<src port>-<dst ip>.<dst port>-<uid>`: tcpflow's default name
//! (IPv4 addresses with each octet zero-padded to 3 digits, IPv6 in its short text form, ports
//! zero-padded to 5 digits) followed by the session's uid, which keeps sessions that reuse a
//! 4-tuple apart. For a sessions.csv row, `DIR/<orig_h>.<orig_p>-<resp_h>.<resp_p>-<uid>` holds
//! what the originator sent and `DIR/<resp_h>.<resp_p>-<orig_h>.<orig_p>-<uid>` what the
//! responder sent (or simply `ls DIR/*-<uid>`). Only directions that carried bytes get a file.
//!
//! Bytes are appended in stream order; a hole (bytes never seen) is not filled, so what follows
//! it comes next in the file. Promises: at most [`MAX_OPEN_FILES`] files open at once (least
//! recently written closed first, reopened in append mode), nothing done unless the option is
//! given, and the first I/O error is kept and reported (writing stops there).
//!
//! With threads, the session workers write through one [`SharedStreamWriter`], split into
//! [`STRIPES`] writers by the session's uid, each behind its own lock: a session's files are
//! always in one stripe, and two workers seldom wait for the same lock (one lock for all made
//! two threads slower than one with this option).

use crate::session::reassembly::{StreamId, StreamSink, StreamStats};
use crate::session::{Endpoint, Uid};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Stream files kept open at once (by all stripes together).
pub const MAX_OPEN_FILES: usize = 128;
/// Independent writers a [`SharedStreamWriter`] is split into.
pub const STRIPES: usize = 8;
/// Buffer per open file.
const FILE_BUFFER_BYTES: usize = 16 * 1024;

/// What the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamWriterStats {
    /// Stream files created.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Streams that ended incomplete (holes or bytes dropped for memory).
    pub incomplete_streams: u64,
}

struct OpenStream {
    key: (Uid, bool),
    file: BufWriter<File>,
    last_use: u64,
}

/// Writes reassembled streams under one directory.
pub struct StreamWriter {
    dir: PathBuf,
    open: Vec<OpenStream>,
    /// Files this writer keeps open at most.
    max_open: usize,
    /// Streams with a file that are still live (a reopened file is appended to, not replaced).
    started: HashSet<(Uid, bool)>,
    clock: u64,
    stats: StreamWriterStats,
    error: Option<io::Error>,
}

/// tcpflow's text for one endpoint: `192.000.002.001.00080`, `2001:db8::1.00443`.
fn endpoint_name(e: &Endpoint) -> String {
    match e.addr {
        IpAddr::V4(a) => {
            let [o1, o2, o3, o4] = a.octets();
            format!("{o1:03}.{o2:03}.{o3:03}.{o4:03}.{:05}", e.port)
        }
        IpAddr::V6(a) => format!("{a}.{:05}", e.port),
    }
}

/// The file name of one direction of a session (see the module documentation).
pub fn stream_file_name(uid: &Uid, src: &Endpoint, dst: &Endpoint) -> String {
    format!(
        "{}-{}-{}",
        endpoint_name(src),
        endpoint_name(dst),
        uid.as_str()
    )
}

impl StreamWriter {
    /// Creates `dir` if needed.
    pub fn create(dir: &Path) -> io::Result<StreamWriter> {
        Self::with_max_open(dir, MAX_OPEN_FILES)
    }

    fn with_max_open(dir: &Path, max_open: usize) -> io::Result<StreamWriter> {
        std::fs::create_dir_all(dir)?;
        Ok(StreamWriter {
            dir: dir.to_path_buf(),
            open: Vec::new(),
            max_open: max_open.max(1),
            started: HashSet::new(),
            clock: 0,
            stats: StreamWriterStats::default(),
            error: None,
        })
    }

    pub fn stats(&self) -> StreamWriterStats {
        self.stats
    }

    /// Flushes and closes every file; returns the first error met while writing, if any.
    pub fn close(&mut self) -> io::Result<StreamWriterStats> {
        for mut stream in self.open.drain(..) {
            if let Err(e) = stream.file.flush() {
                self.error.get_or_insert(e);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.stats),
        }
    }

    fn file_for(&mut self, stream: &StreamId) -> io::Result<&mut BufWriter<File>> {
        self.clock += 1;
        let key = (stream.uid, stream.from_orig);
        if let Some(i) = self.open.iter().position(|s| s.key == key) {
            let entry = &mut self.open[i];
            entry.last_use = self.clock;
            return Ok(&mut entry.file);
        }
        if self.open.len() >= self.max_open {
            self.close_least_recent()?;
        }
        let path = self
            .dir
            .join(stream_file_name(&stream.uid, &stream.src, &stream.dst));
        let first = self.started.insert(key);
        let file = if first {
            self.stats.files += 1;
            File::create(&path)?
        } else {
            OpenOptions::new().append(true).open(&path)?
        };
        self.open.push(OpenStream {
            key,
            file: BufWriter::with_capacity(FILE_BUFFER_BYTES, file),
            last_use: self.clock,
        });
        let last = self.open.len() - 1;
        Ok(&mut self.open[last].file)
    }

    fn close_least_recent(&mut self) -> io::Result<()> {
        let Some((i, _)) = self.open.iter().enumerate().min_by_key(|(_, s)| s.last_use) else {
            return Ok(());
        };
        let mut stream = self.open.swap_remove(i);
        stream.file.flush()
    }

    fn close_stream(&mut self, key: (Uid, bool)) -> io::Result<()> {
        self.started.remove(&key);
        if let Some(i) = self.open.iter().position(|s| s.key == key) {
            let mut stream = self.open.swap_remove(i);
            stream.file.flush()?;
        }
        Ok(())
    }
}

impl StreamSink for StreamWriter {
    fn data(&mut self, stream: &StreamId, _offset: u64, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let result = self.file_for(stream).and_then(|f| f.write_all(bytes));
        match result {
            Ok(()) => self.stats.bytes += bytes.len() as u64,
            Err(e) => self.error = Some(e),
        }
    }

    fn end(&mut self, stream: &StreamId, stats: &StreamStats) {
        if stats.missed_bytes > 0 || stats.dropped_bytes > 0 {
            self.stats.incomplete_streams += 1;
        }
        if let Err(e) = self.close_stream((stream.uid, stream.from_orig)) {
            self.error.get_or_insert(e);
        }
    }
}

/// A [`StreamWriter`] that the caller keeps a handle on while the tracker writes to it, so the
/// caller can close it and see its error after the run. Split into [`STRIPES`] writers by uid
/// (see the module documentation); after a write error anywhere, no stripe writes again.
#[derive(Clone)]
pub struct SharedStreamWriter(Arc<Stripes>);

struct Stripes {
    writers: Vec<Mutex<StreamWriter>>,
    failed: AtomicBool,
}

impl std::fmt::Debug for SharedStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStreamWriter")
    }
}

impl SharedStreamWriter {
    pub fn create(dir: &Path) -> io::Result<SharedStreamWriter> {
        let writers = (0..STRIPES)
            .map(|_| StreamWriter::with_max_open(dir, MAX_OPEN_FILES / STRIPES).map(Mutex::new))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(SharedStreamWriter(Arc::new(Stripes {
            writers,
            failed: AtomicBool::new(false),
        })))
    }

    /// Flushes and closes every file; returns the first write error (by stripe), if any.
    pub fn close(&self) -> io::Result<StreamWriterStats> {
        let mut total = StreamWriterStats::default();
        let mut first_error = None;
        for writer in &self.0.writers {
            let closed = match writer.lock() {
                Ok(mut w) => w.close(),
                Err(_) => Err(io::Error::other("stream writer poisoned")),
            };
            match closed {
                Ok(stats) => {
                    total.files += stats.files;
                    total.bytes += stats.bytes;
                    total.incomplete_streams += stats.incomplete_streams;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// The stripe that writes `uid`'s files.
    fn stripe(&self, uid: &Uid) -> Option<&Mutex<StreamWriter>> {
        let writers = &self.0.writers;
        writers.get((uid.fixed_hash() % writers.len().max(1) as u64) as usize)
    }

    fn with_stripe(&self, uid: &Uid, write: impl FnOnce(&mut StreamWriter)) {
        if self.0.failed.load(Ordering::Relaxed) {
            return;
        }
        if let Some(Ok(mut w)) = self.stripe(uid).map(Mutex::lock) {
            write(&mut w);
            if w.error.is_some() {
                self.0.failed.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl StreamSink for SharedStreamWriter {
    fn data(&mut self, stream: &StreamId, offset: u64, bytes: &[u8]) {
        self.with_stripe(&stream.uid, |w| w.data(stream, offset, bytes));
    }

    fn end(&mut self, stream: &StreamId, stats: &StreamStats) {
        self.with_stripe(&stream.uid, |w| w.end(stream, stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(addr: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: addr.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn names_follow_tcpflow() {
        let uid = Uid::default();
        let name = stream_file_name(&uid, &ep("192.0.2.1", 41201), &ep("192.0.2.2", 8083));
        assert!(name.starts_with("192.000.002.001.41201-192.000.002.002.08083-"));
        let name = stream_file_name(&uid, &ep("2001:db8::1", 443), &ep("2001:db8::2", 80));
        assert!(name.starts_with("2001:db8::1.00443-2001:db8::2.00080-"));
    }

    /// `count` client-to-server streams from consecutive ports starting at `first_port`.
    fn streams_from(first_port: u16, count: u16) -> Vec<StreamId> {
        (0..count)
            .map(|i| {
                let src = ep("192.0.2.1", first_port + i);
                let dst = ep("192.0.2.2", 80);
                StreamId {
                    uid: Uid::derive(
                        crate::capture::Timestamp::ZERO,
                        crate::session::Proto::Tcp,
                        src,
                        dst,
                        0,
                    ),
                    src,
                    dst,
                    from_orig: true,
                }
            })
            .collect()
    }

    /// Every stream's file under `dir` holds exactly `b"abc"`.
    fn assert_each_file_is_abc<'a>(dir: &Path, ids: impl IntoIterator<Item = &'a StreamId>) {
        for id in ids {
            let path = dir.join(stream_file_name(&id.uid, &id.src, &id.dst));
            assert_eq!(std::fs::read(path).unwrap(), b"abc");
        }
    }

    #[test]
    fn workers_sharing_the_writer_write_every_stream_whole() {
        let dir = std::env::temp_dir().join(format!("ss-shared-streams-{}", std::process::id()));
        let shared = SharedStreamWriter::create(&dir).unwrap();
        // More streams than files may be open, from two threads at once, interleaved.
        let all: Vec<Vec<StreamId>> = (0..2)
            .map(|worker| streams_from(1000 + worker * 1000, MAX_OPEN_FILES as u16 * 2))
            .collect();
        std::thread::scope(|scope| {
            for ids in &all {
                let mut sink = shared.clone();
                scope.spawn(move || {
                    for round in 0..3u8 {
                        for id in ids {
                            sink.data(id, 0, &[b'a' + round]);
                        }
                    }
                    for id in ids {
                        sink.end(id, &StreamStats::default());
                    }
                });
            }
        });
        let stats = shared.close().unwrap();
        let ids: Vec<&StreamId> = all.iter().flatten().collect();
        assert_eq!(stats.files, ids.len() as u64);
        assert_eq!(stats.bytes, 3 * ids.len() as u64);
        assert_each_file_is_abc(&dir, ids);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_streams_with_few_open_files() {
        let dir = std::env::temp_dir().join(format!("ss-streams-{}", std::process::id()));
        let mut w = StreamWriter::create(&dir).unwrap();
        let ids = streams_from(1000, MAX_OPEN_FILES as u16 * 2);
        // Interleave writes so that files are closed and reopened.
        for round in 0..3u8 {
            for id in &ids {
                w.data(id, 0, &[b'a' + round]);
                assert!(w.open.len() <= MAX_OPEN_FILES);
            }
        }
        for id in &ids {
            w.end(id, &StreamStats::default());
        }
        let stats = w.close().unwrap();
        assert_eq!(stats.files, ids.len() as u64);
        assert_each_file_is_abc(&dir, &ids);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
