//! The `sessionscope` command line: parses arguments into typed options, runs the pipeline,
//! prints errors once at the top, and maps outcomes to documented exit codes.

use clap::{Parser, Subcommand, ValueEnum};
use sessionscope::analysis::hidden::{
    AllowList, Cidr, HiddenAnalyzer, HiddenOptions, SessionFacts,
};
use sessionscope::config::{ServerPorts, TrackerConfig};
use sessionscope::pipeline::{self, AnalyzeOptions};
use sessionscope::report;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    Analyze(AnalyzeArgs),
}

#[derive(Parser, Debug)]
struct AnalyzeArgs {
    /// Capture files, read in order as one capture; `-` for standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Directory for sessions.csv (created if missing).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Most sessions tracked at once; beyond it the longest idle session is ended early.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_sessions: usize,
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
    /// Verify IP/TCP/UDP/ICMP checksums and leave bad packets out of sessions, as Zeek does
    /// without -C (off: offloading hosts record their own packets with wrong checksums).
    #[arg(long)]
    verify_checksums: bool,
    /// Ports that mark the server of a session whose start was not captured: a comma-separated
    /// union of `zeek` (Zeek's default set), `tunnels`, `none`, `tcp/PORT`, `udp/PORT`.
    #[arg(long, default_value = "zeek", value_name = "LIST")]
    server_ports: String,
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
    /// Colour in the terminal summary.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => match run_analyze(args) {
            Ok(code) => ExitCode::from(code),
            Err((code, message)) => {
                eprintln!("sessionscope: {message}");
                ExitCode::from(code)
            }
        },
    }
}

fn run_analyze(args: AnalyzeArgs) -> Result<u8, (u8, String)> {
    let usage = |m: String| (2u8, m);
    let tracker = TrackerConfig {
        tcp_inactivity: seconds(args.tcp_inactivity, "tcp-inactivity").map_err(usage)?,
        udp_inactivity: seconds(args.udp_inactivity, "udp-inactivity").map_err(usage)?,
        icmp_inactivity: seconds(args.icmp_inactivity, "icmp-inactivity").map_err(usage)?,
        other_inactivity: seconds(args.other_inactivity, "other-inactivity").map_err(usage)?,
        tcp_close_delay: seconds(args.tcp_close_delay, "tcp-close-delay").map_err(usage)?,
        tcp_reset_delay: seconds(args.tcp_reset_delay, "tcp-reset-delay").map_err(usage)?,
        dns_session_timeout: seconds(args.dns_session_timeout, "dns-session-timeout")
            .map_err(usage)?,
        max_sessions: args.max_sessions.max(1),
        verify_checksums: args.verify_checksums,
        server_ports: ServerPorts::parse(&args.server_ports)
            .map_err(|e| usage(format!("--server-ports: {e}")))?,
    };
    let hidden_options = hidden_options(&args).map_err(usage)?;
    let options = AnalyzeOptions {
        inputs: args.inputs,
        tracker,
        progress: !args.no_progress,
    };

    let mut csv = match &args.out {
        Some(dir) => Some(
            std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    report::SessionCsvWriter::create(dir, &report::CsvOptions::default())
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
    let mut hidden = HiddenAnalyzer::new(hidden_options);
    let mut tag = Vec::new();
    let outcome = pipeline::analyze(&options, &mut |record| {
        tag.clear();
        hidden.observe(&SessionFacts::from_record(record), &mut tag);
        if let Some(writer) = csv.as_mut()
            && output_error.is_none()
            && let Err(e) = writer.write_tagged(record, &tag)
        {
            output_error = Some(e.to_string());
        }
    });
    let hidden = hidden.finish();
    if let Some(writer) = csv.take() {
        let mut labeller = hidden.labeller();
        let result = writer.finish_labelled(&mut |tag| {
            let label = labeller.label(tag);
            (label.initiator.as_str().to_string(), label.reason)
        });
        if let Err(e) = result {
            output_error.get_or_insert(e.to_string());
        }
    }
    if let Some(dir) = &args.out
        && output_error.is_none()
        && let Err(e) = report::hidden_csv::write(dir, &hidden)
    {
        output_error = Some(format!("hidden.csv: {e}"));
    }

    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let width = terminal_width();
    let terminal = report::terminal::TerminalOptions { width, color };
    let mut text = report::terminal::render(&outcome.summary, &terminal);
    text.push_str(&report::terminal::render_hidden(&hidden, &terminal));
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();

    for error in &outcome.input_errors {
        eprintln!("sessionscope: {error}");
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
    if !outcome.input_errors.is_empty() {
        return Ok(exit::INPUT_ERROR);
    }
    Ok(exit::OK)
}

/// The hidden-session options, checked.
fn hidden_options(args: &AnalyzeArgs) -> Result<HiddenOptions, String> {
    let local_nets = args
        .local_net
        .iter()
        .map(|n| Cidr::parse(n).map_err(|e| format!("--local-net: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !(0.0..=1.0).contains(&args.min_score) {
        return Err(format!(
            "--min-score must be between 0 and 1, got {}",
            args.min_score
        ));
    }
    let allow_list = match &args.allow_list {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--allow-list {}: {e}", path.display()))?;
            AllowList::parse(&text).map_err(|e| format!("--allow-list {}: {e}", path.display()))?
        }
        None => AllowList::default(),
    };
    Ok(HiddenOptions {
        local_nets,
        min_score: args.min_score,
        min_sessions: args.min_count,
        allow_list,
    })
}

/// The terminal's width in columns, from $COLUMNS when set, else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}
