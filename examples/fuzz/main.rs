//! `cargo run --example fuzz`: the project's fuzzer, on the stable toolchain.
//!
//! Runs each target of `targets.rs` for its share of a time budget, from seeds built out of
//! the sample captures, the shared corpus and the saved regressions, and fails (exit 1) when an
//! input panics or holds too much memory, or (exit 2, from the watchdog) when one input runs
//! too long. Failing inputs are saved under `--artifacts`; `--replay FILE` runs one again.
//! `scripts/fuzz.sh` builds it with coverage instrumentation and is what CI runs.

mod engine;
mod targets;

use clap::Parser;
use engine::{CoverageMap, Rng};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use targets::{Kind, TARGETS, Target};

#[global_allocator]
static ALLOCATOR: engine::CountingAllocator = engine::CountingAllocator;

#[derive(Parser, Debug)]
#[command(about = "Coverage-guided mutation fuzzer for sessionscope (stable Rust)")]
struct Args {
    /// Seconds of fuzzing in all, shared between the targets by their weights.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Only these targets (default: all).
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// Seed of the random mutations (the same seed and corpus give the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One input running longer than this is a hang.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Heap growth during one input above this many MiB is a failure.
    #[arg(long, default_value_t = 256)]
    memory_mib: usize,
    /// Directories of seed captures (default: sample-captures and ../shared/corpus/captures).
    #[arg(long = "seeds", value_name = "DIR")]
    seed_dirs: Vec<PathBuf>,
    /// Where failing inputs are written.
    #[arg(long, default_value = "target/fuzz-artifacts")]
    artifacts: PathBuf,
    /// Run these saved inputs through `--target` once each (no fuzzing) and report.
    #[arg(long, value_name = "FILE")]
    replay: Vec<PathBuf>,
    /// List the targets and exit.
    #[arg(long)]
    list: bool,
}

/// The target being fuzzed, for the watchdog's message.
static CURRENT_TARGET: Mutex<&'static str> = Mutex::new("");

fn current_target() -> String {
    CURRENT_TARGET
        .lock()
        .map(|t| t.to_string())
        .unwrap_or_default()
}

struct Report {
    name: &'static str,
    execs: u64,
    seconds: f64,
    seeds: usize,
    corpus: usize,
    edges: usize,
    failures: Vec<String>,
}

fn main() {
    let args = Args::parse();
    if args.list {
        for t in TARGETS {
            println!("{:<12} {}", t.name, t.about);
        }
        return;
    }
    let chosen: Vec<&'static Target> = if args.targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        args.targets
            .iter()
            .map(|name| {
                targets::find(name).unwrap_or_else(|| {
                    eprintln!("fuzz: no target named {name} (see --list)");
                    std::process::exit(64)
                })
            })
            .collect()
    };
    engine::install_guards(
        Duration::from_millis(args.timeout_ms),
        args.artifacts.clone(),
        current_target,
    );

    if !args.replay.is_empty() {
        let mut failed = 0;
        for target in &chosen {
            for file in &args.replay {
                let input = std::fs::read(file).unwrap_or_else(|e| {
                    eprintln!("fuzz: {}: {e}", file.display());
                    std::process::exit(64)
                });
                set_target(target.name);
                match engine::run_guarded(target.run, &input) {
                    Ok(()) => println!("{} {}: ok", target.name, file.display()),
                    Err(message) => {
                        failed += 1;
                        println!("{} {}: PANIC {message}", target.name, file.display());
                    }
                }
            }
        }
        std::process::exit(i32::from(failed > 0));
    }

    let seed_dirs = if args.seed_dirs.is_empty() {
        ["sample-captures", "../shared/corpus/captures"]
            .iter()
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .collect()
    } else {
        args.seed_dirs.clone()
    };
    let seed_files = list_files(&seed_dirs);
    println!(
        "fuzz: {} coverage counters{}, {} seed captures from {}, {:.0} s in all, seed {}",
        engine::counter_count(),
        if engine::counter_count() == 0 {
            " (not instrumented: blind mutation; use scripts/fuzz.sh)"
        } else {
            ""
        },
        seed_files.len(),
        seed_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.seconds,
        args.seed
    );

    let total_weight: u32 = chosen.iter().map(|t| t.weight).sum();
    let mut reports = Vec::new();
    for (index, target) in chosen.iter().enumerate() {
        let budget = args.seconds * f64::from(target.weight) / f64::from(total_weight.max(1));
        let mut rng = Rng::new(args.seed.wrapping_add(index as u64 * 0x1000_0001));
        let report = fuzz_target(target, budget, &seed_files, &args, &mut rng);
        println!(
            "fuzz: {:<11} {:>9} execs in {:>5.1} s ({:>6.0}/s), {:>4} seeds, corpus {:>5}, \
             {:>5} edges, {} failures",
            report.name,
            report.execs,
            report.seconds,
            report.execs as f64 / report.seconds.max(1e-9),
            report.seeds,
            report.corpus,
            report.edges,
            report.failures.len()
        );
        reports.push(report);
    }
    let execs: u64 = reports.iter().map(|r| r.execs).sum();
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    println!(
        "fuzz: {} targets, {} execs in all, {} failures",
        reports.len(),
        execs,
        failures.len()
    );
    for failure in &failures {
        println!("fuzz: FAILURE {failure}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

fn set_target(name: &'static str) {
    if let Ok(mut current) = CURRENT_TARGET.lock() {
        *current = name;
    }
}

fn list_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz_target(
    target: &'static Target,
    budget_secs: f64,
    seed_files: &[PathBuf],
    args: &Args,
    rng: &mut Rng,
) -> Report {
    set_target(target.name);
    let max = engine::max_len(target.kind);
    let mut corpus = targets::seeds_from_captures(target.kind, seed_files, max);
    // The saved regressions of this target are seeds too, and a few edge cases.
    let regressions = Path::new("tests/regressions").join(target.name);
    for file in list_files(&[regressions]) {
        if let Ok(bytes) = std::fs::read(file) {
            corpus.push(bytes);
        }
    }
    corpus.push(Vec::new());
    if target.kind == Kind::Capture {
        corpus.push(minimal_pcap());
    }
    let seeds = corpus.len();

    let mut coverage = CoverageMap::new();
    let mut failures = Vec::new();
    let mut failure_kinds = std::collections::HashSet::new();
    let mut execs = 0u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(budget_secs);
    let memory_limit = args.memory_mib * 1024 * 1024;

    let mut run_one = |input: &[u8], coverage: &mut CoverageMap, failures: &mut Vec<String>| {
        CoverageMap::reset_counters();
        let baseline = engine::reset_peak();
        let result = engine::run_guarded(target.run, input);
        let grew = engine::peak_bytes().saturating_sub(baseline);
        let new = coverage.absorb();
        let problem = match result {
            Err(message) => Some(format!("panic: {message}")),
            Ok(()) if grew > memory_limit => Some(format!(
                "memory: one input made the heap grow by {} MiB",
                grew / (1024 * 1024)
            )),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            // One report per distinct message (the first line names the place).
            let key = problem.lines().next().unwrap_or_default().to_string();
            if failure_kinds.insert(key) {
                let dir = args.artifacts.join(target.name);
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("crash-{:016x}", engine::hash(input)));
                let _ = std::fs::write(&path, input);
                failures.push(format!(
                    "{}: {problem} (input saved to {})",
                    target.name,
                    path.display()
                ));
            }
        }
        new
    };

    for seed in &corpus {
        run_one(seed, &mut coverage, &mut failures);
        execs += 1;
    }
    let mut recent: Vec<usize> = Vec::new();
    let mut input = Vec::with_capacity(max);
    while Instant::now() < deadline {
        // A batch between clock reads.
        for _ in 0..64 {
            let parent = if !recent.is_empty() && rng.chance(2) {
                recent[rng.below(recent.len())]
            } else {
                rng.below(corpus.len())
            };
            input.clear();
            input.extend_from_slice(&corpus[parent]);
            engine::mutate(&mut input, target.kind, rng, &corpus);
            let new = run_one(&input, &mut coverage, &mut failures);
            execs += 1;
            if new && corpus.len() < 20_000 {
                corpus.push(input.clone());
                recent.push(corpus.len() - 1);
                if recent.len() > 64 {
                    recent.remove(0);
                }
            }
        }
    }
    Report {
        name: target.name,
        execs,
        seconds: started.elapsed().as_secs_f64(),
        seeds,
        corpus: corpus.len(),
        edges: coverage.edges,
        failures,
    }
}

/// A pcap file header (Ethernet, microseconds) and one small TCP SYN, as a structural seed.
fn minimal_pcap() -> Vec<u8> {
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&65535u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    frame.extend_from_slice(&[
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    file.extend_from_slice(&1_000_000u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    file.extend_from_slice(&frame);
    file
}
