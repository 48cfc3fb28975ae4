//! The `sessionscope` command line: parses arguments into typed options, runs the pipeline,
//! prints errors once at the top, and maps outcomes to documented exit codes.

// Capture bytes and user input must never reach a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use clap::{Parser, Subcommand, ValueEnum};
use sessionscope::analysis::hidden::{
    AllowList, Cidr, HiddenAnalyzer, HiddenOptions, Initiator, SessionFacts,
};
use sessionscope::config::{FragmentConfig, MemoryBudget, ServerPorts, TrackerConfig};
use sessionscope::pipeline::{self, AnalyzeOptions};
use sessionscope::report;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod live_cli;

/// Exit codes (also in README.md).
mod exit {
    /// Every input was read to its end and every output written.
    pub const OK: u8 = 0;
    /// An input was missing, not a capture, or cut off; what was read is still reported.
    pub const INPUT_ERROR: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const _USAGE: u8 = 2;
    /// An output could not be written (directory not creatable, disk full).
    pub const OUTPUT_ERROR: u8 = 3;
    /// `live` on a build without the `live` feature (the message says how to build it).
    #[cfg(not(feature = "live"))]
    pub const NO_LIVE_FEATURE: u8 = 2;
    /// `live` could not capture: no permission, unknown interface, bad filter.
    #[cfg(feature = "live")]
    pub const CAPTURE_ERROR: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "sessionscope",
    version,
    about = "Passive network session analyser: captures in, Zeek-grade sessions out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Analyse capture files (pcap or pcapng; `-` reads standard input) into sessions.
    Analyze(Box<AnalyzeArgs>),
    /// Capture from a network interface (needs the `live` build feature) and write sessions as
    /// they end, until Ctrl-C, --duration or --packets.
    Live(Box<live_cli::LiveArgs>),
}

#[derive(Parser, Debug)]
struct AnalyzeArgs {
    /// Capture files, directories (the pcap/pcapng files directly in them, found by content)
    /// and glob patterns (quoted: `'caps/*.pcap'`), read as one capture ordered by each file's
    /// first packet time; `-` for standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Seconds between one file's last packet and the next file's first above which the
    /// summary reports a gap in the capture set.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    gap: f64,
    /// Directory for sessions.csv (or the --format files) and report.html (created if missing).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    tracker: TrackerArgs,
    /// Reassemble TCP sessions and write each direction's bytes to a file in DIR, named like
    /// tcpflow's plus the session uid: `<src ip>.<src port>-<dst ip>.<dst port>-<uid>`.
    #[arg(long, value_name = "DIR")]
    write_streams: Option<PathBuf>,
    /// Bytes each TCP direction may hold ahead of a hole when reassembling; beyond it the
    /// stream is truncated (bytes skipped, and said so). Default 1 MiB, or --memory's share.
    #[arg(long, value_name = "BYTES")]
    stream_memory: Option<usize>,
    /// Our hosts (CIDR, repeatable or comma-separated): hidden patterns are reported for
    /// originators inside these ranges, and their broadcast addresses count as broadcast.
    #[arg(long = "local-net", value_name = "CIDR", value_delimiter = ',')]
    local_net: Vec<String>,
    /// Hidden patterns scoring below this (0..1) are left out of hidden.csv and the summary.
    #[arg(long, default_value_t = 0.0, value_name = "SCORE")]
    min_score: f64,
    /// Hidden patterns with fewer sessions are left out of hidden.csv and the summary.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_count: u64,
    /// Known-good patterns, shown apart: lines of `HOST DESTINATION [PORT]` (`*` for any;
    /// DESTINATION an address, CIDR range or server name); `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    allow_list: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Session workers (default: the cores there are). Sessions are sharded by address pair;
    /// the output is the same as with 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Colour in the terminal summary.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Session export formats written with --out: csv, jsonl, parquet (comma-separated or
    /// repeated).
    #[arg(long, value_name = "LIST", default_value = "csv")]
    format: Vec<String>,
    /// The `sensor` column's value (letters, digits, `.`, `_`, `-`); default: the name of the
    /// directory holding the first input (`stdin` for `-`).
    #[arg(long, value_name = "NAME")]
    sensor: Option<String>,
    /// With `--format parquet`: write DIR/sessions/sensor=NAME/date=YYYY-MM-DD/part-ID.parquet,
    /// a Hive-partitioned dataset that further runs append to (re-running an input replaces
    /// its own files).
    #[arg(long)]
    partition: bool,
}

/// Session tracking options shared by `analyze` and `live`.
#[derive(clap::Args, Debug)]
struct TrackerArgs {
    /// Most sessions tracked at once; beyond it the longest idle session is ended early.
    /// Default 1,000,000, or --memory's share.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// One memory budget in MiB for sessions and their reassembly buffers (3/4), IP fragments
    /// (1/8) and sessions.csv's sort buffer (1/8); explicit --max-sessions, --stream-memory
    /// and --frag-memory still win. See docs/hostile-input.md.
    #[arg(long, value_name = "MIB")]
    memory: Option<usize>,
    /// Seconds without a packet after which a TCP session ends (Zeek: 300).
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    tcp_inactivity: f64,
    /// Seconds without a packet after which a UDP session ends (Zeek: 60).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    udp_inactivity: f64,
    /// Seconds without a packet after which an ICMP session ends (Zeek: 60).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    icmp_inactivity: f64,
    /// Seconds without a packet after which a session of another IP protocol ends (Zeek: 60).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    other_inactivity: f64,
    /// Seconds a TCP session lingers after FIN both ways (Zeek: 5).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    tcp_close_delay: f64,
    /// Seconds a TCP session lingers after a RST (Zeek: 5).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    tcp_reset_delay: f64,
    /// Seconds a UDP DNS session (port 53, 137, 5353, 5355) may idle before it ends (Zeek: 10).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    dns_session_timeout: f64,
    /// Seconds after its first fragment that an incomplete IP datagram is given up (Zeek's
    /// frag_timeout: 300); 0 keeps it until the fragment memory limit needs the room.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    frag_timeout: f64,
    /// Most memory, in MiB, held for incomplete IP datagrams; beyond it the oldest are given up.
    /// Default 64, or --memory's share.
    #[arg(long, value_name = "MIB")]
    frag_memory: Option<usize>,
    /// Verify IP/TCP/UDP/ICMP checksums and leave bad packets out of sessions, as Zeek does
    /// without -C (off: offloading hosts record their own packets with wrong checksums).
    #[arg(long)]
    verify_checksums: bool,
    /// Ports that mark the server of a session whose start was not captured: a comma-separated
    /// union of `zeek` (Zeek's default set), `tunnels`, `none`, `tcp/PORT`, `udp/PORT`.
    #[arg(long, default_value = "zeek", value_name = "LIST")]
    server_ports: String,
    /// Do not read sessions' bytes to name their service (TLS, HTTP, DNS, SSH...): ports only.
    #[arg(long)]
    no_content: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag} must be a non-negative number of seconds, got {value}"))
}

/// Error text names files, and file names can hold escape sequences or newlines: shown as `?`
/// so a hostile name cannot drive the terminal or forge extra lines (as the summary does).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// With `--features jemalloc`: thread-local caches instead of glibc's locked arenas.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (`_RJEM_MALLOC_CONF` in the environment still overrides them,
/// e.g. `thp:default` or `narenas:8`): its memory in transparent huge pages, and one arena for
/// all threads. Huge pages: a run touches ~100 MB once, 4 KiB page by 4 KiB page otherwise
/// (29,000 page faults on the 1 GiB benchmark capture against 2,300, and 7% of one thread's
/// time; max RSS grows by 20-40 MB, huge pages are touched whole; "ninth session"). One arena:
/// what one thread frees (the calling thread frees every session a worker allocated) is reused
/// by the others instead of each thread's arena faulting in fresh memory, and fresh memory is
/// dear where two vCPUs fault at once. Two threads: max RSS 175 -> 141 MB, CPU time -6-10%;
/// the threads' caches keep the arena's lock off the per-packet path ("thirteenth session").
#[cfg(feature = "jemalloc")]
// SAFETY: jemalloc reads this C string (`const char *malloc_conf`, a weak symbol it lets the
// program define) once, at its initialisation; the bytes are static and NUL-terminated.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 41] = b"thp:always,metadata_thp:always,narenas:1\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => match run_analyze(*args) {
            Ok(code) => ExitCode::from(code),
            Err((code, message)) => {
                eprintln!("sessionscope: {}", printable(&message));
                ExitCode::from(code)
            }
        },
        Command::Live(args) => match live_cli::run(*args) {
            Ok(code) => ExitCode::from(code),
            Err((code, message)) => {
                eprintln!("sessionscope: {message}");
                ExitCode::from(code)
            }
        },
    }
}

impl TrackerArgs {
    fn config(&self) -> Result<TrackerConfig, (u8, String)> {
        let args = self;
        let usage = |m: String| (2u8, m);
        let budget = args.memory.map(MemoryBudget::split);
        let defaults = TrackerConfig::default();
        let max_sessions = args
            .max_sessions
            .or(budget.map(|b| b.max_sessions))
            .unwrap_or(defaults.max_sessions);
        let frag_bytes = match (args.frag_memory, budget) {
            (Some(mib), _) => mib.saturating_mul(1 << 20),
            (None, Some(b)) => b.fragment_bytes,
            (None, None) => defaults.fragments.max_bytes,
        };
        Ok(TrackerConfig {
            tcp_inactivity: seconds(args.tcp_inactivity, "tcp-inactivity").map_err(usage)?,
            udp_inactivity: seconds(args.udp_inactivity, "udp-inactivity").map_err(usage)?,
            icmp_inactivity: seconds(args.icmp_inactivity, "icmp-inactivity").map_err(usage)?,
            other_inactivity: seconds(args.other_inactivity, "other-inactivity").map_err(usage)?,
            tcp_close_delay: seconds(args.tcp_close_delay, "tcp-close-delay").map_err(usage)?,
            tcp_reset_delay: seconds(args.tcp_reset_delay, "tcp-reset-delay").map_err(usage)?,
            dns_session_timeout: seconds(args.dns_session_timeout, "dns-session-timeout")
                .map_err(usage)?,
            max_sessions: max_sessions.max(1),
            verify_checksums: args.verify_checksums,
            server_ports: ServerPorts::parse(&args.server_ports)
                .map_err(|e| usage(format!("--server-ports: {e}")))?,
            classify_content: !args.no_content,
            fragments: FragmentConfig {
                timeout: seconds(args.frag_timeout, "frag-timeout").map_err(usage)?,
                max_bytes: frag_bytes,
                ..FragmentConfig::default()
            },
            content_reorder_bytes: budget
                .map_or(defaults.content_reorder_bytes, |b| b.stream_bytes),
        })
    }
}

fn run_analyze(args: AnalyzeArgs) -> Result<u8, (u8, String)> {
    let tracker = args.tracker.config()?;
    let streams = match &args.write_streams {
        Some(dir) => Some(pipeline::StreamOutput {
            writer: report::streams::SharedStreamWriter::create(dir).map_err(|e| {
                (
                    exit::OUTPUT_ERROR,
                    format!("{}: cannot write streams: {e}", dir.display()),
                )
            })?,
            limit_bytes: args
                .stream_memory
                .or(args
                    .tracker
                    .memory
                    .map(|m| MemoryBudget::split(m).stream_bytes))
                .unwrap_or(1 << 20),
        }),
        None => None,
    };
    let hidden_options = hidden_options(&args).map_err(|e| (2u8, e))?;
    let gap_threshold = seconds(args.gap, "gap").map_err(|e| (2u8, e))?;
    let capture_set = sessionscope::capture::set::expand(&args.inputs)
        .map_err(|e| (exit::INPUT_ERROR, e.to_string()))?;
    let sensor = match &args.sensor {
        Some(name) => {
            report::dataset::check_sensor_name(name)
                .map_err(|e| (2u8, format!("--sensor: {e}")))?;
            name.clone()
        }
        // The directory of the first file read (a sensor's rotated files share one).
        None => report::dataset::default_sensor(
            capture_set
                .files
                .first()
                .map_or(std::path::Path::new("-"), |f| f.path.as_path()),
        ),
    };
    let options = AnalyzeOptions {
        inputs: capture_set.paths(),
        tracker,
        progress: !args.no_progress,
        streams,
        threads: args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            usize::from,
        ),
    };

    let mut formats = Vec::new();
    for list in &args.format {
        for format in
            report::ExportFormat::parse_list(list).map_err(|e| (2u8, format!("--format: {e}")))?
        {
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
    }

    if args.partition && (!formats.contains(&report::ExportFormat::Parquet) || args.out.is_none()) {
        return Err((
            2u8,
            "--partition needs --format parquet and --out DIR".to_string(),
        ));
    }
    let csv_options = report::CsvOptions {
        sensor: sensor.clone(),
        partition: args.partition,
        remove_old_beside: options.threads > 1,
        max_rows_in_memory: args
            .tracker
            .memory
            .map_or(report::CsvOptions::default().max_rows_in_memory, |m| {
                MemoryBudget::split(m).order_rows
            }),
        ..report::CsvOptions::default()
    };
    let mut csv = match &args.out {
        Some(dir) => Some(
            std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    report::SessionCsvWriter::create_formats(dir, &csv_options, &formats)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| {
                    (
                        exit::OUTPUT_ERROR,
                        format!("{}: cannot write sessions.csv: {e}", dir.display()),
                    )
                })?,
        ),
        None => None,
    };
    let mut output_error: Option<String> = None;
    let mut report_data = args.out.as_ref().map(|_| report::ReportData::new());
    let mut hidden = HiddenAnalyzer::new(hidden_options);
    let mut tag = Vec::new();
    let mut outcome = pipeline::analyze(&options, &mut |record| {
        if let Some(data) = report_data.as_mut() {
            data.on_session(record);
        }
        tag.clear();
        let facts = SessionFacts::of_session(record);
        hidden.observe(&facts, &mut tag);
        if let Some(writer) = csv.as_mut()
            && output_error.is_none()
            && let Err(e) = writer.write_tagged(record, &tag)
        {
            output_error = Some(e.to_string());
        }
    });
    outcome.summary.capture_set = Some(sessionscope::analysis::CaptureSetInfo {
        directories: capture_set.directories,
        patterns: capture_set.patterns,
        skipped_files: capture_set.skipped_files,
        gap_threshold,
    });
    // With a spare core, the rows are sorted while the hidden-session verdicts are decided.
    let hidden = match csv.as_mut() {
        Some(writer) if options.threads > 1 => std::thread::scope(|scope| {
            let deciding = scope.spawn(move || hidden.finish());
            writer.sort_now();
            deciding
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        _ => hidden.finish(),
    };
    let (mut user_sessions, mut technology_sessions) = (0u64, 0u64);
    if let Some(mut writer) = csv.take() {
        writer.set_dataset_identity(&report::dataset::run_identity(
            &sensor,
            &outcome.summary.files,
        ));
        writer.write_beside_labels(options.threads > 1);
        let mut labeller = hidden.labeller();
        let result = writer.finish_labelled(&mut |tag, row, reason| {
            let initiator = labeller.label_into(tag, reason);
            let class = match initiator {
                Initiator::User => {
                    user_sessions += 1;
                    report::data::SessionClass::User
                }
                Initiator::Technology => {
                    technology_sessions += 1;
                    report::data::SessionClass::Technology
                }
            };
            // The start comes with the tag; the row's text only when the tag was unreadable.
            let start = labeller.last_start().or_else(|| row_start(row));
            if let (Some(data), Some(start)) = (report_data.as_mut(), start) {
                data.on_session_class(start, class);
            }
            initiator.as_str()
        });
        if let Err(e) = result {
            output_error.get_or_insert(e.to_string());
        }
    }
    if let Some(data) = report_data.as_mut() {
        data.hidden = Some(report::data::HiddenAnalysis::from_report(
            &hidden,
            user_sessions,
            technology_sessions,
        ));
    }
    if let Some(dir) = &args.out
        && output_error.is_none()
        && let Err(e) = report::hidden_csv::write(dir, &hidden)
    {
        output_error = Some(format!("hidden.csv: {e}"));
    }
    if let Some(dir) = &args.out
        && output_error.is_none()
        && let Err(e) = report::hidden_export::write_formats(dir, &hidden, &formats)
    {
        output_error = Some(format!("hidden patterns: {e}"));
    }
    if let (Some(dir), Some(data)) = (&args.out, &report_data)
        && let Err(e) = report::html::write_report(dir, &outcome.summary, data)
    {
        output_error.get_or_insert(format!("{}: {e}", report::html::REPORT_FILE_NAME));
    }

    let stream_error = options
        .streams
        .as_ref()
        .and_then(|s| s.writer.close().err())
        .map(|e| {
            let dir = args.write_streams.as_ref().map(|d| d.display().to_string());
            format!("{}: writing streams failed: {e}", dir.unwrap_or_default())
        });

    print_summary(&outcome.summary, args.color, Some(&hidden));

    for error in &outcome.input_errors {
        eprintln!("sessionscope: {}", printable(error));
    }
    if let Some(error) = output_error {
        let dir = args
            .out
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        return Err((
            exit::OUTPUT_ERROR,
            format!("{dir}: writing the output failed: {error}"),
        ));
    }
    if let Some(error) = stream_error {
        return Err((exit::OUTPUT_ERROR, error));
    }
    if !outcome.input_errors.is_empty() {
        return Ok(exit::INPUT_ERROR);
    }
    Ok(exit::OK)
}

/// Renders the summary to stdout.
fn print_summary(
    summary: &sessionscope::analysis::CaptureSummary,
    color: ColorChoice,
    hidden: Option<&sessionscope::analysis::hidden::HiddenReport>,
) {
    let color = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let width = terminal_width();
    let terminal = report::terminal::TerminalOptions { width, color };
    let mut text = report::terminal::render(summary, &terminal);
    if let Some(hidden) = hidden {
        text.push_str(&report::terminal::render_hidden(hidden, &terminal));
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The start time of a sessions.csv row (its first column, `ts`).
fn row_start(row: &[u8]) -> Option<sessionscope::capture::Timestamp> {
    let ts = std::str::from_utf8(row.split(|&b| b == b',').next()?).ok()?;
    let (secs, micros) = ts.split_once('.')?;
    let secs: i64 = secs.parse().ok()?;
    let micros: i64 = micros.parse().ok()?;
    Some(sessionscope::capture::Timestamp::from_micros(
        secs.checked_mul(1_000_000)?.checked_add(micros)?,
    ))
}

/// The hidden-session options, checked.
fn hidden_options(args: &AnalyzeArgs) -> Result<HiddenOptions, String> {
    check_hidden_options(
        &args.local_net,
        args.min_score,
        args.min_count,
        args.allow_list.as_ref(),
    )
}

/// `--local-net`, `--min-score`, `--min-count` and `--allow-list` (of `analyze` and `live`),
/// checked.
fn check_hidden_options(
    local_net: &[String],
    min_score: f64,
    min_count: u64,
    allow_list: Option<&PathBuf>,
) -> Result<HiddenOptions, String> {
    let local_nets = local_net
        .iter()
        .map(|n| Cidr::parse(n).map_err(|e| format!("--local-net: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !(0.0..=1.0).contains(&min_score) {
        return Err(format!(
            "--min-score must be between 0 and 1, got {min_score}"
        ));
    }
    let allow_list = match allow_list {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--allow-list {}: {e}", path.display()))?;
            AllowList::parse(&text).map_err(|e| format!("--allow-list {}: {e}", path.display()))?
        }
        None => AllowList::default(),
    };
    Ok(HiddenOptions {
        local_nets,
        min_score,
        min_sessions: min_count,
        allow_list,
    })
}

/// The summary's width in columns: $COLUMNS when set, else the terminal's own width when
/// stdout is one, else 100 (files and pipes).
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            terminal_size::terminal_size_of(std::io::stdout())
                .map(|(terminal_size::Width(w), _)| usize::from(w))
        })
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}
