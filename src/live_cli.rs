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
    /// Bytes kept of each frame.
    #[arg(long, default_value_t = 262_144, value_name = "BYTES")]
    snaplen: u32,
    /// Put the interface into promiscuous mode (not possible on `any`).
    #[arg(long)]
    promisc: bool,
    /// Kernel capture buffer (e.g. 64MB; libpcap's default is 2 MB). Raise it if the kernel
    /// drops packets.
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
    let buffer_size = match &args.buffer_size {
        None => None,
        Some(text) => match Rotation::parse(text) {
            Ok(Rotation::Size(bytes)) => Some(
                u32::try_from(bytes)
                    .map_err(|_| usage(format!("--buffer-size {text}: at most 4 GB")))?,
            ),
            Ok(_) => {
                return Err(usage(format!(
                    "--buffer-size {text}: expected a size like 64MB"
                )));
            }
            Err(e) => return Err(usage(format!("--buffer-size {e}"))),
        },
    };
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
        duration,
        status_every: (!status_every.is_zero()).then_some(status_every),
    };

    let stop = live::stop_on_signals().map_err(capture_error)?;
    let outcome = live::run(&options, &stop).map_err(capture_error)?;

    super::print_summary(&outcome.summary, args.color, None);
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
