//! The same analysis on several threads: a reader that is also worker 0, N - 1 session
//! workers, and the caller.
//!
//! A reading thread reads the inputs and decodes every frame (link layers, tunnels, IP
//! fragment reassembly), counting frames in the summary as [`Analysis`](super::Analysis) does.
//! Each IP layer goes to the worker a [`ShardMap`] gives its [`shard_key`]: both directions of
//! an address pair meet in one worker, whichever tunnel or frame carried them, and an ICMP error
//! meets the session it quotes. Each worker owns a [`SessionTracker`]: it tracks, reassembles TCP
//! streams and classifies; the sessions it ends go back to the calling thread, which hands them
//! to the caller's `on_session` (the output work: rows, hidden-session analysis, report), so that
//! work runs beside the reading and the tracking.
//!
//! Worker 0 runs on the reading thread: its layers are tracked right where they were decoded,
//! with no copy and no trip to another core (measured: two threads used 9% less CPU than with a
//! separate thread for every worker). Since that thread also reads and decodes everything, the
//! map gives worker 0 a smaller share of the address pairs. The other workers get their layers
//! in batches: each layer's IP header and transport bytes are copied once into its worker's
//! batch (the price of handing bytes to another thread) and batches are recycled, so the steady
//! state allocates nothing per packet. Every layer carries the capture's clock (the latest time of the frames
//! decoded up to its own), so a worker's sessions expire at the frame they would in one table,
//! even in captures whose time goes backwards; at the end each worker is told that clock before
//! it ends its open sessions.
//!
//! What equals one thread: every session, field for field (sessions.csv is sorted by start and
//! uid, so the files are identical), and the summary's counts. What may differ: with
//! `--max-sessions` reached, each worker evicts from its own share of the cap; when one
//! router's ICMP errors quote datagrams of several address pairs, each pair's worker keeps its
//! own ICMP session; the summary's peak of live sessions is the sum of the workers' peaks.

use super::{AnalyzeOptions, AnalyzeOutcome, InputSink, Progress, StreamOutput};
use crate::analysis::CaptureSummary;
use crate::capture::{CaptureReader, PacketSource, Timestamp};
use crate::classify;
use crate::config::TrackerConfig;
use crate::decode::{Decoder, PacketParts, ShardMap, shard_key};
use crate::report::streams::SharedStreamWriter;
use crate::session::{SessionRecord, SessionTracker};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// IP layers per batch handed to a worker.
const BATCH_LAYERS: usize = 512;
/// Bytes per batch handed to a worker (a batch is sent when either limit is reached).
const BATCH_BYTES: usize = 128 << 10;
/// Batches queued per worker before the reader waits, and lists of ended sessions queued per
/// worker before it waits for the output. Deep, because the load comes in bursts: one busy
/// address pair fills its worker's queue while the other worker runs dry, and with short
/// queues the reader then waits on the full one and a core idles (measured: the workers
/// waited 0.9 s each for packets with 4 batches of 1,024 layers, 0.2-0.4 s with 64 of 512).
/// In flight at most `QUEUE_DEPTH * BATCH_BYTES` (8 MiB) per worker.
const QUEUE_DEPTH: usize = 64;
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
    /// Sessions a worker ended, and where to send the emptied list back.
    Sessions(Vec<SessionRecord>, Sender<Vec<SessionRecord>>),
    /// A worker's tracker counters, after its last sessions.
    Done(Box<CaptureSummary>),
}

/// The reading thread's end of a worker.
struct WorkerInput {
    jobs: SyncSender<Job>,
    /// Emptied batches coming back for reuse.
    recycled: Receiver<LayerBatch>,
    filling: LayerBatch,
    live_sessions: Arc<AtomicUsize>,
}

/// Runs the analysis over `options.inputs` with `options.threads` session workers; every
/// finished session (classified) goes to `on_session` on the calling thread.
pub fn analyze(
    options: &AnalyzeOptions,
    on_session: &mut dyn FnMut(&SessionRecord),
) -> AnalyzeOutcome {
    let threads = options.threads.max(1);
    let config = &options.tracker;
    // Bounded: when the output falls behind, the workers wait (and the reader with them)
    // instead of piling finished sessions up in memory.
    let (report_tx, reports) = mpsc::sync_channel(threads * ENDED_LISTS_QUEUED);
    let mut inputs = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    // The session cap is shared out so that the workers' caps add up to it.
    let config_of = |index: usize| {
        let mut worker_config = config.clone();
        let (share, rest) = (config.max_sessions / threads, config.max_sessions % threads);
        worker_config.max_sessions = (share + usize::from(index < rest)).max(1);
        worker_config
    };
    // Worker 0 runs on the reading thread itself: its layers are tracked where they were
    // decoded, with no copy and no hand-over to another core.
    let inline_config = config_of(0);
    let inline_streams = options
        .streams
        .as_ref()
        .map(|s| (s.writer.clone(), s.limit_bytes));
    let inline_reports = report_tx.clone();
    for index in 1..threads {
        let (input, handle) = spawn_worker(
            index,
            config_of(index),
            options.streams.as_ref(),
            report_tx.clone(),
        );
        inputs.push(input);
        handles.push(handle);
    }
    // Only the workers hold senders now: the report loop ends when the last one is gone.
    drop(report_tx);
    let progress = super::progress_bar(options);
    let decoder = Decoder::new(config.fragments.clone(), config.verify_checksums);
    let verify_checksums = config.verify_checksums;
    let mut sessions_summary = CaptureSummary::default();
    let progress_bar = &progress;
    let (reader_summary, input_errors) = std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("reader".into())
            .spawn_scoped(scope, move || {
                // Built here: the inline worker's tracker (its stream sink) stays on this thread.
                let mut reader = Reader {
                    decoder,
                    verify_checksums,
                    shards: ShardMap::new(threads),
                    inline: Worker::new(inline_config, inline_streams, inline_reports),
                    workers: inputs,
                    summary: CaptureSummary::default(),
                    clock: Timestamp::ZERO,
                    full: Vec::with_capacity(threads),
                };
                let errors = super::read_inputs(options, progress_bar, &mut reader);
                (reader.finish(), errors)
            });
        let reading = match reading {
            Ok(reading) => reading,
            Err(e) => {
                return (
                    CaptureSummary::default(),
                    vec![format!("cannot start the reading thread: {e}")],
                );
            }
        };
        // Sessions as the workers end them, until every worker has reported and gone.
        while let Ok(report) = reports.recv() {
            match report {
                Report::Sessions(records, give_back) => {
                    for record in &records {
                        sessions_summary.on_session(record);
                        on_session(record);
                    }
                    // The worker frees them: freeing where they were allocated is cheaper,
                    // and it keeps that work off this thread.
                    let _ = give_back.send(records);
                }
                Report::Done(worker_summary) => sessions_summary.merge(*worker_summary),
            }
        }
        reading.join().unwrap_or_else(|_| {
            (
                CaptureSummary::default(),
                vec!["the reading thread stopped unexpectedly".to_string()],
            )
        })
    });
    for handle in handles.into_iter().flatten() {
        if handle.join().is_err() {
            eprintln!("sessionscope: a session worker stopped unexpectedly");
        }
    }
    progress.finish_and_clear();
    let mut summary = reader_summary;
    summary.merge(sessions_summary);
    AnalyzeOutcome {
        summary,
        input_errors,
    }
}

/// The reading thread: decodes frames and fills the workers' batches.
struct Reader {
    decoder: Decoder,
    verify_checksums: bool,
    /// Which worker each address pair goes to: 0 is `inline`, `n` is `workers[n - 1]`.
    shards: ShardMap,
    inline: Worker,
    workers: Vec<WorkerInput>,
    summary: CaptureSummary,
    /// The latest time of the frames whose layers reached a tracker: the clock one table
    /// would have (frames without an IP layer, and held fragments, do not move it).
    clock: Timestamp,
    /// Workers whose batch filled up during the current frame.
    full: Vec<usize>,
}

impl InputSink for Reader {
    fn feed_input(
        &mut self,
        reader: &mut CaptureReader,
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String> {
        self.feed(reader, on_progress)
    }

    fn input_failed(&mut self, name: &str, message: String) {
        self.summary.on_file_start(name);
        self.summary.on_file_end(0, Some(message));
    }
}

impl Reader {
    /// Sessions open now, over all workers (as of their last batch).
    fn live_sessions(&self) -> usize {
        self.inline.tracker.live_sessions()
            + self
                .workers
                .iter()
                .map(|w| w.live_sessions.load(Ordering::Relaxed))
                .sum::<usize>()
    }

    /// Reads `source` to its end (or its first error), as [`Analysis::feed`](super::Analysis::feed).
    fn feed<S: PacketSource>(
        &mut self,
        source: &mut S,
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String> {
        self.summary.on_file_start(source.name());
        let mut packets = 0u64;
        let mut error = None;
        loop {
            let packet = match source.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    if source.waiting() {
                        self.send_all();
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
            let inline = &mut self.inline;
            let full = &mut self.full;
            let shards = &mut self.shards;
            let outcome =
                super::decode_frame(&mut self.decoder, ts, packet.link, packet.data, &mut |ip| {
                    if ts > *clock {
                        *clock = ts;
                    }
                    let shard = shards.worker(shard_key(ip), ip.ip_header.len() + ip.l4.len());
                    if shard == 0 {
                        inline.process(ts, *clock, ip);
                    } else if let Some(worker) = workers.get_mut(shard - 1) {
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
                        if batch.is_full() && !full.contains(&(shard - 1)) {
                            full.push(shard - 1);
                        }
                    }
                    // The worker's tracker turns it away too; this only leaves out what is inside.
                    !SessionTracker::rejects_for_checksum(verify, ip)
                });
            self.summary.on_frame(outcome);
            while let Some(shard) = self.full.pop() {
                self.send(shard);
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

    /// Hands thread worker `index` (of `workers`) its batch (waiting while its queue is full).
    fn send(&mut self, index: usize) {
        if let Some(worker) = self.workers.get_mut(index) {
            let fresh = worker.recycled.try_recv().unwrap_or_default();
            let batch = std::mem::replace(&mut worker.filling, fresh);
            // A worker that is gone says why when it is joined.
            let _ = worker.jobs.send(Job::Layers(batch));
        }
    }

    fn send_all(&mut self) {
        for index in 0..self.workers.len() {
            let has_layers = self
                .workers
                .get(index)
                .is_some_and(|w| !w.filling.layers.is_empty());
            if has_layers {
                self.send(index);
            }
        }
        self.inline.send();
    }

    /// End of input: the last batches, then every worker ends its sessions at the clock.
    fn finish(mut self) -> CaptureSummary {
        self.send_all();
        for worker in &self.workers {
            let _ = worker.jobs.send(Job::Finish(self.clock));
        }
        self.inline.finish(self.clock);
        self.summary.fragments = self.decoder.fragment_stats();
        self.summary
    }
}

/// A worker's table and the sessions it ended: worker 0 on the reading thread, fed layer by
/// layer ([`Worker::process`]), and each worker thread ([`run_worker`]), fed in batches.
struct Worker {
    tracker: SessionTracker,
    ended: EndedSessions,
    handed_back: Receiver<Vec<SessionRecord>>,
}

impl Worker {
    fn new(
        config: TrackerConfig,
        streams: Option<(SharedStreamWriter, usize)>,
        reports: SyncSender<Report>,
    ) -> Self {
        let mut tracker = SessionTracker::new(config);
        if let Some((writer, limit)) = streams {
            tracker.set_stream_sink(Box::new(writer), limit);
        }
        let (give_back, handed_back) = mpsc::channel::<Vec<SessionRecord>>();
        Worker {
            tracker,
            ended: EndedSessions {
                list: Vec::new(),
                spare: Vec::new(),
                reports,
                give_back,
            },
            handed_back,
        }
    }

    /// One IP layer, at the capture's clock `clock` (see [`LayerSlot::clock`]).
    fn process(&mut self, ts: Timestamp, clock: Timestamp, packet: &crate::decode::IpPacket<'_>) {
        let ended = &mut self.ended;
        self.tracker.advance_to(clock, &mut |r| ended.push(r));
        self.tracker.process(ts, packet, &mut |r| ended.push(r));
        if ended.list.len() >= HAND_ON_LIST_LEN {
            self.send();
        }
    }

    /// Hands the ended sessions on, taking back the lists the output has emptied.
    fn send(&mut self) {
        recycle_lists(&self.handed_back, &mut self.ended.spare);
        self.ended.send();
    }

    /// End of input ([`Job::Finish`]): expire up to the capture's clock `now`, end every open
    /// session, hand them on and report the tracker's counters.
    fn finish(mut self, now: Timestamp) {
        let ended = &mut self.ended;
        self.tracker.advance_to(now, &mut |r| ended.push(r));
        self.tracker.finish(&mut |r| ended.push(r));
        self.send();
        let mut summary = CaptureSummary::default();
        summary.set_tracker_stats(self.tracker.stats());
        let _ = self.ended.reports.send(Report::Done(Box::new(summary)));
    }
}

/// Ended sessions a worker (inline or on a thread) gathers before handing them on (when the
/// input pauses, whatever it has goes on at once).
const HAND_ON_LIST_LEN: usize = ENDED_LIST_LEN / 4;

/// Empties the lists the output handed back and keeps up to [`QUEUE_DEPTH`] for reuse.
fn recycle_lists(handed_back: &Receiver<Vec<SessionRecord>>, spare: &mut Vec<Vec<SessionRecord>>) {
    for mut list in handed_back.try_iter() {
        list.clear();
        if spare.len() < ENDED_LISTS_QUEUED {
            spare.push(list);
        }
    }
}

fn spawn_worker(
    index: usize,
    config: TrackerConfig,
    streams: Option<&StreamOutput>,
    reports: SyncSender<Report>,
) -> (WorkerInput, Option<JoinHandle<()>>) {
    let (jobs, job_rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
    let (recycle_tx, recycled) = mpsc::channel::<LayerBatch>();
    let live_sessions = Arc::new(AtomicUsize::new(0));
    let live = Arc::clone(&live_sessions);
    let streams = streams.map(|s| (s.writer.clone(), s.limit_bytes));
    let handle = std::thread::Builder::new()
        .name(format!("sessions-{index}"))
        .spawn(move || run_worker(config, streams, job_rx, recycle_tx, reports, live))
        .ok();
    (
        WorkerInput {
            jobs,
            recycled,
            filling: LayerBatch::default(),
            live_sessions,
        },
        handle,
    )
}

/// How far ahead of the layer being tracked a worker asks for a batch's header bytes.
const LAYERS_PREFETCHED_AHEAD: usize = 4;

fn run_worker(
    config: TrackerConfig,
    streams: Option<(SharedStreamWriter, usize)>,
    jobs: Receiver<Job>,
    recycle: Sender<LayerBatch>,
    reports: SyncSender<Report>,
    live_sessions: Arc<AtomicUsize>,
) {
    let mut worker = Worker::new(config, streams, reports);
    while let Ok(job) = jobs.recv() {
        recycle_lists(&worker.handed_back, &mut worker.ended.spare);
        match job {
            Job::Layers(mut batch) => {
                let (tracker, ended) = (&mut worker.tracker, &mut worker.ended);
                for (index, layer) in batch.layers.iter().enumerate() {
                    // The reading thread wrote these bytes on another core: ask for the
                    // headers a few layers ahead, so their misses overlap.
                    if let Some(ahead) = batch.layers.get(index + LAYERS_PREFETCHED_AHEAD) {
                        let end = ahead
                            .start
                            .saturating_add(ahead.header_len)
                            .saturating_add(64);
                        if let Some(bytes) =
                            batch.bytes.get(ahead.start..end.min(batch.bytes.len()))
                        {
                            crate::prefetch::prefetch_bytes(bytes);
                        }
                    }
                    // The clock of one table: sessions expire at the same frame as there,
                    // even when the frames that moved time on went to other workers.
                    tracker.advance_to(layer.clock, &mut |r| ended.push(r));
                    let header_end = layer.start.saturating_add(layer.header_len);
                    let l4_end = header_end.saturating_add(layer.l4_len);
                    let (Some(header), Some(l4)) = (
                        batch.bytes.get(layer.start..header_end),
                        batch.bytes.get(header_end..l4_end),
                    ) else {
                        continue;
                    };
                    if let Some(packet) = layer.parts.rebuild(header, l4) {
                        tracker.process(layer.ts, &packet, &mut |r| ended.push(r));
                    }
                }
                live_sessions.store(tracker.live_sessions(), Ordering::Relaxed);
                // A full batch means more are coming: hand on only a fair list, so that the
                // calling thread wakes (and takes a core from a worker) once per list, not
                // per batch. A batch sent before it filled means the input paused (live
                // capture): what ended goes on now.
                if !batch.is_full() || ended.list.len() >= HAND_ON_LIST_LEN {
                    ended.send();
                }
                batch.clear();
                let _ = recycle.send(batch);
            }
            Job::Finish(now) => {
                live_sessions.store(0, Ordering::Relaxed);
                worker.finish(now);
                return;
            }
        }
    }
}

/// Sessions a worker ended, on their way to the calling thread in lists of at most
/// [`ENDED_LIST_LEN`]: at the end of the capture every open session ends at once, and a
/// worker then waits for the output list by list instead of holding all their records beside
/// its table, as one thread hands them on one by one.
struct EndedSessions {
    list: Vec<SessionRecord>,
    /// Emptied lists handed back by the calling thread.
    spare: Vec<Vec<SessionRecord>>,
    reports: SyncSender<Report>,
    give_back: Sender<Vec<SessionRecord>>,
}

/// Sessions per list handed to the calling thread.
const ENDED_LIST_LEN: usize = 1024;
/// Lists of ended sessions queued per worker for the calling thread (and kept for reuse). A
/// list holds up to [`ENDED_LIST_LEN`] records (272 bytes each, plus what the content found):
/// with 64 (the batch queue's depth), the backlog behind a slow output grew with the run, and
/// max RSS with two threads was 17% higher on the 4 GiB capture than on the 1 GiB one (12% with
/// 8; the speed did not change).
const ENDED_LISTS_QUEUED: usize = 8;

impl EndedSessions {
    /// Names the session's service (here, off the reading thread) and queues it.
    fn push(&mut self, mut record: SessionRecord) {
        classify::classify(&mut record);
        self.list.push(record);
        if self.list.len() >= ENDED_LIST_LEN {
            self.send();
        }
    }

    /// Hands the queued sessions on (waiting while the output is behind).
    fn send(&mut self) {
        if self.list.is_empty() {
            return;
        }
        let next = self.spare.pop().unwrap_or_default();
        let full = std::mem::replace(&mut self.list, next);
        let _ = self
            .reports
            .send(Report::Sessions(full, self.give_back.clone()));
    }
}
