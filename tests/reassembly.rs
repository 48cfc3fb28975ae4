//! TCP reassembly on the generated hostile capture sample-captures/tcp-evasion.pcap: every
//! scenario's stream contents and counters are the ones its generator states
//! (tests/support/tcp_evasion.rs, from the documented policy), both through the library (the
//! session tracker with a recording stream sink) and through `sessionscope analyze
//! --write-streams`.

#[path = "support/tcp_evasion.rs"]
mod tcp_evasion;

use sessionscope::capture::{CaptureReader, Timestamp};
use sessionscope::config::TrackerConfig;
use sessionscope::decode;
use sessionscope::session::reassembly::{StreamId, StreamSink, StreamStats};
use sessionscope::session::{SessionRecord, SessionTracker};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tcp_evasion::{STREAM_LIMIT_BYTES, Scenario, scenarios};

fn capture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures/tcp-evasion.pcap")
}

#[test]
fn committed_capture_is_what_the_generator_writes() {
    let committed = std::fs::read(capture_path()).unwrap();
    assert!(
        committed == tcp_evasion::pcap_bytes(&scenarios()),
        "sample-captures/tcp-evasion.pcap is stale: cargo run --example gen_tcp_evasion"
    );
}

#[derive(Default)]
struct Recorded {
    /// (client port, from_orig) -> bytes, with each delivery's offset checked to grow.
    bytes: HashMap<(u16, bool), Vec<u8>>,
    next_offset: HashMap<(u16, bool), u64>,
    ended: HashMap<(u16, bool), StreamStats>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

fn client_port(stream: &StreamId) -> u16 {
    if stream.src.port == tcp_evasion::SERVER_PORT {
        stream.dst.port
    } else {
        stream.src.port
    }
}

impl StreamSink for Recorder {
    fn data(&mut self, stream: &StreamId, offset: u64, bytes: &[u8]) {
        let key = (client_port(stream), stream.from_orig);
        let mut r = self.0.lock().unwrap();
        let next = r.next_offset.entry(key).or_insert(0);
        assert!(offset >= *next, "{key:?}: offset {offset} went back");
        *next = offset + bytes.len() as u64;
        r.bytes.entry(key).or_default().extend_from_slice(bytes);
    }
    fn end(&mut self, stream: &StreamId, stats: &StreamStats) {
        let key = (client_port(stream), stream.from_orig);
        let previous = self.0.lock().unwrap().ended.insert(key, *stats);
        assert!(previous.is_none(), "{key:?} ended twice");
    }
}

/// Reads a capture through the crate's reader, decoder and tracker with a recording sink.
fn reassemble(path: &Path, limit: usize) -> (Recorded, Vec<SessionRecord>) {
    let recorder = Recorder::default();
    let mut tracker = SessionTracker::new(TrackerConfig::default());
    tracker.set_stream_sink(Box::new(recorder.clone()), limit);
    let mut records = Vec::new();
    let mut reader = CaptureReader::open(path).unwrap();
    while let Some(packet) = reader.next_packet().unwrap() {
        let ts: Timestamp = packet.ts;
        let _ = decode::decode(packet.link, packet.data, &mut |ip| {
            tracker.process(ts, ip, &mut |r| records.push(r));
        });
    }
    tracker.finish(&mut |r| records.push(r));
    drop(tracker);
    let recorded = std::mem::take(&mut *recorder.0.lock().unwrap());
    (recorded, records)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_counters(sc: &Scenario, client: &StreamStats, server: &StreamStats) {
    let name = sc.name;
    assert_eq!(client.overlap_conflicts, sc.conflicts, "{name}: conflicts");
    assert_eq!(client.missed_bytes, sc.hole_bytes, "{name}: hole bytes");
    assert_eq!(client.dropped_bytes, sc.dropped_bytes, "{name}: dropped");
    assert_eq!(client.truncated, sc.truncated, "{name}: truncated");
    assert_eq!(
        *server,
        StreamStats {
            delivered_bytes: sc.server_stream.len() as u64,
            ..StreamStats::default()
        },
        "{name}: server direction"
    );
}

#[test]
fn every_scenario_gives_its_stated_streams_and_counters() {
    let (recorded, records) = reassemble(&capture_path(), STREAM_LIMIT_BYTES);
    let all = scenarios();
    assert_eq!(records.len(), all.len());
    for sc in &all {
        let port = sc.client_port;
        let client = recorded
            .bytes
            .get(&(port, true))
            .cloned()
            .unwrap_or_default();
        let server = recorded
            .bytes
            .get(&(port, false))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            text(&client),
            text(&sc.client_stream),
            "{}: client stream",
            sc.name
        );
        assert_eq!(
            text(&server),
            text(&sc.server_stream),
            "{}: server stream",
            sc.name
        );
        let stats = |from_orig| {
            *recorded
                .ended
                .get(&(port, from_orig))
                .unwrap_or_else(|| panic!("{}: stream not ended", sc.name))
        };
        check_counters(sc, &stats(true), &stats(false));
        let record = records
            .iter()
            .find(|r| r.orig.port == port)
            .unwrap_or_else(|| panic!("{}: no session with the client as originator", sc.name));
        assert_eq!(
            record.missed_bytes, sc.missed_bytes,
            "{}: missed_bytes",
            sc.name
        );
    }
}

#[test]
fn write_streams_files_hold_the_stated_streams() {
    let out = std::env::temp_dir().join(format!("ss-evasion-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let streams = out.join("streams");
    let status = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(capture_path())
        .arg("--out")
        .arg(&out)
        .arg("--write-streams")
        .arg(&streams)
        .arg("--stream-memory")
        .arg(STREAM_LIMIT_BYTES.to_string())
        .arg("--no-progress")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let csv = std::fs::read_to_string(out.join("sessions.csv")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&streams)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    // Two files per session, every name `<src>-<dst>-<uid>` with the uid of a csv row.
    assert_eq!(files.len(), 2 * scenarios().len());
    for sc in scenarios() {
        let client = format!("192.000.002.001.{:05}", sc.client_port);
        let server = "192.000.002.002.08080";
        let row = csv
            .lines()
            .find(|l| l.contains(&format!(",192.0.2.1,{},", sc.client_port)))
            .unwrap();
        let uid = row.split(',').nth(1).unwrap();
        let up = streams.join(format!("{client}-{server}-{uid}"));
        let down = streams.join(format!("{server}-{client}-{uid}"));
        assert_eq!(
            text(&std::fs::read(&up).unwrap()),
            text(&sc.client_stream),
            "{}",
            sc.name
        );
        assert_eq!(
            text(&std::fs::read(&down).unwrap()),
            text(&sc.server_stream),
            "{}",
            sc.name
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
