//! Output safety: text that comes from inputs cannot break the terminal, stderr or sessions.csv.
//!
//! File names are the input text that reaches the summary and the errors today; they are made
//! hostile here (escape sequences that recolour or retitle a terminal, BEL, newlines that would
//! forge a line, C1 controls, quotes, commas, `<script>`, invalid UTF-8). Packet-derived text
//! (server names, user agents, banners) will reach the same writers once content parsers land;
//! the CSV check below runs over whole captures so it covers them too.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(name)
}

fn work_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("output-safety-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A cut copy of udp-dns.pcap (so an error names the file too) under a hostile name.
fn hostile_capture(dir: &Path, name: impl Into<OsString>) -> PathBuf {
    let bytes = std::fs::read(sample("udp-dns.pcap")).unwrap();
    let path = dir.join(name.into());
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    path
}

fn analyze(capture: &Path, out: &Path, color: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .args(["--no-progress", "--color", color])
        .output()
        .unwrap()
}

/// Control characters other than the newline that ends each line.
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect()
}

const HOSTILE: &str = "evil\u{1b}[31mred\u{1b}]0;owned\u{7}\u{9b}2J\r\nFAKE LINE,\"q\"<script>alert(1)<\\script>.pcap";

#[test]
fn hostile_file_names_cannot_drive_the_terminal_or_forge_lines() {
    let dir = work_dir("names");
    let capture = hostile_capture(&dir, HOSTILE);
    let out = dir.join("out");
    let output = analyze(&capture, &out, "never");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(controls(&stdout), Vec::<char>::new(), "{stdout}");
    assert_eq!(controls(&stderr), Vec::<char>::new(), "{stderr:?}");
    // One error, on one line; the forged line never starts a line of its own.
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    for text in [&stdout, &stderr] {
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("FAKE LINE")),
            "{text}"
        );
    }
    // The name is still recognisable, its controls shown as '?'.
    assert!(stderr.contains("red?]0;owned??2J??FAKE LINE"), "{stderr}");
    // sessions.csv holds no file names: its rows are untouched.
    let csv = std::fs::read_to_string(out.join("sessions.csv")).unwrap();
    assert!(!csv.contains("evil") && !csv.contains("<script>"));
}

#[test]
fn colour_output_has_only_its_own_colour_codes() {
    let dir = work_dir("colour");
    let capture = hostile_capture(&dir, HOSTILE);
    let output = analyze(&capture, &dir.join("out"), "always");
    let stdout = String::from_utf8(output.stdout).unwrap();
    // Every escape is a Select Graphic Rendition sequence: ESC [ digits/semicolons m.
    let mut rest = stdout.as_str();
    let mut escapes = 0;
    while let Some(at) = rest.find('\u{1b}') {
        let after = &rest[at + 1..];
        let end = after
            .find('m')
            .unwrap_or_else(|| panic!("unterminated escape: {after:?}"));
        let body = &after[..end];
        assert!(
            body.starts_with('[') && body[1..].chars().all(|c| c.is_ascii_digit() || c == ';'),
            "escape that is not a colour: {body:?}"
        );
        escapes += 1;
        rest = &after[end + 1..];
    }
    assert!(escapes > 0, "--color always gave no colour");
    assert!(!controls(&stdout).iter().any(|&c| c != '\u{1b}'));
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_shown_readably() {
    use std::os::unix::ffi::OsStringExt;
    let dir = work_dir("bytes");
    let name = OsString::from_vec(b"bad-\xff\xfe\x1b[2J-name.pcap".to_vec());
    let capture = hostile_capture(&dir, name);
    let output = analyze(&capture, &dir.join("out"), "never");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert!(controls(&stdout).is_empty() && controls(&stderr).is_empty());
    assert!(
        stderr.contains("bad-\u{fffd}\u{fffd}?[2J-name.pcap"),
        "{stderr}"
    );
}

#[test]
fn sessions_csv_is_plain_printable_text_with_one_record_per_line() {
    // Every sample capture in one run, plus a hostile-named one: each line of sessions.csv is
    // one record with the header's column count, and only printable ASCII appears (all of its
    // fields are numbers, addresses and fixed names today; a packet-derived field must keep it
    // so, or quote and escape and change this test knowingly).
    let dir = work_dir("csv");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(sample(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    inputs.sort();
    inputs.push(hostile_capture(&dir, HOSTILE));
    let out = dir.join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .args(&inputs)
        .arg("--out")
        .arg(&out)
        .args(["--no-progress", "--color", "never"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let csv = std::fs::read(out.join("sessions.csv")).unwrap();
    let bad: Vec<u8> = csv
        .iter()
        .copied()
        .filter(|&b| b != b'\n' && !(0x20..0x7f).contains(&b))
        .collect();
    assert!(bad.is_empty(), "bytes outside printable ASCII: {bad:?}");
    let text = String::from_utf8(csv).unwrap();
    let columns = text.lines().next().unwrap().split(',').count();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows = 0;
    for record in reader.records() {
        assert_eq!(record.unwrap().len(), columns);
        rows += 1;
    }
    assert_eq!(rows, text.lines().count() - 1, "a record spans lines");
    assert!(rows > 10);
}
