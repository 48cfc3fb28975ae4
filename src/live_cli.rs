//! The `live` subcommand: its arguments, and on a build without the `live` feature, the message
//! saying how to get it (exit code 2).

use super::{ColorChoice, TrackerArgs, exit};
use clap::Parser;
use std::path::PathBuf;

/// How to get a build that captures live (also in README.md).
#[cfg(not(feature = "live"))]
pub const HOW_TO_BUILD: &str = "this build has no live capture; it needs libpcap: \
     `sudo apt-get install libpcap-dev`, then `cargo install --path . --features live` \
     (or `cargo build --release --features live`)";

#[derive(Parser, Debug)]
pub struct LiveArgs {
    /// Interface to capture on (`any` for all of them); see --list-interfaces.
    #[arg(
        short,
        long,
        value_name = "NAME",
        required_unless_present = "list_interfaces"
    )]
    interface: Option<String>,
    /// List the interfaces that can be captured on, and exit.
    #[arg(long)]
    list_interfaces: bool,
    /// Directory for the session files `sessions-YYYYMMDDTHHMMSSZ.csv` (created if missing);
    /// rows are appended as sessions end. Without it, only the summary is printed.
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Capture filter in pcap-filter(7) syntax, e.g. 'not port 22'.
    #[arg(short, long, value_name = "BPF", default_value = "")]
    filter: String,
    /// Bytes kept of each frame (64 to 262144). Byte counts come from the IP and TCP headers,
    /// so they stay right as long as the headers fit (TCP options included).
    #[arg(long, default_value_t = 262_144, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(64..=262_144))]
    snaplen: u32,
    /// Put the interface into promiscuous mode (not possible on `any`).
    #[arg(long)]
    promisc: bool,
    /// Kernel capture buffer, 64KiB to 2GiB (e.g. 64MB; libpcap's default is 2 MB). Raise it
    /// if the kernel drops packets.
    #[arg(long, value_name = "SIZE")]
    buffer_size: Option<String>,
    /// Stop after this long (e.g. 90s, 10m, 2h; a bare number is seconds).
    #[arg(long, value_name = "TIME")]
    duration: Option<String>,
    /// Stop after this many packets.
    #[arg(long, value_name = "N")]
    packets: Option<u64>,
    /// Start a new session file every TIME (e.g. 1h, aligned to the clock) or before SIZE
    /// (e.g. 100MB); rows are never split.
    #[arg(long, value_name = "TIME|SIZE")]
    rotate: Option<String>,
    /// Hidden sessions are analysed over the sessions that ended in this last stretch of time
    /// (at least the --rotate period), and written as hidden-<time>.csv beside each sessions
    /// file when it is complete, and at exit.
    #[arg(long, default_value = "1h", value_name = "TIME")]
    hidden_window: String,
    /// Our hosts (CIDR, repeatable or comma-separated): hidden patterns are reported for
    /// originators inside these ranges, and their broadcast addresses count as broadcast.
    #[arg(long = "local-net", value_name = "CIDR", value_delimiter = ',')]
    local_net: Vec<String>,
    /// Hidden patterns scoring below this (0..1) are left out of hidden files and the summary.
    #[arg(long, default_value_t = 0.0, value_name = "SCORE")]
    min_score: f64,
    /// Hidden patterns with fewer sessions are left out of hidden files and the summary.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_count: u64,
    /// Known-good patterns, shown apart: lines of `HOST DESTINATION [PORT]` (as for analyze).
    #[arg(long, value_name = "FILE")]
    allow_list: Option<PathBuf>,
    /// The `sensor` column's value (letters, digits, `.`, `_`, `-`); default: this machine's
    /// host name.
    #[arg(long, value_name = "NAME")]
    sensor: Option<String>,
    /// Seconds between status lines on stderr; 0 for none.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    status_interval: f64,
    #[command(flatten)]
    tracker: TrackerArgs,
    /// Colour in the terminal summary.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[cfg(not(feature = "live"))]
pub fn run(_args: LiveArgs) -> Result<u8, (u8, String)> {
    Err((exit::NO_LIVE_FEATURE, HOW_TO_BUILD.to_string()))
}

#[cfg(feature = "live")]
pub fn run(args: LiveArgs) -> Result<u8, (u8, String)> {
    use sessionscope::capture::live::{LiveOptions, list_interfaces};
    use sessionscope::live::{self, LiveRunError, LiveRunOptions, StopReason};
    use sessionscope::report::Rotation;
    use std::time::Duration;

    let usage = |m: String| (2u8, m);
    let capture_error = |e: LiveRunError| {
        let code = match e {
            LiveRunError::Output(_) => exit::OUTPUT_ERROR,
            _ => exit::CAPTURE_ERROR,
        };
        (code, e.to_string())
    };
    if args.list_interfaces {
        let interfaces = list_interfaces().map_err(|e| capture_error(LiveRunError::Capture(e)))?;
        for interface in interfaces {
            println!("{interface}");
        }
        return Ok(exit::OK);
    }
    let interface = args
        .interface
        .clone()
        .ok_or_else(|| usage("--interface is required".into()))?;
    let buffer_size = args
        .buffer_size
        .as_deref()
        .map(|text| parse_buffer_size(text).map_err(|e| usage(format!("--buffer-size {e}"))))
        .transpose()?;
    let duration = args
        .duration
        .as_deref()
        .map(|text| parse_duration(text).map_err(|e| usage(format!("--duration {e}"))))
        .transpose()?;
    let rotation = match &args.rotate {
        None => Rotation::Never,
        Some(text) => Rotation::parse(text).map_err(|e| usage(format!("--rotate {e}")))?,
    };
    if args.rotate.is_some() && args.out.is_none() {
        return Err(usage("--rotate needs --out".into()));
    }
    let status_every = Duration::try_from_secs_f64(args.status_interval)
        .map_err(|_| usage("--status-interval must be a number of seconds".into()))?;
    let hidden_window =
        parse_duration(&args.hidden_window).map_err(|e| usage(format!("--hidden-window {e}")))?;
    let hidden = super::check_hidden_options(
        &args.local_net,
        args.min_score,
        args.min_count,
        args.allow_list.as_ref(),
    )
    .map_err(usage)?;
    let sensor = match &args.sensor {
        Some(name) => {
            sessionscope::report::dataset::check_sensor_name(name)
                .map_err(|e| usage(format!("--sensor: {e}")))?;
            name.clone()
        }
        None => sessionscope::report::dataset::sensor_name_from(
            &sessionscope::capture::live::host_name().unwrap_or_default(),
        ),
    };
    let options = LiveRunOptions {
        capture: LiveOptions {
            interface,
            filter: args.filter.clone(),
            snaplen: args.snaplen,
            promisc: args.promisc,
            buffer_size,
            max_packets: args.packets,
            ..LiveOptions::default()
        },
        tracker: args.tracker.config()?,
        out: args.out.clone(),
        rotation,
        community_id_seed: 0,
        sensor,
        duration,
        status_every: (!status_every.is_zero()).then_some(status_every),
        hidden,
        hidden_window,
        hidden_window_cap: live::MAX_WINDOW_SESSIONS,
    };

    let stop = live::stop_on_signals().map_err(capture_error)?;
    let outcome = live::run(&options, &stop).map_err(capture_error)?;

    super::print_summary(&outcome.summary, args.color, Some(&outcome.hidden));
    let stopped_by = match outcome.stopped_by {
        StopReason::Signal => "a signal (Ctrl-C or SIGTERM)",
        StopReason::Duration => "--duration",
        StopReason::PacketLimit => "--packets",
        StopReason::SourceEnded => "the interface",
        StopReason::OutputError => "an output error",
    };
    println!(
        "Live capture on {}: stopped by {stopped_by}",
        options.capture.interface
    );
    println!(
        "Capture: snaplen {} bytes, promiscuous {}, kernel buffer {}",
        options.capture.snaplen,
        if options.capture.promisc { "on" } else { "off" },
        options
            .capture
            .buffer_size
            .map_or("libpcap's default".to_string(), |b| format!("{b} bytes")),
    );
    match outcome.kernel {
        Some(k) => println!(
            "Kernel: {} packets received, {} dropped by the kernel, {} by the interface",
            k.received, k.dropped, k.if_dropped
        ),
        None => println!("Kernel: drop counts unavailable"),
    }
    if let Some(dir) = &options.out {
        println!(
            "Sessions written: {} in {} file(s) in {}",
            outcome.rows,
            outcome.files.len(),
            dir.display()
        );
    }
    let window = outcome.window;
    let mut window_line = format!(
        "Hidden sessions: analysed over the last {} ({} sessions)",
        format_duration(window.span),
        window.sessions
    );
    if window.capped_out > 0 {
        window_line.push_str(&format!(
            "; window capped at {} sessions: {} older sessions left out",
            window.cap, window.capped_out
        ));
    }
    if !outcome.hidden_files.is_empty() {
        window_line.push_str(&format!(
            "; {} hidden file(s) written",
            outcome.hidden_files.len()
        ));
    }
    println!("{window_line}");
    if let Some(k) = outcome.kernel
        && k.dropped + k.if_dropped > 0
    {
        eprintln!(
            "sessionscope: warning: {} packets were dropped before analysis; sessions may be \
             incomplete (try --buffer-size, a --filter, or a faster disk)",
            k.dropped + k.if_dropped
        );
    }
    if let Some(error) = outcome.output_error {
        return Err((
            exit::OUTPUT_ERROR,
            format!("writing sessions failed: {error}"),
        ));
    }
    if let Some(error) = outcome.capture_error {
        eprintln!("sessionscope: {error}");
        return Ok(exit::INPUT_ERROR);
    }
    Ok(exit::OK)
}

/// Smallest `--buffer-size`: below it libpcap rounds up to its own minimum anyway.
#[cfg(feature = "live")]
const MIN_BUFFER_SIZE: u64 = 64 * 1024;

/// `64MB`, `512KiB`...: from [`MIN_BUFFER_SIZE`] to below 2 GiB (libpcap takes an `int`).
#[cfg(feature = "live")]
fn parse_buffer_size(text: &str) -> Result<u32, String> {
    use sessionscope::report::Rotation;
    let expected = || format!("`{text}`: expected a size from 64KiB to 2GiB, like 64MB");
    match Rotation::parse(text) {
        Ok(Rotation::Size(bytes)) if bytes >= MIN_BUFFER_SIZE => i32::try_from(bytes)
            .ok()
            .and_then(|b| u32::try_from(b).ok())
            .ok_or_else(expected),
        _ => Err(expected()),
    }
}

/// `1h`, `90s`, `1h30m` style: the largest whole units.
#[cfg(feature = "live")]
fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

/// `90s`, `10m`, `2h`, `1d`, or a bare number of seconds.
#[cfg(feature = "live")]
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    let (number, per) = match trimmed.char_indices().last() {
        Some((i, 's')) => (&trimmed[..i], 1.0),
        Some((i, 'm')) => (&trimmed[..i], 60.0),
        Some((i, 'h')) => (&trimmed[..i], 3600.0),
        Some((i, 'd')) => (&trimmed[..i], 86_400.0),
        _ => (trimmed, 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|n| std::time::Duration::try_from_secs_f64(n * per).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: expected a time like 90s, 10m or 2h"))
}
