//! Wires the stages together for one analysis run: capture -> decode -> session -> classify ->
//! analysis -> report.
//!
//! Several input files are read in the order given as one continuous capture: a session that
//! spans two files stays one session. A file that cannot be read to its end stops that file
//! only; everything read before the error is still tracked, summarised and exported.

use crate::analysis::CaptureSummary;
use crate::capture::{CaptureReader, Timestamp};
use crate::classify;
use crate::config::TrackerConfig;
use crate::decode;
use crate::session::{SessionRecord, SessionTracker};
use std::path::PathBuf;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Capture files, read in this order; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    pub tracker: TrackerConfig,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// The result of a run: the summary, and the input problems met on the way.
#[derive(Debug)]
pub struct AnalyzeOutcome {
    pub summary: CaptureSummary,
    /// One message per input that could not be read to its end (names the file and where).
    pub input_errors: Vec<String>,
}

/// Packets between two progress-bar updates (keeps the per-packet path free of terminal writes).
const PROGRESS_EVERY_PACKETS: u64 = 1 << 14;

/// Runs the analysis; every finished session (classified) goes to `on_session` as it ends.
pub fn analyze(
    options: &AnalyzeOptions,
    on_session: &mut dyn FnMut(&SessionRecord),
) -> AnalyzeOutcome {
    let mut summary = CaptureSummary::default();
    let mut tracker = SessionTracker::new(options.tracker.clone());
    let mut input_errors = Vec::new();
    let progress = progress_bar(options);

    for input in &options.inputs {
        let name = input.display().to_string();
        summary.on_file_start(&name);
        let mut reader = match CaptureReader::open(input) {
            Ok(reader) => reader,
            Err(error) => {
                let message = error.to_string();
                summary.on_file_end(0, Some(message.clone()));
                input_errors.push(message);
                continue;
            }
        };
        let mut packets_in_file = 0u64;
        let mut file_error = None;
        let mut bytes_base = progress.position();
        loop {
            let packet = match reader.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(error) => {
                    file_error = Some(error.to_string());
                    break;
                }
            };
            packets_in_file += 1;
            let ts: Timestamp = packet.ts;
            summary.on_packet(&packet);
            let mut layers = 0u32;
            let result = decode::decode(packet.link, packet.data, &mut |ip| {
                layers += 1;
                tracker.process(ts, ip, &mut |record| {
                    deliver(record, &mut summary, on_session)
                });
            });
            if layers > 0 {
                summary.on_decoded();
            }
            if let Err(reason) = result {
                summary.on_skip(reason);
            }
            if packets_in_file.is_multiple_of(PROGRESS_EVERY_PACKETS) {
                progress.set_position(bytes_base + reader.bytes_read());
            }
        }
        bytes_base += reader.bytes_read();
        progress.set_position(bytes_base);
        if let Some(message) = &file_error {
            input_errors.push(message.clone());
        }
        summary.on_file_end(packets_in_file, file_error);
    }
    tracker.finish(&mut |record| deliver(record, &mut summary, on_session));
    progress.finish_and_clear();
    summary.set_tracker_stats(tracker.stats());
    AnalyzeOutcome {
        summary,
        input_errors,
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

fn progress_bar(options: &AnalyzeOptions) -> indicatif::ProgressBar {
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
