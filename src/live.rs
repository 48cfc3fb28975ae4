//! A live run (cargo feature `live`): interface -> the same [`Analysis`] as files -> rows
//! appended as sessions end, a status line, and a stop on signal, duration or packet count.
//!
//! Owns the run loop around [`Analysis::feed`]: the stop conditions (checked in the progress
//! callback, which a live source calls at least every 250 ms of traffic and after each read
//! timeout on a quiet link), the status line on stderr, time rotation of the output on a quiet
//! link, the hidden-session analysis over a sliding window, and the kernel's drop counters for
//! the final report. Promises: SIGINT and SIGTERM end the open sessions as the end of a file
//! does and write them; an output error (disk full) stops the run with the error and leaves only
//! whole rows; nothing here panics.
//!
//! Session timers run on capture time, as for files: on a quiet link they advance only with the
//! next packet, so an idle session is written when traffic resumes or at exit.
//!
//! Hidden sessions: a [`SessionWindow`] keeps what the analysis needs of each session that ended
//! in the last window (`--hidden-window`, at least the rotation period), at most
//! [`MAX_WINDOW_SESSIONS`] of them (the oldest go first; the summary says so). When a sessions
//! file is complete (rotation or exit) the same [`HiddenAnalyzer`] as `analyze` runs over the
//! window and `hidden-<time>.csv` is written beside `sessions-<time>.csv`, whole or not at all.
//! At a rotation that runs on a thread of its own over a snapshot of the window (shared entries,
//! nothing copied), so the capture goes on reading packets meanwhile; at exit, in line.

use crate::analysis::CaptureSummary;
use crate::analysis::hidden::{HiddenAnalyzer, HiddenOptions, HiddenReport, SessionFacts};
use crate::capture::live::{KernelStats, LiveError, LiveOptions, LiveSource};
use crate::config::TrackerConfig;
use crate::pipeline::{Analysis, Progress};
use crate::report::{Rotation, StreamingCsvWriter};
use crate::session::SessionRecord;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Exit status of a process ended by a second SIGINT/SIGTERM while the first was being handled.
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// Most sessions the hidden-session window keeps (about 300 bytes each: under 100 MB; while a
/// rotation's analysis runs, the entries it holds may add as many again).
pub const MAX_WINDOW_SESSIONS: usize = 250_000;

/// The hidden-session window when none is asked for.
pub const DEFAULT_HIDDEN_WINDOW: Duration = Duration::from_secs(3600);

/// What to capture, how to analyse it, where to write it, when to stop.
#[derive(Debug, Clone)]
pub struct LiveRunOptions {
    pub capture: LiveOptions,
    pub tracker: TrackerConfig,
    /// Directory for the rotating session files; `None` prints the summary only.
    pub out: Option<PathBuf>,
    pub rotation: Rotation,
    pub community_id_seed: u16,
    /// The `sensor` column's value.
    pub sensor: String,
    /// Stop after this much wall-clock time.
    pub duration: Option<Duration>,
    /// Status line interval on stderr; `None` for no status line.
    pub status_every: Option<Duration>,
    /// Options of the hidden-session analysis (as for `analyze`).
    pub hidden: HiddenOptions,
    /// Sessions that ended this long ago or less are analysed; raised to the rotation period.
    pub hidden_window: Duration,
    /// Most sessions kept in the window (normally [`MAX_WINDOW_SESSIONS`]).
    pub hidden_window_cap: usize,
}

impl LiveRunOptions {
    /// The hidden-session window in effect: the one asked for, at least the rotation period.
    pub fn effective_hidden_window(&self) -> Duration {
        match self.rotation {
            Rotation::Every(period) => self.hidden_window.max(period),
            _ => self.hidden_window,
        }
    }
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
    /// The hidden-session analysis over the window at exit.
    pub hidden: HiddenReport,
    /// hidden-<time>.csv files written, in order.
    pub hidden_files: Vec<PathBuf>,
    /// The window as it was at exit.
    pub window: WindowStats,
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
    let buffer = options
        .capture
        .buffer_size
        .map_or("libpcap's default".to_string(), |b| format!("{b} bytes"));
    eprintln!(
        "sessionscope: capturing on {} (link type {}, snaplen {}, {}promiscuous, kernel buffer {buffer}){}; Ctrl-C to stop",
        options.capture.interface,
        source.link_type().0,
        options.capture.snaplen,
        if options.capture.promisc { "" } else { "not " },
        writer.as_ref().map_or(String::new(), |w| format!(
            ", sessions to {}",
            w.borrow().current_path().display()
        ))
    );
    let output_error: RefCell<Option<String>> = RefCell::new(None);
    let window = RefCell::new(SessionWindow::new(
        options.effective_hidden_window(),
        options.hidden_window_cap,
    ));
    let hidden_files: RefCell<Vec<PathBuf>> = RefCell::new(Vec::new());
    let hidden_writer: RefCell<Option<JoinHandle<Result<PathBuf, String>>>> = RefCell::new(None);
    // Collects the hidden file being written, waiting for it unless `only_if_done`.
    let collect_hidden = |only_if_done: bool| {
        let mut slot = hidden_writer.borrow_mut();
        if only_if_done && !slot.as_ref().is_some_and(JoinHandle::is_finished) {
            return;
        }
        let Some(handle) = slot.take() else { return };
        match handle.join() {
            Ok(Ok(path)) => hidden_files.borrow_mut().push(path),
            Ok(Err(e)) => {
                output_error.borrow_mut().get_or_insert(e);
            }
            Err(_) => {
                output_error
                    .borrow_mut()
                    .get_or_insert("the hidden-session analysis failed".to_string());
            }
        }
    };
    // A sessions file is complete: the window's hidden sessions go beside it.
    let on_rotation = |closed: &Path| {
        collect_hidden(false);
        let sessions = window.borrow_mut().snapshot(SystemTime::now());
        let hidden = options.hidden.clone();
        let closed = closed.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("hidden-sessions".into())
            .spawn(move || write_hidden(&closed, &analyse(&sessions, hidden)));
        match spawned {
            Ok(handle) => *hidden_writer.borrow_mut() = Some(handle),
            Err(e) => {
                output_error
                    .borrow_mut()
                    .get_or_insert(format!("cannot start the hidden-session analysis: {e}"));
            }
        }
    };
    let mut rows_seen = 0u64;
    let mut analysis = Analysis::new(options.tracker.clone());
    let started = Instant::now();
    let mut status = StatusLine::new(options.status_every);
    let mut stopped_by = StopReason::SourceEnded;
    let mut draining_until: Option<Instant> = None;
    let drain = Duration::from_millis(u64::from(options.capture.read_timeout_ms) * 2 + 100);

    let mut on_session = |record: &SessionRecord| {
        rows_seen += 1;
        if let Some(writer) = &writer
            && output_error.borrow().is_none()
        {
            let mut writer = writer.borrow_mut();
            let before = writer.current_path().to_path_buf();
            let written = writer.write(record);
            // A write can start a new file (size, or a time boundary passed).
            let rotated = writer.current_path() != before;
            drop(writer);
            if rotated {
                on_rotation(&before);
            }
            if let Err(e) = written {
                output_error.borrow_mut().get_or_insert(e.to_string());
            }
        }
        // After a rotation, so that this session counts for the file it went into.
        window.borrow_mut().push(record, SystemTime::now());
    };
    let interface = options.capture.interface.clone();
    let kernel_stats = source.kernel_stats_handle();
    let feed_result = {
        let mut on_progress = |now: Progress| {
            collect_hidden(true);
            if let Some(writer) = &writer
                && output_error.borrow().is_none()
            {
                let rotated = writer.borrow_mut().rotate_if_due(SystemTime::now());
                match rotated {
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
    let mut last_file = None;
    if let Some(writer) = writer {
        let writer = writer.into_inner();
        last_file = Some(writer.current_path().to_path_buf());
        rows = writer.rows_written();
        match writer.finish() {
            Ok(stats) => files = stats.files,
            Err(e) => {
                output_error.borrow_mut().get_or_insert(e.to_string());
            }
        }
    }
    collect_hidden(false);
    // The last file's hidden sessions; also the summary's, with or without --out.
    let hidden = window
        .borrow_mut()
        .analyse(SystemTime::now(), &options.hidden);
    if let Some(last) = last_file
        && output_error.borrow().is_none()
    {
        match write_hidden(&last, &hidden) {
            Ok(path) => hidden_files.borrow_mut().push(path),
            Err(e) => *output_error.borrow_mut() = Some(e),
        }
    }
    if let Some(dir) = &options.out {
        // Only there when a hidden file was being written; empty otherwise.
        let _ = std::fs::remove_dir(staging_dir(dir));
    }
    Ok(LiveOutcome {
        summary,
        stopped_by,
        kernel,
        files,
        rows,
        capture_error,
        output_error: output_error.into_inner(),
        hidden,
        hidden_files: hidden_files.into_inner(),
        window: window.into_inner().stats(),
    })
}

fn open_writer(dir: &Path, options: &LiveRunOptions) -> Result<StreamingCsvWriter, LiveRunError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            StreamingCsvWriter::create(dir, options.rotation, options.community_id_seed)
                .map(|mut writer| {
                    writer.set_sensor(&options.sensor);
                    writer
                })
                .map_err(|e| e.to_string())
        })
        .map_err(|e| LiveRunError::Output(format!("{}: cannot write sessions: {e}", dir.display())))
}

/// `hidden-<time>.csv` for `sessions-<time>.csv`: the same time (and `-N` suffix).
pub fn hidden_file_name(sessions_file: &Path) -> String {
    let name = sessions_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_prefix("sessions-") {
        Some(rest) => format!("hidden-{rest}"),
        None => format!("hidden-{name}"),
    }
}

/// Where a hidden file is written before it is renamed into place (one per process).
fn staging_dir(dir: &Path) -> PathBuf {
    dir.join(format!(".hidden-{}.tmp", std::process::id()))
}

/// Writes the report as `hidden-<time>.csv` beside `sessions_file`: first in a staging
/// directory, then renamed, so a reader sees the whole file or none.
fn write_hidden(sessions_file: &Path, report: &HiddenReport) -> Result<PathBuf, String> {
    let dir = sessions_file.parent().unwrap_or(Path::new("."));
    let target = dir.join(hidden_file_name(sessions_file));
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
    // One hidden file is written at a time (a rotation first waits for the previous one's).
    let staging = staging_dir(dir);
    std::fs::create_dir_all(&staging).map_err(|e| fail(&e))?;
    let (written, _rows) = crate::report::hidden_csv::write(&staging, report).map_err(|e| {
        let _ = std::fs::remove_file(staging.join(crate::report::hidden_csv::HIDDEN_FILE_NAME));
        fail(&e)
    })?;
    std::fs::rename(&written, &target).map_err(|e| fail(&e))?;
    Ok(target)
}

/// What the hidden-session window held at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    /// The window in effect (at least the rotation period).
    pub span: Duration,
    /// Most sessions it may hold.
    pub cap: usize,
    /// Sessions in it at the last analysis.
    pub sessions: usize,
    /// Sessions pushed out by the cap while still inside the window.
    pub capped_out: u64,
}

/// What the hidden-session analysis needs of one ended session, owned.
#[derive(Debug)]
struct WindowedSession {
    ended: SystemTime,
    /// The record without its content details (kept below).
    record: SessionRecord,
    server_name: Option<Box<str>>,
    dns_query: Option<Box<str>>,
    dns_answers: Box<[IpAddr]>,
}

impl WindowedSession {
    fn new(record: &SessionRecord, ended: SystemTime) -> Self {
        let facts = SessionFacts::of_session(record);
        let server_name = facts.server_name.map(Box::from);
        let dns_query = facts.dns_query.map(Box::from);
        let dns_answers: Box<[IpAddr]> = facts.dns_answers.into();
        WindowedSession {
            ended,
            record: SessionRecord {
                content: None,
                anomalies: record.anomalies,
                uid: record.uid,
                start: record.start,
                last: record.last,
                orig: record.orig,
                resp: record.resp,
                proto: record.proto,
                ip_proto: record.ip_proto,
                orig_stats: record.orig_stats,
                resp_stats: record.resp_stats,
                conn_state: record.conn_state,
                history: record.history,
                missed_bytes: record.missed_bytes,
                service: record.service,
                service_evidence: record.service_evidence,
                end_reason: record.end_reason,
                tunnel_depth: record.tunnel_depth,
                related_uid: record.related_uid,
            },
            server_name,
            dns_query,
            dns_answers,
        }
    }

    fn facts(&self) -> SessionFacts<'_> {
        let mut facts = SessionFacts::from_record(&self.record);
        facts.server_name = self.server_name.as_deref();
        facts.dns_query = self.dns_query.as_deref();
        facts.dns_answers = &self.dns_answers;
        facts
    }
}

/// The hidden-session analysis of `sessions`, as `analyze` does it.
fn analyse(sessions: &[Arc<WindowedSession>], options: HiddenOptions) -> HiddenReport {
    let mut analyzer = HiddenAnalyzer::new(options);
    // Row tags are for labelling sessions.csv rows, which live runs write as they end.
    let mut tag = Vec::new();
    for session in sessions {
        tag.clear();
        analyzer.observe(&session.facts(), &mut tag);
    }
    analyzer.finish()
}

/// The sessions that ended in the last `span`, in end order, at most `cap` of them.
#[derive(Debug)]
pub struct SessionWindow {
    span: Duration,
    cap: usize,
    /// Shared with the analysis of a rotation still running.
    sessions: VecDeque<Arc<WindowedSession>>,
    capped_out: u64,
}

impl SessionWindow {
    pub fn new(span: Duration, cap: usize) -> Self {
        SessionWindow {
            span,
            cap: cap.max(1),
            sessions: VecDeque::new(),
            capped_out: 0,
        }
    }

    /// Keeps a session that ended at `ended` (calls come in end order).
    pub fn push(&mut self, record: &SessionRecord, ended: SystemTime) {
        self.forget_before(ended);
        if self.sessions.len() >= self.cap && self.sessions.pop_front().is_some() {
            self.capped_out += 1;
        }
        self.sessions
            .push_back(Arc::new(WindowedSession::new(record, ended)));
    }

    /// The hidden-session analysis of the sessions that ended in the `span` before `now`.
    pub fn analyse(&mut self, now: SystemTime, options: &HiddenOptions) -> HiddenReport {
        analyse(&self.snapshot(now), options.clone())
    }

    /// The sessions that ended in the `span` before `now`, for an analysis elsewhere.
    fn snapshot(&mut self, now: SystemTime) -> Vec<Arc<WindowedSession>> {
        self.forget_before(now);
        self.sessions.iter().cloned().collect()
    }

    /// Sessions in the window now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn stats(&self) -> WindowStats {
        WindowStats {
            span: self.span,
            cap: self.cap,
            sessions: self.sessions.len(),
            capped_out: self.capped_out,
        }
    }

    fn forget_before(&mut self, now: SystemTime) {
        let Some(cutoff) = now.checked_sub(self.span) else {
            return;
        };
        while self.sessions.front().is_some_and(|s| s.ended < cutoff) {
            self.sessions.pop_front();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::session::{
        ConnState, DirectionStats, EndReason, Endpoint, History, Proto, ServiceEvidence, Uid,
    };
    use std::time::UNIX_EPOCH;

    /// A UDP session from 10.0.0.1 to 10.0.0.2:`port` starting at `start_s`.
    fn udp(port: u16, start_s: i64) -> SessionRecord {
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::from_micros(start_s * 1_000_000),
            last: Timestamp::from_micros(start_s * 1_000_000 + 1_000),
            orig: Endpoint {
                addr: "10.0.0.1".parse().unwrap(),
                port: 50_000,
            },
            resp: Endpoint {
                addr: "10.0.0.2".parse().unwrap(),
                port,
            },
            proto: Proto::Udp,
            ip_proto: 17,
            orig_stats: DirectionStats::default(),
            resp_stats: DirectionStats::default(),
            conn_state: ConnState::S0,
            history: History::default(),
            missed_bytes: 0,
            service: None,
            service_evidence: ServiceEvidence::None,
            end_reason: EndReason::Closed,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_700_000_000;

    #[test]
    fn the_window_keeps_only_sessions_that_ended_within_it() {
        let mut window = SessionWindow::new(Duration::from_secs(100), 1000);
        // A timer every 10 s to port 4444, ending as it starts.
        for i in 0..30u64 {
            window.push(&udp(4444, (T0 + 10 * i) as i64), at(T0 + 10 * i));
        }
        // At T0+300 the last 100 s hold the sessions that ended at T0+200..=T0+290.
        let report = window.analyse(at(T0 + 300), &HiddenOptions::default());
        assert_eq!(window.len(), 10);
        assert_eq!(report.sessions, 10);
        let pattern = report.patterns.first().unwrap();
        assert_eq!(pattern.kind.as_str(), "beacon");
        assert_eq!(pattern.sessions, 10);
        assert!((pattern.period_s.unwrap() - 10.0).abs() < 0.01);
        assert_eq!(window.stats().capped_out, 0);
        // Much later, nothing is left.
        let report = window.analyse(at(T0 + 10_000), &HiddenOptions::default());
        assert!(window.is_empty());
        assert!(report.patterns.is_empty());
    }

    #[test]
    fn the_cap_drops_the_oldest_and_says_how_many() {
        let mut window = SessionWindow::new(Duration::from_secs(3600), 5);
        for i in 0..8u64 {
            window.push(&udp(4444, (T0 + i) as i64), at(T0 + i));
        }
        let stats = window.stats();
        assert_eq!((stats.sessions, stats.cap, stats.capped_out), (5, 5, 3));
        // The newest five remain.
        let report = window.analyse(at(T0 + 8), &HiddenOptions::default());
        assert_eq!(report.sessions, 5);
    }

    #[test]
    fn content_reaches_the_analysis_as_it_does_for_files() {
        let mut record = udp(53, T0 as i64);
        record.content = Some(crate::classify::Findings::from(
            crate::classify::content::ContentInfo {
                service: "dns",
                server_name: Some("updates.example".into()),
                dns_query: Some("updates.example".into()),
                dns_answers: vec!["192.0.2.7".into(), "mirror.example".into()],
                dns_answer_addresses: vec!["192.0.2.7".parse().unwrap()],
                ..Default::default()
            },
        ));
        let kept = WindowedSession::new(&record, at(T0));
        let facts = kept.facts();
        assert_eq!(facts.dns_query, Some("updates.example"));
        assert_eq!(facts.server_name, None);
        assert_eq!(facts.dns_answers, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert!(kept.record.content.is_none());
    }

    #[test]
    fn hidden_files_are_named_after_their_sessions_file() {
        assert_eq!(
            hidden_file_name(Path::new("/x/sessions-20231114T221320Z.csv")),
            "hidden-20231114T221320Z.csv"
        );
        assert_eq!(
            hidden_file_name(Path::new("out/sessions-20231114T221320Z-2.csv")),
            "hidden-20231114T221320Z-2.csv"
        );
    }

    #[test]
    fn the_window_is_at_least_the_rotation_period() {
        let options = |rotation| LiveRunOptions {
            capture: LiveOptions::default(),
            tracker: TrackerConfig::default(),
            out: None,
            rotation,
            community_id_seed: 0,
            sensor: "test".into(),
            duration: None,
            status_every: None,
            hidden: HiddenOptions::default(),
            hidden_window: Duration::from_secs(600),
            hidden_window_cap: MAX_WINDOW_SESSIONS,
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(
            options(Rotation::Every(hour)).effective_hidden_window(),
            hour
        );
        assert_eq!(
            options(Rotation::Every(Duration::from_secs(60))).effective_hidden_window(),
            Duration::from_secs(600)
        );
        assert_eq!(
            options(Rotation::Size(1_000_000)).effective_hidden_window(),
            Duration::from_secs(600)
        );
    }
}
