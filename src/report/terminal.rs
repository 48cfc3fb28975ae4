//! The terminal summary: what an administrator reads first after a run.
//!
//! Owns turning a [`CaptureSummary`] into aligned, width-limited text: capture span and files,
//! how a capture set's files joined up (gaps, overlaps),
//! packets read/decoded/skipped (every nonzero reason), sessions by protocol, state (with its
//! meaning), end reason and service, top services and talkers, the session table's counters
//! (evictions called out loudly), and read errors. Promises: no line is wider than
//! [`TerminalOptions::width`] visible characters, ANSI colour only when
//! [`TerminalOptions::color`] is set, and text from inputs (file names, error messages) has
//! its control characters replaced so it cannot drive the terminal.

use crate::analysis::hidden::{HiddenPattern, HiddenReport, PatternKind};
use crate::analysis::{BoundaryKind, CaptureSummary, END_REASONS, Traffic};
use crate::capture::{LinkType, Timestamp};
use crate::decode::SkipReason;
use crate::session::{ConnState, Proto};
use std::fmt::Write as _;

/// How the summary is laid out. The CLI sets `color` only for a terminal with NO_COLOR unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalOptions {
    /// Maximum visible characters per line.
    pub width: usize,
    pub color: bool,
}

impl Default for TerminalOptions {
    fn default() -> Self {
        TerminalOptions {
            width: 100,
            color: false,
        }
    }
}

/// Rows shown in the service and talker tables.
const TOP_N: usize = 10;
/// Narrowest a shrinkable column (names, meanings) gets before lines are cut instead.
const MIN_FLEX_WIDTH: usize = 8;

/// Renders the whole summary; see the module documentation.
pub fn render(summary: &CaptureSummary, opts: &TerminalOptions) -> String {
    let mut out = Out {
        lines: Vec::new(),
        opts: *opts,
    };
    capture_section(&mut out, summary);
    capture_set_section(&mut out, summary);
    packets_section(&mut out, summary);
    sessions_section(&mut out, summary);
    tracker_section(&mut out, summary);
    errors_section(&mut out, summary);
    let mut text = String::new();
    for line in &out.lines {
        text.push_str(&fit(line, opts.width));
        text.push('\n');
    }
    text
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Heading,
    Header,
    Dim,
    Warn,
    Error,
}

impl Style {
    fn ansi(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Heading => "\x1b[1;36m",
            Style::Header => "\x1b[1m",
            Style::Dim => "\x1b[2m",
            Style::Warn => "\x1b[1;33m",
            Style::Error => "\x1b[1;31m",
        }
    }
}

struct Out {
    lines: Vec<String>,
    opts: TerminalOptions,
}

impl Out {
    fn paint(&self, text: &str, style: Style) -> String {
        if self.opts.color && style != Style::Plain {
            format!("{}{text}\x1b[0m", style.ansi())
        } else {
            text.to_string()
        }
    }

    fn heading(&mut self, title: &str) {
        if !self.lines.is_empty() {
            self.lines.push(String::new());
        }
        let line = self.paint(title, Style::Heading);
        self.lines.push(line);
    }

    fn line(&mut self, text: String) {
        self.lines.push(text);
    }

    /// A "label  value" line with the labels of one block aligned.
    fn field(&mut self, label: &str, value: &str, style: Style) {
        let value = self.paint(value, style);
        self.lines.push(format!("  {label:<16}{value}"));
    }

    /// Word-wrapped paragraph (for messages that must not be cut), indented by `indent`.
    fn wrapped(&mut self, indent: usize, text: &str, style: Style) {
        let avail = self.opts.width.saturating_sub(indent).max(MIN_FLEX_WIDTH);
        let mut current = String::new();
        let flush = |out: &mut Out, current: &mut String| {
            if !current.is_empty() {
                let painted = out.paint(current, style);
                out.lines.push(format!("{:indent$}{painted}", ""));
                current.clear();
            }
        };
        for word in text.split_whitespace() {
            let mut word: String = word.to_string();
            // Words longer than a line are split.
            while word.chars().count() > avail {
                flush(self, &mut current);
                let head: String = word.chars().take(avail).collect();
                let tail: String = word.chars().skip(avail).collect();
                current = head;
                flush(self, &mut current);
                word = tail;
            }
            let needed =
                current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
            if needed > avail {
                flush(self, &mut current);
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&word);
        }
        flush(self, &mut current);
    }

    fn table(&mut self, table: Table) {
        let lines = table.layout(self.opts.width.saturating_sub(4));
        for (i, line) in lines.into_iter().enumerate() {
            let painted = if i == 0 {
                self.paint(&line, Style::Header)
            } else {
                line
            };
            self.lines.push(format!("    {painted}"));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A table whose `flex` column shrinks (cells cut with "...") to fit the width.
struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
    flex: Option<usize>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)], flex: Option<usize>) -> Self {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            align: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
            flex,
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn layout(&self, width: usize) -> Vec<String> {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
        if let Some(flex) = self.flex
            && total > width
            && let Some(w) = widths.get_mut(flex)
        {
            *w = w.saturating_sub(total - width).max(MIN_FLEX_WIDTH);
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate().take(cols) {
                    let w = widths.get(i).copied().unwrap_or(0);
                    let cell = truncate(cell, w);
                    let last = i + 1 == cols;
                    if i > 0 {
                        line.push_str("  ");
                    }
                    match self.align.get(i) {
                        Some(Align::Right) => {
                            let _ = write!(line, "{cell:>w$}");
                        }
                        _ if last => line.push_str(&cell),
                        _ => {
                            let _ = write!(line, "{cell:<w$}");
                        }
                    }
                }
                line
            })
            .collect()
    }
}

fn capture_section(out: &mut Out, s: &CaptureSummary) {
    out.heading("Capture");
    match (s.first_ts, s.last_ts) {
        (Some(first), Some(last)) => {
            out.field("First packet", &format!("{} UTC", utc(first)), Style::Plain);
            out.field("Last packet", &format!("{} UTC", utc(last)), Style::Plain);
            out.field("Span", &duration(s.span_nanos()), Style::Plain);
        }
        _ => out.field("Span", "no packets", Style::Warn),
    }
    let failed = s.files.iter().filter(|f| f.error.is_some()).count();
    let files = if failed > 0 {
        format!("{} ({failed} stopped early, see Errors)", s.files.len())
    } else {
        s.files.len().to_string()
    };
    out.field(
        "Files",
        &files,
        if failed > 0 {
            Style::Error
        } else {
            Style::Plain
        },
    );
    if s.files.is_empty() {
        return;
    }
    let mut t = Table::new(
        &[
            ("file", Align::Left),
            ("packets", Align::Right),
            ("first (UTC)", Align::Left),
            ("span", Align::Right),
            ("link", Align::Left),
            ("status", Align::Left),
        ],
        Some(0),
    );
    let total = s.files.len();
    let mut left_out = 0usize;
    for (index, f) in s.files.iter().enumerate() {
        // A long capture set shows its first and last files and every file with an error.
        let shown = total <= FILES_LISTED
            || index < FILES_LISTED / 2
            || index >= total - FILES_LISTED / 2
            || f.error.is_some();
        if !shown {
            left_out += 1;
            continue;
        }
        if left_out > 0 {
            t.row(vec![format!("... {} more files", count(left_out as u64))]);
            left_out = 0;
        }
        let span = match (f.first_ts, f.last_ts) {
            (Some(a), Some(b)) => duration(b.nanos_since(a)),
            _ => "-".into(),
        };
        let links: Vec<String> = f.link_types.iter().map(|l| link_name(*l)).collect();
        t.row(vec![
            clean(&f.name),
            count(f.packets),
            f.first_ts
                .map_or("-".into(), |ts| utc(ts).chars().take(19).collect()),
            span,
            if links.is_empty() {
                "-".into()
            } else {
                links.join(",")
            },
            if f.error.is_some() {
                "ERROR".into()
            } else {
                "ok".into()
            },
        ]);
    }
    out.table(t);
}

/// Files listed in the capture section's table (half from the start, half from the end).
const FILES_LISTED: usize = 20;

/// Gaps and overlaps listed one by one in the capture set section; more are counted.
const BOUNDARIES_LISTED: usize = 20;

/// How the files joined up: shown when several files, a directory or a pattern made the
/// capture (and the caller said how it gathered them).
fn capture_set_section(out: &mut Out, s: &CaptureSummary) {
    let Some(set) = s.capture_set else {
        return;
    };
    if s.files.len() < 2 && set.directories == 0 && set.patterns == 0 {
        return;
    }
    out.heading("Capture set");
    let mut sources = Vec::new();
    if set.directories > 0 {
        sources.push(plural(set.directories, "directory", "directories"));
    }
    if set.patterns > 0 {
        sources.push(plural(set.patterns, "pattern", "patterns"));
    }
    let mut files = plural(s.files.len() as u64, "capture file", "capture files");
    if !sources.is_empty() {
        files = format!("{files} from {}", sources.join(", "));
    }
    if set.skipped_files > 0 {
        files.push_str(&format!(
            " ({} skipped: not pcap or pcapng)",
            plural(set.skipped_files, "other file", "other files")
        ));
    }
    out.field("Files", &files, Style::Plain);
    out.field(
        "Order",
        "by first packet time, ties by name (as in the table above)",
        Style::Plain,
    );
    let boundaries = s.file_boundaries(set.gap_threshold);
    let gaps: Vec<_> = boundaries
        .iter()
        .filter(|b| b.kind == BoundaryKind::Gap)
        .collect();
    let overlaps: Vec<_> = boundaries
        .iter()
        .filter(|b| b.kind == BoundaryKind::Overlap)
        .collect();
    let gap_total = gaps.iter().fold(0u64, |a, b| a.saturating_add(b.nanos));
    let span = s.span_nanos();
    out.field(
        "Span",
        &if gaps.is_empty() {
            duration(span)
        } else {
            format!(
                "{}, of which {} in gaps",
                duration(span),
                duration(gap_total)
            )
        },
        Style::Plain,
    );
    let name = |index: usize| {
        s.files
            .get(index)
            .map_or_else(|| "?".to_string(), |f| clean(&f.name))
    };
    out.field(
        "Gaps",
        &format!(
            "{} (pauses over {} between files)",
            if gaps.is_empty() {
                "none".to_string()
            } else {
                count(gaps.len() as u64)
            },
            seconds(set.gap_threshold)
        ),
        if gaps.is_empty() {
            Style::Plain
        } else {
            Style::Warn
        },
    );
    for gap in gaps.iter().take(BOUNDARIES_LISTED) {
        let text = format!(
            "{} without packets: {} -> {}",
            duration(gap.nanos),
            name(gap.before),
            name(gap.after)
        );
        out.wrapped(4, &text, Style::Plain);
    }
    if gaps.len() > BOUNDARIES_LISTED {
        out.wrapped(
            4,
            &format!("... and {} more", gaps.len() - BOUNDARIES_LISTED),
            Style::Dim,
        );
    }
    out.field(
        "Overlaps",
        &if overlaps.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (a file starts before the previous one ends)",
                count(overlaps.len() as u64)
            )
        },
        if overlaps.is_empty() {
            Style::Plain
        } else {
            Style::Warn
        },
    );
    for overlap in overlaps.iter().take(BOUNDARIES_LISTED) {
        let text = format!(
            "{} overlap: {} starts before {} ends",
            duration(overlap.nanos),
            name(overlap.after),
            name(overlap.before)
        );
        out.wrapped(4, &text, Style::Plain);
    }
    if overlaps.len() > BOUNDARIES_LISTED {
        out.wrapped(
            4,
            &format!("... and {} more", overlaps.len() - BOUNDARIES_LISTED),
            Style::Dim,
        );
    }
}

fn packets_section(out: &mut Out, s: &CaptureSummary) {
    out.heading("Packets");
    out.field("Read", &count(s.packets_read), Style::Plain);
    out.field(
        "Decoded (IP)",
        &format!(
            "{}  ({})",
            count(s.packets_decoded),
            percent(s.packets_decoded, s.packets_read)
        ),
        Style::Plain,
    );
    let skipped = s.skipped_total();
    out.field(
        "Skipped",
        &count(skipped),
        if skipped > 0 {
            Style::Warn
        } else {
            Style::Plain
        },
    );
    if skipped > 0 {
        let mut t = Table::new(
            &[
                ("reason", Align::Left),
                ("frames", Align::Right),
                ("share", Align::Right),
            ],
            Some(0),
        );
        for reason in SkipReason::ALL {
            let n = s.skipped_for(reason);
            if n > 0 {
                t.row(vec![reason.label().into(), count(n), percent(n, skipped)]);
            }
        }
        out.table(t);
    }
    out.field("Bytes on wire", &bytes(s.wire_bytes), Style::Plain);
    if s.packets_cut_by_snaplen > 0 {
        out.field(
            "Cut by snaplen",
            &format!(
                "{} frames (captured {} of {} on the wire)",
                count(s.packets_cut_by_snaplen),
                bytes(s.captured_bytes),
                bytes(s.wire_bytes)
            ),
            Style::Warn,
        );
    }
}

fn sessions_section(out: &mut Out, s: &CaptureSummary) {
    out.heading("Sessions");
    let total = s.sessions.sessions;
    out.field(
        "Total",
        &format!(
            "{}  ({} packets, {} IP)",
            count(total),
            count(s.sessions.pkts),
            bytes(s.sessions.ip_bytes)
        ),
        Style::Plain,
    );
    if total == 0 {
        return;
    }

    out.line("  By protocol".into());
    let mut t = Table::new(
        &[
            ("proto", Align::Left),
            ("sessions", Align::Right),
            ("share", Align::Right),
            ("packets", Align::Right),
            ("IP bytes", Align::Right),
        ],
        None,
    );
    for (proto, traffic) in &s.by_proto {
        let name = match proto {
            Proto::Other(n) => format!("ip proto {n}"),
            p => p.as_str().to_string(),
        };
        t.row(vec![
            name,
            count(traffic.sessions),
            percent(traffic.sessions, total),
            count(traffic.pkts),
            bytes(traffic.ip_bytes),
        ]);
    }
    out.table(t);

    out.line("  By state".into());
    let mut t = Table::new(
        &[
            ("state", Align::Left),
            ("sessions", Align::Right),
            ("share", Align::Right),
            ("meaning", Align::Left),
        ],
        Some(3),
    );
    for state in ConnState::ALL {
        let n = s.sessions_in_state(state);
        if n > 0 {
            t.row(vec![
                state.as_str().into(),
                count(n),
                percent(n, total),
                state.meaning().into(),
            ]);
        }
    }
    out.table(t);

    out.line("  By end reason".into());
    let mut t = Table::new(
        &[
            ("end_reason", Align::Left),
            ("sessions", Align::Right),
            ("share", Align::Right),
        ],
        None,
    );
    for reason in END_REASONS {
        let n = s.sessions_ended_by(reason);
        if n > 0 {
            t.row(vec![reason.as_str().into(), count(n), percent(n, total)]);
        }
    }
    out.table(t);

    // The share is of what the table is ranked by, and stands beside it: after the IP bytes
    // in the table by bytes.
    let service_table = |rows: Vec<(&'static str, Traffic)>, unnamed: Option<u64>, by_bytes| {
        let mut columns = [
            ("service", Align::Left),
            ("sessions", Align::Right),
            ("share", Align::Right),
            ("IP bytes", Align::Right),
        ];
        if by_bytes {
            columns.swap(2, 3);
        }
        let mut t = Table::new(&columns, Some(0));
        for (name, traffic) in rows {
            let share = if by_bytes {
                percent(traffic.ip_bytes, s.sessions.ip_bytes)
            } else {
                percent(traffic.sessions, total)
            };
            let mut row = vec![
                clean(name),
                count(traffic.sessions),
                share,
                bytes(traffic.ip_bytes),
            ];
            if by_bytes {
                row.swap(2, 3);
            }
            t.row(row);
        }
        if let Some(n) = unnamed.filter(|n| *n > 0) {
            t.row(vec![
                "(unknown)".into(),
                count(n),
                percent(n, total),
                "-".into(),
            ]);
        }
        t
    };
    let services = s.by_service.len();
    let more = if services > TOP_N {
        format!(" (top {TOP_N} of {services})")
    } else {
        String::new()
    };
    out.line(format!("  By service{more}"));
    out.table(service_table(
        s.top_services_by_sessions(TOP_N),
        Some(s.sessions_without_service()),
        false,
    ));
    if services > 1 {
        out.line(format!("  Top services by bytes{more}"));
        out.table(service_table(s.top_services_by_bytes(TOP_N), None, true));
    }

    let top = s.talkers.top(TOP_N);
    if !top.is_empty() {
        out.line("  Top talkers (IP bytes of the sessions a host took part in)".into());
        let mut t = Table::new(
            &[
                ("host", Align::Left),
                ("IP bytes", Align::Right),
                ("sessions", Align::Right),
            ],
            Some(0),
        );
        let mut approximate = false;
        for (addr, talker) in top {
            let mut b = bytes(talker.bytes);
            if talker.error > 0 {
                approximate = true;
                b.insert(0, '~');
            }
            t.row(vec![addr.to_string(), b, count(talker.sessions)]);
        }
        out.table(t);
        if approximate {
            let note = format!(
                "~ marks estimates: more than {} hosts were seen, so counts of hosts that \
                 entered the table late are upper bounds (sessions are lower bounds).",
                count(s.talkers.capacity() as u64)
            );
            out.wrapped(4, &note, Style::Dim);
        }
    }
}

fn tracker_section(out: &mut Out, s: &CaptureSummary) {
    out.heading("Session table");
    out.field("Started", &count(s.tracker.sessions_started), Style::Plain);
    out.field("Peak live", &count(s.tracker.peak_live), Style::Plain);
    if s.tracker.evicted == 0 {
        out.field("Evicted", "0", Style::Plain);
    } else {
        out.field("Evicted", &count(s.tracker.evicted), Style::Error);
        let warning = format!(
            "WARNING: {} sessions were evicted to stay under the live-session cap. Their rows \
             end early (end_reason=evicted) and any later packets started new sessions, so \
             counts for them are split. Raise --max-sessions if memory allows.",
            count(s.tracker.evicted)
        );
        out.wrapped(2, &warning, Style::Error);
    }
    if s.tracker.bad_checksum_packets > 0 {
        out.field(
            "Bad checksums",
            &count(s.tracker.bad_checksum_packets),
            Style::Plain,
        );
        out.wrapped(
            2,
            "--verify-checksums was given: these packets were not counted in their sessions \
             (history C/c marks TCP and UDP ones), as Zeek does without -C.",
            Style::Dim,
        );
    }
    if s.tracker.unattributed_packets > 0 {
        out.field(
            "Later IP fragments",
            &count(s.tracker.unattributed_packets),
            Style::Plain,
        );
        out.wrapped(
            2,
            "Non-first IP fragments cut by the snaplen cannot be reassembled and carry no \
             ports, so they are not counted in any session's packets or bytes.",
            Style::Dim,
        );
    }
    fragments_lines(out, s);
    anomalies_lines(out, s);
}

/// Totals of the sessions' `anomalies` column.
fn anomalies_lines(out: &mut Out, s: &CaptureSummary) {
    if s.sessions_with_anomalies == 0 {
        return;
    }
    out.field(
        "Anomalies",
        &format!("{} sessions", count(s.sessions_with_anomalies)),
        Style::Warn,
    );
    let totals: Vec<String> = s
        .anomalies
        .entries()
        .iter()
        .filter(|&&(_, n)| n > 0)
        .map(|&(name, n)| format!("{name} {}", count(u64::from(n))))
        .collect();
    out.wrapped(4, &totals.join(", "), Style::Plain);
    out.wrapped(
        2,
        "Evasion signs (overlaps with other bytes, TTL changes, injected RSTs...): see the \
         anomalies column of sessions.csv and docs/hostile-input.md.",
        Style::Dim,
    );
}

fn fragments_lines(out: &mut Out, s: &CaptureSummary) {
    let f = &s.fragments;
    if f.fragments == 0 && f.cut_by_snaplen == 0 {
        return;
    }
    out.field(
        "IP fragments",
        &format!(
            "{} reassembled into {} datagrams",
            count(f.fragments.saturating_sub(f.fragments_lost)),
            count(f.reassembled)
        ),
        Style::Plain,
    );
    let incomplete = f.timed_out + f.evicted + f.malformed + f.pending;
    if f.fragments_lost > 0 {
        out.field(
            "  incomplete",
            &format!(
                "{} datagrams ({} fragments)",
                count(incomplete),
                count(f.fragments_lost)
            ),
            Style::Warn,
        );
        let detail = format!(
            "{} timed out (--frag-timeout), {} evicted (--frag-memory), {} malformed, {} still \
             pending at the end. Their fragments are not counted in any session.",
            count(f.timed_out),
            count(f.evicted),
            count(f.malformed),
            count(f.pending)
        );
        out.wrapped(4, &detail, Style::Dim);
    }
    if f.overlapping > 0 {
        out.field(
            "  overlapping",
            &format!(
                "{} fragments, {} with other bytes",
                count(f.overlapping),
                count(f.overlapping_different)
            ),
            if f.overlapping_different > 0 {
                Style::Warn
            } else {
                Style::Plain
            },
        );
    }
    if f.cut_by_snaplen > 0 {
        out.field(
            "  snaplen-cut",
            &format!("{} fragments (not reassembled)", count(f.cut_by_snaplen)),
            Style::Plain,
        );
    }
}

fn errors_section(out: &mut Out, s: &CaptureSummary) {
    if s.errors().next().is_none() {
        return;
    }
    out.heading("Errors");
    let errors: Vec<(String, String)> = s.errors().map(|(f, e)| (clean(f), clean(e))).collect();
    for (file, error) in errors {
        out.wrapped(
            2,
            &format!("{file}: reading stopped early: {error}"),
            Style::Error,
        );
    }
}

/// Cuts `text` to `width` visible characters (ANSI colour sequences do not count).
/// Hosts shown in the "Hidden sessions" section, and patterns per host.
const HIDDEN_HOSTS: usize = 20;
const HIDDEN_PATTERNS_PER_HOST: usize = 8;

/// Renders the "Hidden sessions" section: per host, its hidden patterns (beacons first, then by
/// score), with the allow-listed ones apart. Same width and colour promises as [`render`].
pub fn render_hidden(report: &HiddenReport, opts: &TerminalOptions) -> String {
    let mut out = Out {
        lines: Vec::new(),
        opts: *opts,
    };
    hidden_section(&mut out, report);
    let mut text = String::new();
    for line in &out.lines {
        text.push_str(&fit(line, opts.width));
        text.push('\n');
    }
    text
}

fn hidden_section(out: &mut Out, report: &HiddenReport) {
    out.lines.push(String::new());
    out.heading("Hidden sessions");
    let shown: Vec<&HiddenPattern> = report.shown().collect();
    let (allowed, flagged): (Vec<&HiddenPattern>, Vec<&HiddenPattern>) =
        shown.iter().partition(|p| p.allowed);
    let beacons = flagged
        .iter()
        .filter(|p| p.kind == PatternKind::Beacon)
        .count();
    out.field(
        "Patterns",
        &format!(
            "{}  ({} beacon-like, {} allow-listed)",
            count(shown.len() as u64),
            count(beacons as u64),
            count(allowed.len() as u64)
        ),
        if beacons > 0 {
            Style::Warn
        } else {
            Style::Plain
        },
    );
    if report.sessions_untracked > 0 {
        out.field(
            "Untracked",
            &format!(
                "{} sessions beyond the pattern table's cap (labelled per session only)",
                count(report.sessions_untracked)
            ),
            Style::Warn,
        );
    }
    // Hosts in the order of their first (most important) pattern; the first few are shown, all
    // are counted (a set: a capture can have hundreds of thousands of patterns).
    let mut seen = std::collections::HashSet::new();
    let mut hosts: Vec<std::net::IpAddr> = Vec::new();
    for p in &flagged {
        if seen.insert(p.host) && hosts.len() < HIDDEN_HOSTS {
            hosts.push(p.host);
        }
    }
    let host_count = seen.len();
    for host in &hosts {
        let mine: Vec<&&HiddenPattern> = flagged.iter().filter(|p| p.host == *host).collect();
        out.line(format!(
            "  Host {host}: {}",
            plural(mine.len() as u64, "pattern", "patterns")
        ));
        out.table(hidden_table(
            mine.iter().take(HIDDEN_PATTERNS_PER_HOST).map(|p| **p),
        ));
        if mine.len() > HIDDEN_PATTERNS_PER_HOST {
            out.line(format!(
                "    ... and {} more (see hidden.csv)",
                count((mine.len() - HIDDEN_PATTERNS_PER_HOST) as u64)
            ));
        }
    }
    if host_count > HIDDEN_HOSTS {
        out.line(format!(
            "  ... and {} more hosts (see hidden.csv)",
            count((host_count - HIDDEN_HOSTS) as u64)
        ));
    }
    if !allowed.is_empty() {
        out.line("  Known good (allow-list)".into());
        out.table(hidden_table(
            allowed.iter().take(HIDDEN_PATTERNS_PER_HOST).copied(),
        ));
    }
}

fn hidden_table<'a>(patterns: impl Iterator<Item = &'a HiddenPattern>) -> Table {
    let mut t = Table::new(
        &[
            ("kind", Align::Left),
            ("destination", Align::Left),
            ("service", Align::Left),
            ("sessions", Align::Right),
            ("period", Align::Right),
            ("jitter", Align::Right),
            ("score", Align::Right),
            ("why", Align::Left),
        ],
        Some(7),
    );
    for p in patterns {
        t.row(vec![
            p.kind.as_str().to_string(),
            clean(&p.destination_label()),
            clean(&p.service),
            count(p.sessions),
            p.period_s.map_or("-".into(), |s| format!("{s:.1} s")),
            p.jitter
                .map_or("-".into(), |j| format!("{:.0}%", j * 100.0)),
            format!("{:.2}", p.score),
            clean(&p.reason),
        ]);
    }
    t
}

/// "1 pattern", "2 patterns".
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut visible = 0;
    let mut chars = text.chars().peekable();
    let mut cut = false;
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for e in chars.by_ref() {
                out.push(e);
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        if visible == width {
            cut = true;
            continue;
        }
        out.push(c);
        visible += 1;
    }
    if cut && text.contains('\x1b') && !out.ends_with("\x1b[0m") {
        out.push_str("\x1b[0m");
    }
    out
}

/// Cuts a cell to `width` characters, marking the cut with "...".
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width <= 3 {
        return text.chars().take(width).collect();
    }
    let mut s: String = text.chars().take(width - 3).collect();
    s.push_str("...");
    s
}

/// Replaces control characters (escape sequences, newlines) in text that came from inputs.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub(crate) fn utc(ts: Timestamp) -> String {
    let secs = ts.0.div_euclid(1_000_000_000);
    let nanos = ts.0.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => ts.to_string(),
    }
}

/// A duration for people: "0.211484 s", "3m 05.2s", "2h 03m 05s", "3d 04h 05m".
pub(crate) fn duration(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if secs < 60 {
        format!("{}.{:06} s", secs, nanos % 1_000_000_000 / 1_000)
    } else if secs < 3_600 {
        format!("{m}m {s:02}.{}s", nanos % 1_000_000_000 / 100_000_000)
    } else if secs < 86_400 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{d}d {h:02}h {m:02}m")
    }
}

/// A configured number of seconds as given: "60 s", "0.5 s".
fn seconds(value: std::time::Duration) -> String {
    format!("{} s", value.as_secs_f64())
}

/// An integer with thousands separators: 1,234,567.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let share = part as f64 * 100.0 / whole as f64;
    // A few sessions in a million are not none, and all but a few are not all.
    if part > 0 && share < 0.05 {
        "<0.1%".into()
    } else if part < whole && share >= 99.95 {
        ">99.9%".into()
    } else {
        format!("{share:.1}%")
    }
}

/// Bytes in binary units, exact below 1 KiB: "512 B", "4.9 KiB", "1.21 GiB".
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("EiB");
    if value < 10.0 {
        format!("{value:.2} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

pub(crate) fn link_name(link: LinkType) -> String {
    match link {
        LinkType::NULL => "null".into(),
        LinkType::ETHERNET => "ethernet".into(),
        LinkType::PPP => "ppp".into(),
        LinkType::RAW_DLT12 | LinkType::RAW_DLT14 | LinkType::RAW => "raw".into(),
        LinkType::PPP_HDLC => "ppp-hdlc".into(),
        LinkType::PPP_ETHER => "pppoe".into(),
        LinkType::IEEE802_11 => "802.11".into(),
        LinkType::LOOP => "loop".into(),
        LinkType::LINUX_SLL => "sll".into(),
        LinkType::IEEE802_11_RADIOTAP => "radiotap".into(),
        LinkType::IPV4 => "ipv4".into(),
        LinkType::IPV6 => "ipv6".into(),
        LinkType::LINUX_SLL2 => "sll2".into(),
        LinkType::SLIP => "slip".into(),
        LinkType::ATM_RFC1483 => "atm-rfc1483".into(),
        LinkType::C_HDLC => "cisco-hdlc".into(),
        LinkType::PFLOG => "pflog".into(),
        LinkType::PPI => "ppi".into(),
        LinkType::NFLOG => "nflog".into(),
        LinkType::IPOIB => "ipoib".into(),
        LinkType::PKTAP => "pktap".into(),
        LinkType(n) => format!("dlt {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::RawPacket;
    use crate::session::{
        DirectionStats, EndReason, Endpoint, History, ServiceEvidence, SessionRecord, TrackerStats,
        Uid,
    };

    fn session(
        orig: &str,
        resp: &str,
        proto: Proto,
        state: ConnState,
        service: Option<&'static str>,
    ) -> SessionRecord {
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::from_secs_nanos(1_362_692_526, 0),
            last: Timestamp::from_secs_nanos(1_362_692_527, 0),
            orig: Endpoint {
                addr: orig.parse().unwrap(),
                port: 40000,
            },
            resp: Endpoint {
                addr: resp.parse().unwrap(),
                port: 80,
            },
            proto,
            ip_proto: 6,
            orig_stats: DirectionStats {
                pkts: 7,
                ip_bytes: 512,
                bytes: 136,
            },
            resp_stats: DirectionStats {
                pkts: 7,
                ip_bytes: 5379,
                bytes: 5007,
            },
            conn_state: state,
            history: History::default(),
            missed_bytes: 0,
            service,
            service_evidence: ServiceEvidence::Port,
            end_reason: EndReason::Closed,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    fn sample() -> CaptureSummary {
        let mut s = CaptureSummary::new();
        let frame = [0u8; 100];
        s.on_file_start("/captures/a very long directory name/with spaces/trace-2013-03-07.pcap");
        // 2013-03-07 21:42:06 UTC and 1 h 2 min 3 s later.
        for (i, secs) in [1_362_692_526i64, 1_362_696_249].into_iter().enumerate() {
            let p = RawPacket {
                number: i as u64 + 1,
                ts: Timestamp::from_secs_nanos(secs, 500_000),
                link: LinkType::ETHERNET,
                data: &frame,
                wire_len: 1514,
            };
            s.on_packet(&p);
            s.on_decoded();
        }
        for _ in 0..1234 {
            s.on_packet(&RawPacket {
                number: 3,
                ts: Timestamp::from_secs_nanos(1_362_692_600, 0),
                link: LinkType::ETHERNET,
                data: &frame,
                wire_len: 100,
            });
            s.on_skip(SkipReason::Arp);
        }
        s.on_skip(SkipReason::TooManyEncapsulations);
        s.on_file_end(
            1236,
            Some("pcap record at byte 99\x1b[31m is cut short".into()),
        );
        s.on_session(&session(
            "10.0.0.1",
            "192.0.2.80",
            Proto::Tcp,
            ConnState::SF,
            Some("http"),
        ));
        s.on_session(&session(
            "10.0.0.1",
            "192.0.2.81",
            Proto::Tcp,
            ConnState::REJ,
            None,
        ));
        s.on_session(&session(
            "2001:db8::1",
            "2001:db8::53",
            Proto::Udp,
            ConnState::SF,
            Some("dns"),
        ));
        s.set_tracker_stats(TrackerStats {
            sessions_started: 3,
            evicted: 4321,
            peak_live: 2,
            ..TrackerStats::default()
        });
        s
    }

    #[test]
    fn shows_the_numbers_and_meanings() {
        let text = render(
            &sample(),
            &TerminalOptions {
                width: 120,
                color: false,
            },
        );
        for expected in [
            "2013-03-07 21:42:06.000500 UTC",
            "2013-03-07 22:44:09.000500 UTC",
            "1h 02m 03s",
            "1,236",
            "ARP (not IP)",
            "too many nested tunnels",
            "1,235",
            "attempt rejected",
            "normal establishment and termination",
            "http",
            "dns",
            "(unknown)",
            "10.0.0.1",
            "2001:db8::53",
            "4,321",
            "WARNING",
            "--max-sessions",
            "cut short",
            "closed",
            "ethernet",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // Only nonzero skip reasons are listed.
        assert!(!text.contains(SkipReason::BadIpVersion.label()));
        // The hostile escape in the error message was neutralised.
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn lines_fit_the_width_without_colour() {
        for width in [40, 60, 80, 100] {
            let text = render(
                &sample(),
                &TerminalOptions {
                    width,
                    color: false,
                },
            );
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
            assert!(!text.contains('\x1b'));
        }
    }

    #[test]
    fn many_hosts_show_the_first_twenty_and_count_the_rest() {
        use crate::analysis::hidden::{HiddenAnalyzer, HiddenOptions, SessionFacts};
        let mut analyzer = HiddenAnalyzer::new(HiddenOptions::default());
        let mut tag = Vec::new();
        // 25,000 hosts, each with one DNS lookup (a pattern each): the section stays quick.
        for i in 0..25_000u32 {
            let host = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let mut r = session(&host, "10.255.0.53", Proto::Udp, ConnState::SF, None);
            r.resp.port = 53;
            r.ip_proto = 17;
            tag.clear();
            analyzer.observe(&SessionFacts::from_record(&r), &mut tag);
        }
        let report = analyzer.finish();
        let text = render_hidden(
            &report,
            &TerminalOptions {
                width: 120,
                color: false,
            },
        );
        assert_eq!(text.matches("  Host ").count(), HIDDEN_HOSTS, "{text}");
        assert!(
            text.contains("... and 24,980 more hosts (see hidden.csv)"),
            "{text}"
        );
    }

    #[test]
    fn hidden_section_lists_beacons_first_per_host_within_the_width() {
        use crate::analysis::hidden::{HiddenAnalyzer, HiddenOptions, SessionFacts};
        let mut analyzer = HiddenAnalyzer::new(HiddenOptions::default());
        let mut tag = Vec::new();
        let mut observe = |start_s: i64, resp: &str, port: u16, proto: Proto, ip_proto: u8| {
            let mut r = session("10.0.0.5", resp, proto, ConnState::SF, None);
            r.start = Timestamp(start_s * 1_000_000_000);
            r.last = r.start;
            r.resp.port = port;
            r.ip_proto = ip_proto;
            tag.clear();
            analyzer.observe(&SessionFacts::from_record(&r), &mut tag);
        };
        for i in 0..20 {
            observe(1000 + i * 60, "203.0.113.9", 8443, Proto::Tcp, 6);
        }
        observe(1000, "10.0.0.53", 53, Proto::Udp, 17);
        let report = analyzer.finish();
        for width in [40, 100] {
            let text = render_hidden(
                &report,
                &TerminalOptions {
                    width,
                    color: false,
                },
            );
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
            assert!(text.contains("Hidden sessions"));
            assert!(text.contains("Host 10.0.0.5: 2 patterns"), "{text}");
            let beacon = text.find("beacon").unwrap();
            let dns = text.find("name lookup").unwrap();
            assert!(beacon < dns, "{text}");
        }
        let wide = render_hidden(
            &report,
            &TerminalOptions {
                width: 200,
                color: false,
            },
        );
        assert!(
            wide.contains("periodic: 20 sessions every 60.0 s, jitter 0%"),
            "{wide}"
        );
    }

    #[test]
    fn the_services_by_bytes_table_gives_each_its_share_of_the_bytes() {
        let mut s = CaptureSummary::new();
        // One HTTP session of 8,000 + 2,000 IP bytes, three DNS sessions of 100 + 200 each.
        let mut http = session(
            "10.0.0.1",
            "192.0.2.80",
            Proto::Tcp,
            ConnState::SF,
            Some("http"),
        );
        http.orig_stats.ip_bytes = 8_000;
        http.resp_stats.ip_bytes = 2_000;
        s.on_session(&http);
        for _ in 0..3 {
            let mut dns = session(
                "10.0.0.1",
                "192.0.2.53",
                Proto::Udp,
                ConnState::SF,
                Some("dns"),
            );
            dns.orig_stats.ip_bytes = 100;
            dns.resp_stats.ip_bytes = 200;
            s.on_session(&dns);
        }
        let text = render(
            &s,
            &TerminalOptions {
                width: 120,
                color: false,
            },
        );
        let words = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let by_bytes = &text[text.find("Top services by bytes").unwrap()..];
        let rows: Vec<Vec<String>> = by_bytes.lines().skip(1).take(3).map(words).collect();
        // 10,000 of 10,900 bytes and 900 of them; by sessions the shares are 25% and 75%.
        assert_eq!(
            rows[0],
            ["service", "sessions", "IP", "bytes", "share"],
            "{text}"
        );
        assert_eq!(rows[1], ["http", "1", "9.77", "KiB", "91.7%"], "{text}");
        assert_eq!(rows[2], ["dns", "3", "900", "B", "8.3%"], "{text}");
        let by_sessions = &text[text.find("By service").unwrap()..];
        let rows: Vec<Vec<String>> = by_sessions.lines().skip(1).take(3).map(words).collect();
        assert_eq!(rows[1], ["dns", "3", "75.0%", "900", "B"], "{text}");
        assert_eq!(rows[2], ["http", "1", "25.0%", "9.77", "KiB"], "{text}");
    }

    #[test]
    fn a_share_rounds_to_none_or_all_only_when_it_is() {
        assert_eq!(percent(0, 24_503), "0.0%");
        assert_eq!(percent(1, 24_503), "<0.1%");
        assert_eq!(percent(13, 24_503), "0.1%");
        assert_eq!(percent(2_370, 24_503), "9.7%");
        assert_eq!(percent(24_502, 24_503), ">99.9%");
        assert_eq!(percent(24_503, 24_503), "100.0%");
        assert_eq!(percent(1, 0), "-");
    }

    #[test]
    fn a_destination_name_that_only_spells_its_address_is_not_repeated() {
        let pattern = |dest: &str, name: Option<&str>| HiddenPattern {
            host: "10.0.0.5".parse().unwrap(),
            dest: dest.parse().unwrap(),
            dest_addresses: 1,
            name: name.map(str::to_string),
            ip_proto: 6,
            port: 80,
            service: "http".into(),
            kind: PatternKind::Beacon,
            sessions: 9,
            first: Timestamp(0),
            last: Timestamp(0),
            period_s: Some(20.0),
            jitter: Some(0.0),
            orig_bytes: 0,
            resp_bytes: 0,
            score: 0.9,
            reason: "periodic".into(),
            allowed: false,
            starts_nanos: Vec::new(),
        };
        let patterns = [
            pattern("192.0.2.90", Some("192.0.2.90")),
            pattern("2001:db8::9", Some("[2001:db8::9]")),
            pattern("192.0.2.91", Some("updates.example.com")),
            pattern("192.0.2.92", Some("192.0.2.93")),
        ];
        let mut out = Out {
            lines: Vec::new(),
            opts: TerminalOptions {
                width: 200,
                color: false,
            },
        };
        out.table(hidden_table(patterns.iter()));
        let text = out.lines.join("\n");
        assert!(text.contains("beacon  192.0.2.90 tcp/80 "), "{text}");
        assert!(text.contains("beacon  2001:db8::9 tcp/80 "), "{text}");
        assert!(
            text.contains("updates.example.com (192.0.2.91) tcp/80"),
            "{text}"
        );
        // Another address as the name is information (a Host header naming a different host).
        assert!(text.contains("192.0.2.93 (192.0.2.92) tcp/80"), "{text}");
    }

    #[test]
    fn colour_only_when_asked_and_width_still_holds() {
        let text = render(
            &sample(),
            &TerminalOptions {
                width: 70,
                color: true,
            },
        );
        assert!(text.contains("\x1b["));
        for line in text.lines() {
            let visible = strip_ansi(line).chars().count();
            assert!(visible <= 70, "{line:?}");
        }
    }

    #[test]
    fn empty_summary_renders() {
        let text = render(&CaptureSummary::new(), &TerminalOptions::default());
        assert!(text.contains("no packets"));
        assert!(text.contains("Evicted"));
        assert!(!text.contains("WARNING"));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.00 GiB");
        assert_eq!(duration(211_484_000), "0.211484 s");
        assert_eq!(duration(185_200_000_000), "3m 05.2s");
        assert_eq!(duration(90_061_000_000_000), "1d 01h 01m");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(fit("abcdef", 3), "abc");
        assert_eq!(truncate("abcdefghij", 8), "abcde...");
    }

    fn strip_ansi(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for e in chars.by_ref() {
                    if e.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
