//! Wires the stages together: capture -> decode -> session -> classify -> analysis -> report.
//!
//! [`Analysis`] is the one code path after the packet source: files, pipes and (later) live
//! interfaces all feed it packets through [`PacketSource`]. [`analyze`] runs it over a list of
//! files read in the order given as one continuous capture: a session that spans two files
//! stays one session. A file that cannot be read to its end stops that file only; everything read
//! before the error is still tracked, summarised and exported.

use crate::analysis::CaptureSummary;
use crate::capture::{CaptureReader, LinkType, PacketSource, Timestamp};
use crate::classify;
use crate::config::TrackerConfig;
use crate::decode;
use crate::report::streams::SharedStreamWriter;
use crate::session::{SessionRecord, SessionTracker};
use std::path::PathBuf;

pub mod parallel;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Capture files, read in this order; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    pub tracker: TrackerConfig,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Reassemble TCP sessions and write their streams (`--write-streams`).
    pub streams: Option<StreamOutput>,
    /// Session workers: 1 tracks on the reading thread; more shard sessions over that many
    /// worker threads ([`parallel`]), with the same sessions as one.
    pub threads: usize,
}

/// Where reassembled TCP streams go, and the memory each direction may hold ahead of a hole.
#[derive(Debug, Clone)]
pub struct StreamOutput {
    pub writer: SharedStreamWriter,
    pub limit_bytes: usize,
}

/// The result of a run: the summary, and the input problems met on the way.
#[derive(Debug)]
pub struct AnalyzeOutcome {
    pub summary: CaptureSummary,
    /// One message per input that could not be read to its end (names the file and where).
    pub input_errors: Vec<String>,
}

/// What [`Analysis::feed`] tells its progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes the source has consumed.
    pub bytes_read: u64,
    /// Packets read from this source so far.
    pub packets: u64,
    /// Sessions open now.
    pub live_sessions: usize,
}

/// Packets between two progress callbacks (keeps the per-packet path free of terminal writes).
const PROGRESS_EVERY_PACKETS: u64 = 1 << 14;

/// The analysis state shared by every packet source: the session table and the summary.
pub struct Analysis {
    decoder: decode::Decoder,
    tracker: SessionTracker,
    summary: CaptureSummary,
}

impl Analysis {
    pub fn new(config: TrackerConfig) -> Self {
        Analysis {
            decoder: decode::Decoder::new(config.fragments.clone(), config.verify_checksums),
            tracker: SessionTracker::new(config),
            summary: CaptureSummary::default(),
        }
    }

    /// Sessions currently open.
    pub fn live_sessions(&self) -> usize {
        self.tracker.live_sessions()
    }

    /// The summary so far.
    pub fn summary(&self) -> &CaptureSummary {
        &self.summary
    }

    /// Reads `source` to its end (or its first error, returned as the user-facing message).
    /// Finished sessions go to `on_session`; `on_progress` is called every few thousand packets,
    /// and whenever a live source says so (time passed, or a read timeout on a quiet link), with
    /// what was read so far, so a caller can draw progress, show a status or check a stop flag
    /// (returning false stops reading early, as a clean end).
    pub fn feed<S: PacketSource>(
        &mut self,
        source: &mut S,
        on_session: &mut dyn FnMut(&SessionRecord),
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String> {
        self.summary.on_file_start(source.name());
        let mut packets = 0u64;
        let mut error = None;
        loop {
            let packet = match source.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    // A live source came back from a read timeout: let the caller look around.
                    if source.waiting() && on_progress(self.progress(source, packets)) {
                        continue;
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
            let summary = &mut self.summary;
            let outcome = track_frame(
                &mut self.decoder,
                &mut self.tracker,
                packet.ts,
                packet.link,
                packet.data,
                &mut |record| deliver(record, summary, on_session),
            );
            self.summary.on_frame(outcome);
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
            live_sessions: self.tracker.live_sessions(),
        }
    }

    /// Records an input that could not even be opened.
    pub fn input_failed(&mut self, name: &str, message: String) {
        self.summary.on_file_start(name);
        self.summary.on_file_end(0, Some(message));
    }

    /// Ends every open session (end of input), and returns the summary.
    pub fn finish(mut self, on_session: &mut dyn FnMut(&SessionRecord)) -> CaptureSummary {
        let summary = &mut self.summary;
        self.tracker
            .finish(&mut |record| deliver(record, summary, on_session));
        self.summary.set_tracker_stats(self.tracker.stats());
        self.summary.fragments = self.decoder.fragment_stats();
        self.summary
    }
}

/// Runs the analysis over files; every finished session (classified) goes to `on_session`.
pub fn analyze(
    options: &AnalyzeOptions,
    on_session: &mut dyn FnMut(&SessionRecord),
) -> AnalyzeOutcome {
    if options.threads > 1 {
        return parallel::analyze(options, on_session);
    }
    let mut analysis = Analysis::new(options.tracker.clone());
    if let Some(streams) = &options.streams {
        analysis
            .tracker
            .set_stream_sink(Box::new(streams.writer.clone()), streams.limit_bytes);
    }
    let progress = progress_bar(options);
    let input_errors = read_inputs(
        options,
        &progress,
        &mut OneTable {
            analysis: &mut analysis,
            on_session: &mut *on_session,
        },
    );
    let summary = analysis.finish(on_session);
    progress.finish_and_clear();
    AnalyzeOutcome {
        summary,
        input_errors,
    }
}

/// What reads the inputs of a run: one table, or the reading side of [`parallel`].
pub(crate) trait InputSink {
    fn feed_input(
        &mut self,
        reader: &mut CaptureReader,
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String>;
    fn input_failed(&mut self, name: &str, message: String);
}

struct OneTable<'a> {
    analysis: &'a mut Analysis,
    on_session: &'a mut dyn FnMut(&SessionRecord),
}

impl InputSink for OneTable<'_> {
    fn feed_input(
        &mut self,
        reader: &mut CaptureReader,
        on_progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<(), String> {
        self.analysis.feed(reader, self.on_session, on_progress)
    }

    fn input_failed(&mut self, name: &str, message: String) {
        self.analysis.input_failed(name, message);
    }
}

/// Opens the inputs in order as one capture and feeds them to `sink`, moving the progress
/// bar; returns one message per input that could not be read to its end.
pub(crate) fn read_inputs(
    options: &AnalyzeOptions,
    progress: &indicatif::ProgressBar,
    sink: &mut dyn InputSink,
) -> Vec<String> {
    let mut input_errors = Vec::new();
    let mut bytes_before = 0u64;
    let mut started_next: Option<crate::capture::ReadAheadCapture> = None;
    for (index, input) in options.inputs.iter().enumerate() {
        let opened = match started_next
            .take()
            .filter(|next| next.path() == input.as_path())
        {
            Some(started) => CaptureReader::open_started(started),
            None => CaptureReader::open_read_ahead(input),
        };
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(error) => {
                let message = error.to_string();
                sink.input_failed(&input.display().to_string(), message.clone());
                input_errors.push(message);
                continue;
            }
        };
        // The next file's first blocks are read while this one's last are parsed.
        if let Some(next) = options.inputs.get(index + 1) {
            reader.read_next_ahead(next);
        }
        let result = sink.feed_input(&mut reader, &mut |now| {
            progress.set_position(bytes_before + now.bytes_read);
            true
        });
        started_next = reader.take_next();
        bytes_before += reader.bytes_read();
        if let Err(message) = result {
            input_errors.push(message);
        }
    }
    input_errors
}

/// What decoding one frame came to, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOutcome {
    /// At least one IP layer was found (or a fragment was kept for reassembly).
    pub decoded: bool,
    /// Why the frame, or a layer inside it, could not be decoded.
    pub skipped: Option<decode::SkipReason>,
}

/// Decodes one frame and gives its IP layers to the tracker; sessions that end go to `emit`.
/// The per-packet step of [`Analysis`].
pub(crate) fn track_frame(
    decoder: &mut decode::Decoder,
    tracker: &mut SessionTracker,
    ts: Timestamp,
    link: LinkType,
    data: &[u8],
    emit: &mut impl FnMut(SessionRecord),
) -> FrameOutcome {
    decode_frame(decoder, ts, link, data, &mut |ip| {
        tracker.process(ts, ip, emit)
    })
}

/// Decodes one frame, handing each IP layer to `take`, outermost first. `take` returns false
/// when it turned the layer away for its checksum: the layers inside it are then left out.
/// Shared by [`track_frame`] and the reading thread of [`parallel`].
pub(crate) fn decode_frame(
    decoder: &mut decode::Decoder,
    ts: Timestamp,
    link: LinkType,
    data: &[u8],
    take: &mut impl FnMut(&decode::IpPacket<'_>) -> bool,
) -> FrameOutcome {
    let mut layers = 0u32;
    let mut rejected = false;
    let result = decoder.decode(ts, link, data, &mut |ip| {
        layers += 1;
        // A layer rejected for its checksum takes what it carries with it.
        if !rejected {
            rejected = !take(ip);
        }
    });
    FrameOutcome {
        decoded: layers > 0 || decoder.held_fragment(),
        skipped: result.err(),
    }
}

/// A session left the tracker: name its service, count it, hand it on.
fn deliver(
    mut record: SessionRecord,
    summary: &mut CaptureSummary,
    on_session: &mut dyn FnMut(&SessionRecord),
) {
    classify::classify(&mut record);
    summary.on_session(&record);
    on_session(&record);
}

pub(crate) fn progress_bar(options: &AnalyzeOptions) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !options.progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let total: u64 = options
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
