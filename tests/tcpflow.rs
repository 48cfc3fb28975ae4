//! Reassembled TCP streams against tcpflow's (Debian's tcpflow 1.6, `tcpflow -r FILE -o DIR`) on
//! every capture of the shared corpus.
//!
//! Streams come from the crate itself (capture reader, decoder, session tracker with a
//! recording stream sink), named with `report::streams::stream_file_name` less the uid, which is
//! tcpflow's default name. (Our generated tcp-evasion.pcap is not compared here: most of its
//! scenarios are exactly where tcpflow's policy differs, see sample-captures/README.md.) A stream is compared when tcpflow's output for it is complete and
//! unambiguous:
//! - our reassembler gave up no hole, dropped nothing for memory and saw no overlap with other
//!   bytes (tcpflow fills holes with zeros and lets later bytes overwrite earlier ones);
//! - exactly one of our sessions has that 4-tuple (tcpflow numbers later connections `c1`, `c2`
//!   by its own rules), and tcpflow wrote no `c1` file for it;
//! - tcpflow wrote that file (it does not decode tunnels, so tunnelled sessions have none);
//! - no packet of that direction carried bytes after its IP packet in the frame (Ethernet
//!   padding of short frames, trailers): tcpflow 1.6 takes them for TCP payload and writes them
//!   into the stream.
//!
//! Every compared stream must be byte-identical. The corpus is located as in
//! tests/conformance.rs; without it or without tcpflow the test prints a notice and passes,
//! unless `CI` or `SESSIONSCOPE_REQUIRE_CORPUS` is set.

use sessionscope::capture::CaptureReader;
use sessionscope::config::TrackerConfig;
use sessionscope::decode;
use sessionscope::report::streams::stream_file_name;
use sessionscope::session::reassembly::{StreamId, StreamSink, StreamStats};
use sessionscope::session::{Endpoint, SessionTracker, Uid};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("SESSIONSCOPE_REQUIRE_CORPUS").is_some()
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SESSIONSCOPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    dir.join("captures").is_dir().then_some(dir)
}

fn tcpflow_available() -> bool {
    // `tcpflow -V` prints the version but exits 1; `-h` exits 0.
    Command::new("tcpflow")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    stats: StreamStats,
}

/// Streams by tcpflow name (`<src>-<dst>`), each a list of (uid, stream) in session order.
type Streams = HashMap<String, Vec<(String, Stream)>>;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Streams>>);

fn tcpflow_name(stream: &StreamId) -> (String, String) {
    let full = stream_file_name(&stream.uid, &stream.src, &stream.dst);
    let uid = stream.uid.as_str();
    let base = full
        .strip_suffix(uid)
        .and_then(|b| b.strip_suffix('-'))
        .unwrap_or(&full)
        .to_string();
    (base, uid.to_string())
}

impl Recorder {
    fn entry<R>(&self, stream: &StreamId, f: impl FnOnce(&mut Stream) -> R) -> R {
        let (name, uid) = tcpflow_name(stream);
        let mut map = self.0.lock().unwrap();
        let list = map.entry(name).or_default();
        if let Some((_, s)) = list.iter_mut().find(|(u, _)| *u == uid) {
            return f(s);
        }
        list.push((uid, Stream::default()));
        f(&mut list.last_mut().unwrap().1)
    }
}

impl StreamSink for Recorder {
    fn data(&mut self, stream: &StreamId, _offset: u64, bytes: &[u8]) {
        self.entry(stream, |s| s.bytes.extend_from_slice(bytes));
    }
    fn end(&mut self, stream: &StreamId, stats: &StreamStats) {
        self.entry(stream, |s| s.stats = *stats);
    }
}

/// Frame bytes after the IP packet, for a packet not inside a tunnel.
fn trailer_len(frame: &[u8], ip: &decode::IpPacket<'_>) -> usize {
    let frame_end = frame.as_ptr() as usize + frame.len();
    let l4_end = ip.l4.as_ptr() as usize + ip.l4.len();
    frame_end.saturating_sub(l4_end)
}

type Padded = std::collections::HashSet<String>;

fn our_streams(path: &Path) -> (Streams, Padded) {
    let mut padded = Padded::new();
    let recorder = Recorder::default();
    let mut tracker = SessionTracker::new(TrackerConfig::default());
    tracker.set_stream_sink(Box::new(recorder.clone()), 16 << 20);
    if let Ok(mut reader) = CaptureReader::open(path) {
        while let Ok(Some(packet)) = reader.next_packet() {
            let ts = packet.ts;
            let frame = packet.data;
            let _ = decode::decode(packet.link, frame, &mut |ip| {
                if let decode::Transport::Tcp {
                    src_port, dst_port, ..
                } = ip.transport
                    && ip.depth == 0
                    && trailer_len(frame, ip) > 0
                {
                    let src = Endpoint {
                        addr: ip.src,
                        port: src_port,
                    };
                    let dst = Endpoint {
                        addr: ip.dst,
                        port: dst_port,
                    };
                    let name = stream_file_name(&Uid::default(), &src, &dst);
                    padded.insert(name.trim_end_matches('-').to_string());
                }
                tracker.process(ts, ip, &mut |_| {});
            });
        }
    }
    tracker.finish(&mut |_| {});
    drop(tracker);
    let streams = std::mem::take(&mut *recorder.0.lock().unwrap());
    (streams, padded)
}

fn tcpflow_streams(path: &Path, out: &Path) -> BTreeMap<String, Vec<u8>> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let _ = Command::new("tcpflow")
        .arg("-r")
        .arg(path)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "report.xml" && entry.path().is_file() {
            files.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    std::fs::remove_dir_all(out).unwrap();
    files
}

#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    matched: usize,
    skipped_incomplete: usize,
    skipped_ambiguous: usize,
    skipped_no_tcpflow_file: usize,
    skipped_padded: usize,
    mismatches: Vec<String>,
}

fn compare(capture: &Path, scratch: &Path, tally: &mut Tally) {
    let (ours, padded) = our_streams(capture);
    let theirs = tcpflow_streams(capture, scratch);
    let file = capture.file_name().unwrap().to_string_lossy();
    for (name, sessions) in &ours {
        let [(_, stream)] = sessions.as_slice() else {
            tally.skipped_ambiguous += 1;
            continue;
        };
        let s = stream.stats;
        if s.missed_bytes > 0 || s.dropped_bytes > 0 || s.overlap_conflicts > 0 {
            tally.skipped_incomplete += 1;
            continue;
        }
        if stream.bytes.is_empty() {
            continue;
        }
        if padded.contains(name) {
            tally.skipped_padded += 1;
            continue;
        }
        if theirs.contains_key(&format!("{name}c1")) {
            tally.skipped_ambiguous += 1;
            continue;
        }
        let Some(expected) = theirs.get(name) else {
            tally.skipped_no_tcpflow_file += 1;
            continue;
        };
        tally.compared += 1;
        if *expected == stream.bytes {
            tally.matched += 1;
        } else {
            let first_diff = expected
                .iter()
                .zip(&stream.bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(expected.len().min(stream.bytes.len()));
            tally.mismatches.push(format!(
                "{file}: {name}: tcpflow {} bytes, ours {} (first difference at {first_diff})",
                expected.len(),
                stream.bytes.len()
            ));
        }
    }
}

#[test]
fn streams_match_tcpflow_where_its_output_is_complete() {
    let corpus = corpus_dir();
    let have_tcpflow = tcpflow_available();
    if corpus.is_none() || !have_tcpflow {
        let why = if have_tcpflow {
            "the corpus is missing"
        } else {
            "tcpflow is missing (apt-get install tcpflow)"
        };
        assert!(!required(), "tcpflow comparison cannot run: {why}");
        eprintln!("tcpflow comparison skipped: {why}");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("ss-tcpflow-{}", std::process::id()));
    let mut captures: Vec<PathBuf> = std::fs::read_dir(corpus.unwrap().join("captures"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    captures.sort();
    let mut tally = Tally::default();
    let mut per_capture = Vec::new();
    for capture in &captures {
        let before = (tally.compared, tally.matched);
        compare(capture, &scratch, &mut tally);
        if tally.compared > before.0 {
            per_capture.push(format!(
                "{:<60} {:>4} compared {:>4} matched",
                capture.file_name().unwrap().to_string_lossy(),
                tally.compared - before.0,
                tally.matched - before.1
            ));
        }
    }
    eprintln!(
        "== TCP streams against tcpflow ({} captures) ==",
        captures.len()
    );
    for line in &per_capture {
        eprintln!("{line}");
    }
    eprintln!(
        "compared {} streams, {} byte-identical; not compared: {} incomplete (holes, memory, \
         overlaps with other bytes), {} ambiguous (4-tuple reused), {} without a tcpflow file \
         (tunnelled), {} with frame padding (tcpflow writes it as data)",
        tally.compared,
        tally.matched,
        tally.skipped_incomplete,
        tally.skipped_ambiguous,
        tally.skipped_no_tcpflow_file,
        tally.skipped_padded
    );
    for m in &tally.mismatches {
        eprintln!("MISMATCH {m}");
    }
    assert!(tally.compared > 0, "no stream compared");
    assert!(
        tally.mismatches.is_empty(),
        "{} streams differ",
        tally.mismatches.len()
    );
}
