//! Capture files of 8 MiB or more are read ahead on a thread of their own, with direct I/O
//! (`capture/read_ahead.rs`), smaller ones the ordinary way; in a set of files, the next file's
//! read-ahead starts while the last blocks of the one before are parsed. The same packets must
//! make the same sessions either way: a capture of 21 MB (a sample capture repeated 60 times,
//! a day apart, so its records cross the 4 MiB blocks' boundaries everywhere) gives byte for
//! byte the sessions.csv and hidden.csv of its two halves (read ahead, the second started
//! early) and of its four quarters (read plainly), each set read as a directory, with 1 and 2
//! threads. Where the file system refuses direct I/O the read-ahead thread reads the ordinary
//! way, and the result must be the same too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files from this size up are read ahead (`read_ahead::MIN_FILE_BYTES` in the crate).
const READ_AHEAD_FROM_BYTES: usize = 8 << 20;

const SECONDS_PER_DAY: u32 = 86_400;

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sessionscope-read-ahead-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The little-endian microsecond pcap `file`, cut into its header and records.
fn pcap_records(file: &[u8]) -> (&[u8], Vec<&[u8]>) {
    assert_eq!(
        file[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian pcap expected"
    );
    let (header, mut rest) = file.split_at(24);
    let mut records = Vec::new();
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (record, tail) = rest.split_at(16 + caplen);
        records.push(record);
        rest = tail;
    }
    assert!(rest.is_empty(), "trailing bytes");
    (header, records)
}

/// The records of `sample`, `times` over, each round `SECONDS_PER_DAY` later than the last.
fn repeated(sample: &[u8], times: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (header, records) = pcap_records(sample);
    let mut shifted = Vec::new();
    for round in 0..times {
        for record in &records {
            let mut record = record.to_vec();
            let secs = u32::from_le_bytes(record[..4].try_into().unwrap());
            record[..4].copy_from_slice(&(secs + round * SECONDS_PER_DAY).to_le_bytes());
            shifted.push(record);
        }
    }
    (header.to_vec(), shifted)
}

fn pcap_file(path: &Path, header: &[u8], records: &[Vec<u8>]) -> usize {
    let mut bytes = header.to_vec();
    for record in records {
        bytes.extend_from_slice(record);
    }
    std::fs::write(path, &bytes).unwrap();
    bytes.len()
}

/// Runs `sessionscope analyze INPUT --out OUT`; returns sessions.csv and hidden.csv.
fn analyze(input: &Path, threads: usize, out: &Path) -> (Vec<u8>, Vec<u8>) {
    let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--threads", &threads.to_string(), "--no-progress"])
        // One sensor name for the file and its pieces (the default is the directory's).
        .args(["--sensor", "read-ahead-test"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "analyze {input:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        std::fs::read(out.join("sessions.csv")).unwrap(),
        std::fs::read(out.join("hidden.csv")).unwrap(),
    )
}

#[test]
fn a_capture_read_ahead_whole_or_in_pieces_gives_the_sessions_of_its_pieces_read_plainly() {
    let sample = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures/hidden-scenario.pcap"),
    )
    .unwrap();
    let (header, records) = repeated(&sample, 60);
    let dir = temp_dir("capture");
    let whole = dir.join("whole.pcap");
    let whole_len = pcap_file(&whole, &header, &records);
    assert!(whole_len > 2 * READ_AHEAD_FROM_BYTES, "{whole_len} bytes");

    // Pieces in directories, named so that name order is capture order.
    let pieces = |count: usize, read_ahead: bool| {
        let set = dir.join(format!("{count}-pieces"));
        std::fs::create_dir_all(&set).unwrap();
        for (index, part) in records.chunks(records.len().div_ceil(count)).enumerate() {
            let len = pcap_file(&set.join(format!("{index}.pcap")), &header, part);
            assert_eq!(
                len > READ_AHEAD_FROM_BYTES,
                read_ahead,
                "piece {index}: {len} bytes"
            );
        }
        set
    };
    let halves = pieces(2, true);
    let quarters = pieces(4, false);

    for threads in [1, 2] {
        let run = |input: &Path, name: &str| {
            analyze(input, threads, &dir.join(format!("out-{name}-{threads}")))
        };
        let (sessions, hidden) = run(&quarters, "quarters");
        let rows = sessions.iter().filter(|&&b| b == b'\n').count();
        assert!(rows > 60 * 100, "{rows} rows with {threads} threads");
        for (input, name) in [(&whole, "whole"), (&halves, "halves")] {
            let (other_sessions, other_hidden) = run(input, name);
            assert!(
                other_sessions == sessions,
                "{name}: sessions.csv differs with {threads} threads"
            );
            assert!(
                other_hidden == hidden,
                "{name}: hidden.csv differs with {threads} threads"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
