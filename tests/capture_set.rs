//! A capture set is one capture: a capture cut into pieces by `editcap -c N` (sizes that split
//! handshakes, teardowns and TCP streams mid-segment), the pieces put in a directory under
//! names that sort in the wrong order, gives byte for byte the sessions.csv of the whole
//! file, with 1 and 2 threads; and a set with a gap and an overlap reports both.
//!
//! The pieces are made by Wireshark's editcap (another tool, as a rotating sensor would write
//! them: pcapng by default, and pcap too). Without editcap the cutting tests print a notice and
//! pass, unless `CI` or `SESSIONSCOPE_REQUIRE_EDITCAP` is set (`.ci/run` installs it). The
//! corpus is located by `SESSIONSCOPE_CORPUS` or `<CARGO_MANIFEST_DIR>/../shared/corpus`, as
//! in tests/threads.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// True when editcap runs; panics when it is missing but required.
fn editcap_available() -> bool {
    let found = Command::new("editcap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if env_is_set("CI") || env_is_set("SESSIONSCOPE_REQUIRE_EDITCAP") {
            panic!("editcap is missing (apt-get install wireshark-common)");
        }
        eprintln!("NOTICE: editcap not found; capture-set cutting tests skipped");
    }
    found
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sessionscope-capset-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `sessionscope analyze INPUTS --out OUT`; returns sessions.csv and the summary text.
fn analyze(inputs: &[&Path], threads: usize, out: &Path, extra: &[&str]) -> (Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .args(inputs)
        .arg("--out")
        .arg(out)
        .args(["--threads", &threads.to_string(), "--no-progress"])
        .args(["--color", "never"])
        // One sensor name for the whole file and its pieces (the default is the directory's).
        .args(["--sensor", "set-test"])
        .args(extra)
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "analyze {inputs:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read(out.join("sessions.csv")).unwrap();
    (csv, stdout)
}

/// The raw timestamp of a capture's first packet record, comparable between pieces of one
/// capture (pcap: seconds and fraction; pcapng: the 64-bit EPB/PB timestamp, whose unit the
/// pieces' identical interface blocks share). Read here, not by sessionscope.
fn first_record_time(path: &Path) -> Option<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let u32_at = |at: usize, big: bool| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    match u32_at(0, false)? {
        0x0a0d_0d0a => {
            let big = u32_at(8, false)? != 0x1a2b_3c4d;
            let mut at = 0usize;
            loop {
                let kind = u32_at(at, big)?;
                let len = u32_at(at + 4, big)? as usize;
                if kind == 6 || kind == 2 {
                    let high = u32_at(at + 12, big)?;
                    let low = u32_at(at + 16, big)?;
                    return Some((u64::from(high) << 32 | u64::from(low), 0));
                }
                if len < 12 {
                    return None;
                }
                at += len;
            }
        }
        magic => {
            let big = matches!(magic, 0xd4c3_b2a1 | 0x4d3c_b2a1);
            Some((u64::from(u32_at(24, big)?), u64::from(u32_at(28, big)?)))
        }
    }
}

/// 1234567 as the summary writes it: 1,234,567.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How the pieces are written.
#[derive(Clone, Copy, Debug)]
enum PieceFormat {
    /// editcap's default, as dumpcap's ring buffer writes.
    PcapNg,
    /// The input's own format (pcap in microseconds or nanoseconds, as `tcpdump -C` writes,
    /// or pcapng).
    Native,
}

/// Cuts `capture` into pieces of `packets` packets in `dir`, named so that name order is the
/// reverse of time order (pieces starting at the same time keep their order among themselves:
/// the documented tie-break is the name). Returns how many pieces, or `None` when the
/// capture's pieces do not start in time order (a capture whose packets go back in time
/// cannot be ordered by time: no equality is expected then).
fn cut(capture: &Path, packets: usize, format: PieceFormat, dir: &Path) -> Option<usize> {
    let work = dir.join("editcap");
    std::fs::create_dir_all(&work).unwrap();
    let magic = std::fs::read(capture).unwrap()[..4].to_vec();
    let pcap_type = match magic.as_slice() {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => Some("pcap"),
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => Some("nsecpcap"),
        _ => None,
    };
    let mut command = Command::new("editcap");
    command.args(["-c", &packets.to_string()]);
    let extension = match (format, pcap_type) {
        (PieceFormat::Native, Some(file_type)) => {
            command.args(["-F", file_type]);
            "pcap"
        }
        _ => "pcapng",
    };
    let status = command
        .arg(capture)
        .arg(work.join(format!("piece.{extension}")))
        .output()
        .unwrap();
    assert!(status.status.success(), "editcap failed on {capture:?}");
    let mut pieces: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // editcap numbers its pieces in capture order.
    pieces.sort();
    let times: Vec<_> = pieces.iter().map(|p| first_record_time(p)).collect();
    if times.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    // Group pieces by first time; groups are named in reverse, pieces within one in order.
    let mut group = 0usize;
    let mut groups = Vec::new();
    for (i, time) in times.iter().enumerate() {
        if i > 0 && times[i - 1] != *time {
            group += 1;
        }
        groups.push(group);
    }
    for (i, piece) in pieces.iter().enumerate() {
        // Rotated names, some without a capture extension: the directory is read by content.
        let suffix = [extension, "", "cap.1"][i % 3];
        let name = format!("dump-{:06}-{i:06}.{suffix}", group - groups[i]);
        std::fs::rename(piece, dir.join(name)).unwrap();
    }
    std::fs::remove_dir(&work).unwrap();
    Some(pieces.len())
}

/// For each capture and piece size: the directory of pieces gives the whole file's
/// sessions.csv with 1 and 2 threads. Returns (comparisons made, captures left out).
fn assert_pieces_equal_whole(captures: &[PathBuf], label: &str) -> (usize, usize) {
    let root = temp_dir(label);
    let mut compared = 0;
    let mut unordered = 0;
    for (index, capture) in captures.iter().enumerate() {
        let (whole, _) = analyze(&[capture], 1, &root.join(format!("whole-{index}")), &[]);
        for (packets, format) in [
            (1, PieceFormat::PcapNg),
            (2, PieceFormat::PcapNg),
            (3, PieceFormat::Native),
            (7, PieceFormat::PcapNg),
            (7, PieceFormat::Native),
            (100, PieceFormat::PcapNg),
        ] {
            let dir = root.join(format!("pieces-{index}-{packets}-{format:?}"));
            std::fs::create_dir_all(&dir).unwrap();
            let Some(pieces) = cut(capture, packets, format, &dir) else {
                eprintln!(
                    "NOTICE: {}: packets go back in time across pieces of {packets}; not compared",
                    capture.display()
                );
                unordered += 1;
                continue;
            };
            std::fs::write(dir.join("README"), "not a capture\n").unwrap();
            for threads in [1, 2] {
                let out = root.join(format!("out-{index}-{packets}-{format:?}-{threads}"));
                let (csv, summary) = analyze(&[&dir], threads, &out, &[]);
                if csv != whole {
                    let whole = String::from_utf8_lossy(&whole);
                    let csv = String::from_utf8_lossy(&csv);
                    let diff = whole
                        .lines()
                        .zip(csv.lines())
                        .find(|(a, b)| a != b)
                        .map(|(a, b)| format!("\n  whole:  {a}\n  pieces: {b}"))
                        .unwrap_or_default();
                    panic!(
                        "{}: cut into {pieces} pieces of {packets} ({format:?}), {threads} \
                         threads: sessions.csv differs ({} rows vs {}){diff}",
                        capture.display(),
                        whole.lines().count(),
                        csv.lines().count()
                    );
                }
                let files = if pieces == 1 {
                    "1 capture file from".to_string()
                } else {
                    format!("{} capture files from", thousands(pieces))
                };
                assert!(summary.contains(&files), "{files}?\n{summary}");
                assert!(summary.contains("1 other file skipped"), "{summary}");
                let _ = std::fs::remove_dir_all(&out);
                compared += 1;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    (compared, unordered)
}

#[test]
fn sample_captures_cut_into_pieces_give_the_sessions_of_the_whole() {
    if !editcap_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures");
    let mut captures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    captures.sort();
    assert!(captures.len() >= 20, "sample captures missing");
    let (compared, unordered) = assert_pieces_equal_whole(&captures, "samples");
    eprintln!(
        "capture sets: {} sample captures, {compared} directory runs identical to the whole \
         file, {unordered} cuts not comparable (packets go back in time)",
        captures.len()
    );
    assert!(
        compared >= captures.len() * 10,
        "only {compared} directory runs compared ({unordered} cuts not comparable)"
    );
}

#[test]
fn corpus_captures_with_long_tcp_streams_cut_into_pieces_give_the_sessions_of_the_whole() {
    if !editcap_available() {
        return;
    }
    let explicit = std::env::var_os("SESSIONSCOPE_CORPUS");
    let corpus = explicit.as_ref().map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    let captures_dir = corpus.join("captures");
    if !captures_dir.is_dir() {
        if explicit.is_some() || env_is_set("CI") || env_is_set("SESSIONSCOPE_REQUIRE_CORPUS") {
            panic!("{}: corpus captures missing", captures_dir.display());
        }
        eprintln!("NOTICE: no corpus at {}; skipped", captures_dir.display());
        return;
    }
    // An IRC DCC file transfer (pcapng), SSH sessions and HTTP: the corpus's largest captures,
    // long TCP streams cut mid-stream by every piece size.
    let captures: Vec<PathBuf> = [
        "zeek-irc-dcc-send.pcapng",
        "zeek-ssh-ssh.pcap",
        "zeek-http-no_crlf.pcap",
    ]
    .iter()
    .map(|name| captures_dir.join(name))
    .collect();
    let (compared, unordered) = assert_pieces_equal_whole(&captures, "corpus");
    assert_eq!(unordered, 0, "corpus captures expected in time order");
    eprintln!(
        "capture sets: {} corpus captures, {compared} directory runs identical to the whole file",
        captures.len()
    );
}

/// A pcap file (microseconds, Ethernet) holding one small UDP frame per time given.
fn write_pcap(path: &Path, times: &[u32]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&65535u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    for (i, &secs) in times.iter().enumerate() {
        // Ethernet, IPv4 192.0.2.1 -> 192.0.2.2, UDP 40000 -> 9999 + i, no payload
        // (checksums zero: not verified by default).
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        frame.extend_from_slice(&40000u16.to_be_bytes());
        frame.extend_from_slice(&(9999 + i as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 8, 0, 0]);
        bytes.extend_from_slice(&secs.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&frame);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_directory_with_a_gap_and_an_overlap_reports_both() {
    let root = temp_dir("gaps");
    let dir = root.join("sensor1");
    std::fs::create_dir_all(&dir).unwrap();
    // Read order by first packet: first (1000..1010 s), second (1005..1020 s: starts 5 s
    // before first ends), third (1200 s: 180 s after second ends). Names sort the other way.
    write_pcap(&dir.join("c-first.pcap"), &[1000, 1010]);
    write_pcap(&dir.join("b-second.pcap1"), &[1005, 1020]);
    write_pcap(&dir.join("a-third"), &[1200]);
    std::fs::write(dir.join("notes.txt"), "not a capture\n").unwrap();
    std::fs::write(dir.join("trace.pcap.gz"), [0x1f, 0x8b, 8, 0]).unwrap();

    let (_, summary) = analyze(&[&dir], 1, &root.join("out"), &[]);
    let files_table: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains("sensor1/"))
        .take(3)
        .collect();
    assert!(files_table[0].contains("c-first.pcap"), "{summary}");
    assert!(files_table[1].contains("b-second.pcap1"), "{summary}");
    assert!(files_table[2].contains("a-third"), "{summary}");
    let section: String = summary
        .split("Capture set\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no capture set section:\n{summary}"))
        .to_string();
    assert!(
        section.contains("3 capture files from 1 directory (2 other files skipped"),
        "{section}"
    );
    assert!(section.contains("Span            3m 20.0s"), "{section}");
    assert!(
        section.contains("Gaps            1 (pauses over 60 s between files)"),
        "{section}"
    );
    assert!(
        section.contains("3m 00.0s without packets:")
            && section.contains("b-second.pcap1 ->")
            && section.contains("a-third"),
        "{section}"
    );
    assert!(section.contains("Overlaps        1"), "{section}");
    assert!(
        section.contains("5.000000 s overlap:")
            && section.contains("b-second.pcap1 starts before")
            && section.contains("c-first.pcap ends"),
        "{section}"
    );

    // A gap threshold above 180 s leaves no gap; a quoted glob reads the same set, and a file
    // named again as well is read once.
    let pattern = dir.join("*");
    let again = dir.join("c-first.pcap");
    let (_, summary) = analyze(
        &[&again, &pattern],
        2,
        &root.join("out2"),
        &["--gap", "300"],
    );
    assert!(
        summary.contains("3 capture files from 1 pattern"),
        "{summary}"
    );
    assert!(summary.contains("Gaps            none"), "{summary}");
    assert!(summary.contains("Overlaps        1"), "{summary}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_empty_directory_or_a_pattern_without_match_is_an_input_error() {
    let root = temp_dir("empty");
    std::fs::write(root.join("notes.txt"), "not a capture\n").unwrap();
    for input in [root.clone(), root.join("*.pcap")] {
        let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
            .arg("analyze")
            .arg(&input)
            .arg("--no-progress")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no capture file") && stderr.contains(&*input.to_string_lossy()),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
