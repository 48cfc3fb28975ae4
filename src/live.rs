//! A live run (cargo feature `live`): interface -> the same [`Analysis`] as files -> rows
//! appended as sessions end, a status line, and a stop on signal, duration or packet count.
//!
//! Owns the run loop around [`Analysis::feed`]: the stop conditions (checked in the progress
//! callback, which a live source calls at least every 250 ms of traffic and after each read
//! timeout on a quiet link), the status line on stderr, time rotation of the output on a quiet
//! link, and the kernel's drop counters for the final report. Promises: SIGINT and SIGTERM end
//! the open sessions as the end of a file does and write them; an output error (disk full)
//! stops the run with the error and leaves only whole rows; nothing here panics.
//!
//! Session timers run on capture time, as for files: on a quiet link they advance only with the
//! next packet, so an idle session is written when traffic resumes or at exit.

use crate::analysis::CaptureSummary;
use crate::capture::live::{KernelStats, LiveError, LiveOptions, LiveSource};
use crate::config::TrackerConfig;
use crate::pipeline::{Analysis, Progress};
use crate::report::{Rotation, StreamingCsvWriter};
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Exit status of a process ended by a second SIGINT/SIGTERM while the first was being handled.
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// What to capture, how to analyse it, where to write it, when to stop.
#[derive(Debug, Clone)]
pub struct LiveRunOptions {
    pub capture: LiveOptions,
    pub tracker: TrackerConfig,
    /// Directory for the rotating session files; `None` prints the summary only.
    pub out: Option<PathBuf>,
    pub rotation: Rotation,
    pub community_id_seed: u16,
    /// Stop after this much wall-clock time.
    pub duration: Option<Duration>,
    /// Status line interval on stderr; `None` for no status line.
    pub status_every: Option<Duration>,
}

/// Why the capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Duration,
    PacketLimit,
    /// The interface went away or libpcap reported the end.
    SourceEnded,
    /// A session file could not be written.
    OutputError,
}

/// The result of a live run that started.
#[derive(Debug)]
pub struct LiveOutcome {
    pub summary: CaptureSummary,
    pub stopped_by: StopReason,
    /// The kernel's counters at the end (`None` when libpcap could not say).
    pub kernel: Option<KernelStats>,
    /// Session files written, in order.
    pub files: Vec<PathBuf>,
    pub rows: u64,
    /// The capture failed mid-run (message names the interface).
    pub capture_error: Option<String>,
    /// Writing sessions failed (message names the file); the run stopped there.
    pub output_error: Option<String>,
}

/// Why a live run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveRunError {
    #[error(transparent)]
    Capture(#[from] LiveError),
    #[error("{0}")]
    Output(String),
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// Sets the returned flag on the first SIGINT or SIGTERM; a second one ends the process at once
/// with [`EXIT_ON_SECOND_SIGNAL`] (for a run stuck writing to a slow disk).
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, LiveRunError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            EXIT_ON_SECOND_SIGNAL,
            Arc::clone(&stop),
        )
        .map_err(LiveRunError::Signals)?;
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(LiveRunError::Signals)?;
    }
    Ok(stop)
}

/// Captures until `stop` is set or a limit is reached; see the module documentation.
pub fn run(options: &LiveRunOptions, stop: &AtomicBool) -> Result<LiveOutcome, LiveRunError> {
    let mut source = LiveSource::open(&options.capture)?;
    let writer = match &options.out {
        Some(dir) => Some(RefCell::new(open_writer(dir, options)?)),
        None => None,
    };
    eprintln!(
        "sessionscope: capturing on {} (link type {}){}; Ctrl-C to stop",
        options.capture.interface,
        source.link_type().0,
        writer.as_ref().map_or(String::new(), |w| format!(
            ", sessions to {}",
            w.borrow().current_path().display()
        ))
    );
    let output_error: RefCell<Option<String>> = RefCell::new(None);
    let mut rows_seen = 0u64;
    let mut analysis = Analysis::new(options.tracker.clone());
    let started = Instant::now();
    let mut status = StatusLine::new(options.status_every);
    let mut stopped_by = StopReason::SourceEnded;
    let mut draining_until: Option<Instant> = None;
    let drain = Duration::from_millis(u64::from(options.capture.read_timeout_ms) * 2 + 100);

    let mut on_session = |record: &crate::session::SessionRecord| {
        rows_seen += 1;
        let Some(writer) = &writer else { return };
        if output_error.borrow().is_some() {
            return;
        }
        if let Err(e) = writer.borrow_mut().write(record) {
            *output_error.borrow_mut() = Some(e.to_string());
        }
    };
    let interface = options.capture.interface.clone();
    let kernel_stats = source.kernel_stats_handle();
    let feed_result = {
        let mut on_progress = |now: Progress| {
            if let Some(writer) = &writer
                && output_error.borrow().is_none()
            {
                match writer.borrow_mut().rotate_if_due(SystemTime::now()) {
                    Ok(Some(closed)) => on_rotation(&closed),
                    Ok(None) => {}
                    Err(e) => *output_error.borrow_mut() = Some(e.to_string()),
                }
            }
            let written = writer.as_ref().map(|w| w.borrow().rows_written());
            status.maybe_show(&interface, now, written, kernel_stats.get());
            if output_error.borrow().is_some() {
                stopped_by = StopReason::OutputError;
                return false;
            }
            if draining_until.is_none() {
                if stop.load(Ordering::Relaxed) {
                    stopped_by = StopReason::Signal;
                } else if options.duration.is_some_and(|d| started.elapsed() >= d) {
                    stopped_by = StopReason::Duration;
                } else {
                    return true;
                }
                draining_until = Some(Instant::now() + drain);
            }
            // Keep reading what the kernel still holds (it hands packets over in blocks
            // retired at the read timeout), then end.
            draining_until.is_some_and(|until| Instant::now() < until)
        };
        analysis.feed(&mut source, &mut on_session, &mut on_progress)
    };
    if stopped_by == StopReason::SourceEnded
        && options
            .capture
            .max_packets
            .is_some_and(|max| source.packets() >= max)
    {
        stopped_by = StopReason::PacketLimit;
    }
    let capture_error = feed_result.err();
    let kernel = source.kernel_stats();
    status.close();
    drop(source);

    // The end of the capture ends every open session, as the end of a file does.
    let summary = analysis.finish(&mut on_session);
    let mut files = Vec::new();
    let mut rows = rows_seen;
    if let Some(writer) = writer {
        let writer = writer.into_inner();
        let last = writer.current_path().to_path_buf();
        rows = writer.rows_written();
        match writer.finish() {
            Ok(stats) => files = stats.files,
            Err(e) => {
                output_error.borrow_mut().get_or_insert(e.to_string());
            }
        }
        on_rotation(&last);
    }
    Ok(LiveOutcome {
        summary,
        stopped_by,
        kernel,
        files,
        rows,
        capture_error,
        output_error: output_error.into_inner(),
    })
}

fn open_writer(dir: &Path, options: &LiveRunOptions) -> Result<StreamingCsvWriter, LiveRunError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            StreamingCsvWriter::create(dir, options.rotation, options.community_id_seed)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| LiveRunError::Output(format!("{}: cannot write sessions: {e}", dir.display())))
}

/// A session file is complete (rotation or exit).
fn on_rotation(_closed: &Path) {
    // TODO(hidden-sessions issue): run the hidden-session analysis over its sliding window here
    // and write its report beside `_closed`; it is called at each rotation and at exit.
}

/// The status line on stderr: redrawn in place on a terminal, one line each time otherwise.
struct StatusLine {
    every: Option<Duration>,
    last: Instant,
    terminal: bool,
    drawn: bool,
}

impl StatusLine {
    fn new(every: Option<Duration>) -> Self {
        StatusLine {
            every,
            last: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn maybe_show(
        &mut self,
        interface: &str,
        now: Progress,
        written: Option<u64>,
        kernel: Option<KernelStats>,
    ) {
        let Some(every) = self.every else { return };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let written = written.map_or_else(|| "no --out".to_string(), |w| w.to_string());
        let drops = kernel.map_or_else(
            || "kernel drops n/a".to_string(),
            |k| {
                format!(
                    "{} dropped by kernel, {} by interface",
                    k.dropped, k.if_dropped
                )
            },
        );
        let line = format!(
            "sessionscope: {interface}: {} packets, {} live sessions, {written} sessions written, {drops}",
            now.packets, now.live_sessions
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.drawn = true;
    }

    fn close(&mut self) {
        if self.terminal && self.drawn {
            eprintln!();
        }
    }
}
