//! The same analysis on several threads: one reader, N session workers.
//!
//! The calling thread reads the capture and decodes every frame (link layers, tunnels, IP
//! fragment reassembly), counting frames in the summary as [`Analysis`](super::Analysis) does.
//! Each IP layer goes to the worker [`shard_key`] names: both directions of an address pair
//! meet in one worker, whichever tunnel or frame carried them, and an ICMP error meets the
//! session it quotes. Each worker owns a [`SessionTracker`]: it tracks, reassembles TCP streams
//! and classifies; the sessions it ends come back to the calling thread, which hands them to
//! the caller's `on_session`.
//!
//! Layers travel in batches: each layer's IP header and transport bytes are copied once into
//! its worker's batch (the price of handing bytes to another thread) and batches are recycled,
//! so the steady state allocates nothing per packet. Every layer carries the capture's clock
//! (the latest time of the frames decoded up to its own), so a worker's sessions expire at the
//! frame they would in one table, even in captures whose time goes backwards; at the end each
//! worker is told that clock before it ends its open sessions.
//!
//! What equals one thread: every session, field for field (sessions.csv is sorted by start and
//! uid, so the files are identical), and the summary's counts. What may differ: with
//! `--max-sessions` reached, each worker evicts from its own share of the cap; when one
//! router's ICMP errors quote datagrams of several address pairs, each pair's worker keeps its
//! own ICMP session; the summary's peak of live sessions is the sum of the workers' peaks.

use super::{Progress, StreamOutput};
use crate::analysis::CaptureSummary;
use crate::capture::{PacketSource, Timestamp};
use crate::classify;
use crate::config::TrackerConfig;
use crate::decode::{Decoder, PacketParts, shard_key};
use crate::report::streams::SharedStreamWriter;
use crate::session::{SessionRecord, SessionTracker};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// IP layers per batch handed to a worker.
const BATCH_LAYERS: usize = 1024;
/// Bytes per batch handed to a worker (a batch is sent when either limit is reached).
const BATCH_BYTES: usize = 1 << 20;
/// Batches queued per worker before the reader waits.
const QUEUE_DEPTH: usize = 4;
/// Frames between two progress callbacks.
const PROGRESS_EVERY_PACKETS: u64 = 1 << 14;

/// One IP layer in a batch: its fields, and where its bytes are in the batch.
#[derive(Debug, Clone, Copy)]
struct LayerSlot {
    ts: Timestamp,
    /// The capture's clock at this frame (see [`ParallelAnalysis::clock`]).
    clock: Timestamp,
    parts: PacketParts,
    start: usize,
    header_len: usize,
    l4_len: usize,
}

/// IP layers for one worker, their bytes back to back.
#[derive(Debug, Default)]
struct LayerBatch {
    bytes: Vec<u8>,
    layers: Vec<LayerSlot>,
}

impl LayerBatch {
    fn is_full(&self) -> bool {
        self.layers.len() >= BATCH_LAYERS || self.bytes.len() >= BATCH_BYTES
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.layers.clear();
    }
}

enum Job {
    Layers(LayerBatch),
    /// End of input: expire up to the capture's clock, end every open session, report.
    Finish(Timestamp),
}

enum Report {
    Sessions(Vec<SessionRecord>),
    /// A worker's tracker counters, after its last sessions.
    Done(Box<CaptureSummary>),
}

struct Worker {
    jobs: SyncSender<Job>,
    /// Emptied batches coming back for reuse.
    recycled: Receiver<LayerBatch>,
    filling: LayerBatch,
    live_sessions: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

/// [`Analysis`](super::Analysis) with session tracking spread over worker threads.
pub struct ParallelAnalysis {
    decoder: Decoder,
    verify_checksums: bool,
    workers: Vec<Worker>,
    reports: Receiver<Report>,
    summary: CaptureSummary,
    /// The latest time of the frames whose layers reached a tracker: the clock one table
    /// would have (frames without an IP layer, and held fragments, do not move it).
    clock: Timestamp,
    workers_done: usize,
}

impl ParallelAnalysis {
    /// Starts `threads` workers (at least one), each with `config` and its share of the
    /// session cap.
    pub fn new(config: TrackerConfig, threads: usize, streams: Option<StreamOutput>) -> Self {
        let threads = threads.max(1);
        let (report_tx, reports) = mpsc::channel();
        let decoder = Decoder::new(config.fragments.clone(), config.verify_checksums);
        let verify_checksums = config.verify_checksums;
        let mut worker_config = config;
        worker_config.max_sessions = worker_config.max_sessions.div_ceil(threads).max(1);
        let workers = (0..threads)
            .map(|index| {
                spawn_worker(
                    index,
                    worker_config.clone(),
                    streams.as_ref().map(|s| (s.writer.clone(), s.limit_bytes)),
                    report_tx.clone(),
                )
            })
            .collect();
        ParallelAnalysis {
            decoder,
            verify_checksums,
            workers,
            reports,
            summary: CaptureSummary::default(),
            clock: Timestamp::ZERO,
            workers_done: 0,
        }
    }

    /// Sessions open now, over all workers (as of their last batch).
    pub fn live_sessions(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.live_sessions.load(Ordering::Relaxed))
            .sum()
    }

    /// Reads `source` to its end (or its first error), as [`Analysis::feed`](super::Analysis::feed).
    pub fn feed<S: PacketSource>(
        &mut self,
        source: &mut S,
        on_session: &mut dyn FnMut(&SessionRecord),
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String> {
        self.summary.on_file_start(source.name());
        let mut packets = 0u64;
        let mut error = None;
        let shards = self.workers.len() as u64;
        let mut full = Vec::with_capacity(self.workers.len());
        loop {
            let packet = match source.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    if source.waiting() {
                        self.send_all(on_session);
                        if on_progress(self.progress(source, packets)) {
                            continue;
                        }
                    }
                    break;
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            packets += 1;
            self.summary.on_packet(&packet);
            let ts = packet.ts;
            let clock = &mut self.clock;
            let verify = self.verify_checksums;
            let workers = &mut self.workers;
            let mut layers = 0u32;
            let mut rejected = false;
            let result = self
                .decoder
                .decode(ts, packet.link, packet.data, &mut |ip| {
                    layers += 1;
                    if ts > *clock {
                        *clock = ts;
                    }
                    // A layer turned away for its checksum takes what it carries with it.
                    if rejected {
                        return;
                    }
                    rejected = SessionTracker::rejects_for_checksum(verify, ip);
                    let shard = (shard_key(ip) % shards) as usize;
                    let Some(worker) = workers.get_mut(shard) else {
                        return;
                    };
                    let batch = &mut worker.filling;
                    let start = batch.bytes.len();
                    batch.bytes.extend_from_slice(ip.ip_header);
                    batch.bytes.extend_from_slice(ip.l4);
                    batch.layers.push(LayerSlot {
                        ts,
                        clock: *clock,
                        parts: PacketParts::of(ip),
                        start,
                        header_len: ip.ip_header.len(),
                        l4_len: ip.l4.len(),
                    });
                    if batch.is_full() && !full.contains(&shard) {
                        full.push(shard);
                    }
                });
            self.summary.on_frame(super::FrameOutcome {
                decoded: layers > 0 || self.decoder.held_fragment(),
                skipped: result.err(),
            });
            for shard in full.drain(..) {
                self.send(shard, on_session);
            }
            if (packets.is_multiple_of(PROGRESS_EVERY_PACKETS) || source.progress_due())
                && !on_progress(self.progress(source, packets))
            {
                break;
            }
        }
        on_progress(self.progress(source, packets));
        self.summary.on_file_end(packets, error.clone());
        error.map_or(Ok(()), Err)
    }

    fn progress<S: PacketSource>(&self, source: &S, packets: u64) -> Progress {
        Progress {
            bytes_read: source.bytes_read(),
            packets,
            live_sessions: self.live_sessions(),
        }
    }

    /// Records an input that could not even be opened.
    pub fn input_failed(&mut self, name: &str, message: String) {
        self.summary.on_file_start(name);
        self.summary.on_file_end(0, Some(message));
    }

    /// Hands worker `shard` its batch, then takes in the sessions the workers have ended.
    fn send(&mut self, shard: usize, on_session: &mut dyn FnMut(&SessionRecord)) {
        if let Some(worker) = self.workers.get_mut(shard) {
            let fresh = worker.recycled.try_recv().unwrap_or_default();
            let batch = std::mem::replace(&mut worker.filling, fresh);
            // A worker that is gone says why when it is joined.
            let _ = worker.jobs.send(Job::Layers(batch));
        }
        self.take_reports(on_session, false);
    }

    fn send_all(&mut self, on_session: &mut dyn FnMut(&SessionRecord)) {
        for shard in 0..self.workers.len() {
            let has_layers = self
                .workers
                .get(shard)
                .is_some_and(|w| !w.filling.layers.is_empty());
            if has_layers {
                self.send(shard, on_session);
            }
        }
    }

    /// Hands the ended sessions to `on_session`; with `wait`, until every worker is done.
    fn take_reports(&mut self, on_session: &mut dyn FnMut(&SessionRecord), wait: bool) {
        loop {
            let report = if wait {
                if self.workers_done == self.workers.len() {
                    return;
                }
                match self.reports.recv() {
                    Ok(report) => report,
                    Err(_) => return,
                }
            } else {
                match self.reports.try_recv() {
                    Ok(report) => report,
                    Err(_) => return,
                }
            };
            match report {
                Report::Sessions(records) => {
                    for record in &records {
                        self.summary.on_session(record);
                        on_session(record);
                    }
                }
                Report::Done(worker_summary) => {
                    self.workers_done += 1;
                    self.summary.merge(*worker_summary);
                }
            }
        }
    }

    /// Ends every open session in every worker (end of input) and returns the summary.
    pub fn finish(mut self, on_session: &mut dyn FnMut(&SessionRecord)) -> CaptureSummary {
        self.send_all(on_session);
        let clock = self.clock;
        for worker in &self.workers {
            let _ = worker.jobs.send(Job::Finish(clock));
        }
        self.take_reports(on_session, true);
        for worker in &mut self.workers {
            if let Some(handle) = worker.handle.take()
                && handle.join().is_err()
            {
                eprintln!("sessionscope: a session worker stopped unexpectedly");
            }
        }
        self.summary.fragments = self.decoder.fragment_stats();
        self.summary
    }
}

fn spawn_worker(
    index: usize,
    config: TrackerConfig,
    streams: Option<(SharedStreamWriter, usize)>,
    reports: Sender<Report>,
) -> Worker {
    let (jobs, job_rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
    let (recycle_tx, recycled) = mpsc::channel::<LayerBatch>();
    let live_sessions = Arc::new(AtomicUsize::new(0));
    let live = Arc::clone(&live_sessions);
    let handle = std::thread::Builder::new()
        .name(format!("sessions-{index}"))
        .spawn(move || run_worker(config, streams, job_rx, recycle_tx, reports, live))
        .ok();
    Worker {
        jobs,
        recycled,
        filling: LayerBatch::default(),
        live_sessions,
        handle,
    }
}

fn run_worker(
    config: TrackerConfig,
    streams: Option<(SharedStreamWriter, usize)>,
    jobs: Receiver<Job>,
    recycle: Sender<LayerBatch>,
    reports: Sender<Report>,
    live_sessions: Arc<AtomicUsize>,
) {
    let mut tracker = SessionTracker::new(config);
    if let Some((writer, limit)) = streams {
        tracker.set_stream_sink(Box::new(writer), limit);
    }
    let mut ended: Vec<SessionRecord> = Vec::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Layers(mut batch) => {
                for layer in &batch.layers {
                    // The clock of one table: sessions expire at the same frame as there,
                    // even when the frames that moved time on went to other workers.
                    tracker.advance_to(layer.clock, &mut |r| classified(&mut ended, r));
                    let header_end = layer.start.saturating_add(layer.header_len);
                    let l4_end = header_end.saturating_add(layer.l4_len);
                    let (Some(header), Some(l4)) = (
                        batch.bytes.get(layer.start..header_end),
                        batch.bytes.get(header_end..l4_end),
                    ) else {
                        continue;
                    };
                    if let Some(packet) = layer.parts.rebuild(header, l4) {
                        tracker.process(layer.ts, &packet, &mut |r| classified(&mut ended, r));
                    }
                }
                live_sessions.store(tracker.live_sessions(), Ordering::Relaxed);
                if !ended.is_empty() {
                    let _ = reports.send(Report::Sessions(std::mem::take(&mut ended)));
                }
                batch.clear();
                let _ = recycle.send(batch);
            }
            Job::Finish(now) => {
                tracker.advance_to(now, &mut |r| classified(&mut ended, r));
                tracker.finish(&mut |r| classified(&mut ended, r));
                let mut summary = CaptureSummary::default();
                summary.set_tracker_stats(tracker.stats());
                live_sessions.store(0, Ordering::Relaxed);
                let _ = reports.send(Report::Sessions(std::mem::take(&mut ended)));
                let _ = reports.send(Report::Done(Box::new(summary)));
                return;
            }
        }
    }
}

/// A session ended in a worker: its service is named there, off the reading thread.
fn classified(ended: &mut Vec<SessionRecord>, mut record: SessionRecord) {
    classify::classify(&mut record);
    ended.push(record);
}
