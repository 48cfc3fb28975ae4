//! OUT/sessions/: the sessions as a Hive-partitioned Parquet dataset that many runs, sensors and
//! days append to (`--format parquet --partition`), read as one table by DuckDB, Spark and pandas.
//!
//! Layout: `OUT/sessions/sensor=NAME/date=YYYY-MM-DD/part-ID.parquet`, the date being the UTC
//! day the session started. The files hold sessions.parquet's columns except `sensor`, which the
//! directory name carries (Spark refuses a column that is both in the files and in the path).
//! ID is [`run_identity`]: a hash of the sensor and the input's packets (first and last packet
//! time and packet count of the whole input, however it was cut into files), never of the options or of the program's output, so
//! re-running the same input (even with another version or other options) replaces its own files
//! and a different input adds files beside them.
//!
//! Promises: rows come in start order, so one file is open at a time (memory: one batch); files
//! are written under hidden temporary names (`.part-*.parquet.tmp`, which readers skip) and renamed into place
//! only when complete, so a reader never sees half a file and a crash leaves no duplicate rows;
//! files of an earlier run of the same input that this run did not rewrite are removed.

use super::export::{RowSink, SessionRow};
use super::parquet::{ParquetWriter, session_schema};
use crate::analysis::FileSummary;
use arrow_schema::{Schema, SchemaRef};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The dataset's directory inside the output directory.
pub const DATASET_DIR_NAME: &str = "sessions";

/// The longest sensor name.
pub const MAX_SENSOR_LEN: usize = 64;

/// Checks a `--sensor` name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `_`
/// (Spark and Hadoop skip such directories), so it is a directory name every reader takes as is.
pub fn check_sensor_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SENSOR_LEN {
        return Err(format!(
            "sensor name must be 1 to {MAX_SENSOR_LEN} characters, got {}",
            name.len()
        ));
    }
    if name.starts_with(['.', '_']) {
        return Err(format!(
            "sensor name {name:?} must not start with '.' or '_'"
        ));
    }
    if let Some(c) = name.chars().find(|c| !sensor_char(*c)) {
        return Err(format!(
            "sensor name {name:?} holds {c:?}: use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

fn sensor_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The default sensor name: `stdin` for `-`, else the name of the directory holding the first
/// input (the input itself when it is a directory), made a valid name (other characters become
/// `-`); `sensor` when nothing is left.
pub fn default_sensor(first_input: &Path) -> String {
    if first_input.as_os_str() == "-" {
        return "stdin".into();
    }
    let absolute = std::path::absolute(first_input).unwrap_or_else(|_| first_input.into());
    let dir = if absolute.is_dir() {
        Some(absolute.as_path())
    } else {
        absolute.parent()
    };
    let raw = dir
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    sensor_name_from(&raw)
}

/// `raw` made a valid sensor name (other characters become `-`, no leading `.` or `_`, at most
/// [`MAX_SENSOR_LEN`] characters); `sensor` when nothing is left.
pub fn sensor_name_from(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| if sensor_char(c) { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_start_matches(['.', '_']);
    let cut: String = cleaned.chars().take(MAX_SENSOR_LEN).collect();
    if cut.is_empty() { "sensor".into() } else { cut }
}

/// The identity of one run's input: 16 hex digits of SHA-256 over the sensor and the input as
/// a whole: its first and last packet time and its packet count. How the traffic was
/// cut into files does not enter it, so the same capture split another way (another
/// `tcpdump -C`, `editcap -c`) gets the same identity and its rows replace, not duplicate, the
/// rows written before.
pub fn run_identity(sensor: &str, files: &[FileSummary]) -> String {
    let first = files
        .iter()
        .filter_map(|f| f.first_ts)
        .min()
        .map_or(0, |t| t.0);
    let last = files
        .iter()
        .filter_map(|f| f.last_ts)
        .max()
        .map_or(0, |t| t.0);
    let packets: u64 = files.iter().map(|f| f.packets).sum();
    let mut hasher = Sha256::new();
    hasher.update(b"sessionscope-dataset-v2\0");
    hasher.update(sensor.as_bytes());
    hasher.update([0]);
    for value in [first, last] {
        hasher.update(value.to_le_bytes());
    }
    hasher.update(packets.to_le_bytes());
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The schema of the dataset's files: sessions.parquet's without `sensor`.
pub fn file_schema() -> SchemaRef {
    let full = session_schema();
    let fields: Vec<_> = full
        .fields()
        .iter()
        .filter(|f| f.name() != "sensor")
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// One file being written: its day, its temporary path, its writer.
struct OpenPart {
    date: String,
    temp: PathBuf,
    writer: Box<ParquetWriter>,
}

/// Writes the sessions of one run into the dataset; see the module documentation.
pub struct DatasetWriter {
    /// OUT/sessions/sensor=NAME
    sensor_dir: PathBuf,
    schema: SchemaRef,
    open: Option<OpenPart>,
    /// Completed files: (date, temporary path).
    done: Vec<(String, PathBuf)>,
    identity: Option<String>,
}

impl DatasetWriter {
    /// Prepares `dir/sessions/sensor=NAME/` (`sensor` checked by [`check_sensor_name`]).
    pub fn create(dir: &Path, sensor: &str) -> io::Result<Self> {
        check_sensor_name(sensor).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let sensor_dir = dir.join(DATASET_DIR_NAME).join(format!("sensor={sensor}"));
        std::fs::create_dir_all(&sensor_dir)?;
        Ok(DatasetWriter {
            sensor_dir,
            schema: file_schema(),
            open: None,
            done: Vec::new(),
            identity: None,
        })
    }

    fn close_open(&mut self) -> io::Result<()> {
        if let Some(part) = self.open.take() {
            let writer: Box<dyn RowSink> = part.writer;
            writer.finish()?;
            self.done.push((part.date, part.temp));
        }
        Ok(())
    }

    fn open_part(&mut self, date: String) -> io::Result<()> {
        let dir = self.sensor_dir.join(format!("date={date}"));
        std::fs::create_dir_all(&dir)?;
        // Hidden and not `*.parquet`: Spark skips dot files, DuckDB's `**/*.parquet` would not.
        let temp = dir.join(format!(
            ".part-{}-{}.parquet.tmp",
            std::process::id(),
            self.done.len()
        ));
        let writer = Box::new(ParquetWriter::create_file(&temp, self.schema.clone())?);
        self.open = Some(OpenPart { date, temp, writer });
        Ok(())
    }

    /// The final names: `part-ID.parquet`, `part-ID-N.parquet` for a day's further files.
    fn final_names(&self, identity: &str) -> Vec<(PathBuf, PathBuf)> {
        let mut names = Vec::new();
        for (i, (date, temp)) in self.done.iter().enumerate() {
            let earlier = self.done.iter().take(i).filter(|(d, _)| d == date).count();
            let name = if earlier == 0 {
                format!("part-{identity}.parquet")
            } else {
                format!("part-{identity}-{earlier}.parquet")
            };
            let dir = self.sensor_dir.join(format!("date={date}"));
            names.push((temp.clone(), dir.join(name)));
        }
        names
    }

    /// Removes this identity's files in `sensor=NAME/date=*/` that are not in `keep`.
    fn remove_stale(&self, identity: &str, keep: &[PathBuf]) -> io::Result<()> {
        let prefix = format!("part-{identity}");
        for day in std::fs::read_dir(&self.sensor_dir)? {
            let day = day?.path();
            if !day.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&day)? {
                let path = file?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ours = name
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".parquet"))
                    .is_some_and(|rest| {
                        rest.is_empty()
                            || rest
                                .strip_prefix('-')
                                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    });
                if ours && !keep.contains(&path) {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// The UTC day of a start in microseconds, `YYYY-MM-DD`.
fn utc_date(ts_micros: i64) -> io::Result<String> {
    chrono::DateTime::from_timestamp_micros(ts_micros)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "session start out of range"))
}

impl RowSink for DatasetWriter {
    fn write_row(&mut self, row: &SessionRow<'_>) -> io::Result<()> {
        let date = utc_date(row.ts_micros)?;
        if self.open.as_ref().is_none_or(|p| p.date != date) {
            self.close_open()?;
            self.open_part(date)?;
        }
        match self.open.as_mut() {
            Some(part) => part.writer.write_row(row),
            None => Err(io::Error::other("internal error: no open dataset file")),
        }
    }

    fn set_identity(&mut self, identity: &str) {
        self.identity = Some(identity.to_string());
    }

    fn finish(mut self: Box<Self>) -> io::Result<PathBuf> {
        self.close_open()?;
        let identity = self.identity.clone().ok_or_else(|| {
            io::Error::other("internal error: the dataset's run identity was not set")
        })?;
        let names = self.final_names(&identity);
        for (temp, fin) in &names {
            std::fs::rename(temp, fin)?;
        }
        let kept: Vec<PathBuf> = names.into_iter().map(|(_, f)| f).collect();
        self.remove_stale(&identity, &kept)?;
        Ok(self
            .sensor_dir
            .parent()
            .map_or_else(|| self.sensor_dir.clone(), Path::to_path_buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sessionscope-ds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn row(ts_micros: i64) -> SessionRow<'static> {
        SessionRow {
            ts_micros,
            uid: "C1",
            community_id: "1:x",
            orig_h: "10.0.0.1",
            orig_p: 40000,
            resp_h: "10.0.0.2",
            resp_p: 443,
            proto: "tcp",
            service: "ssl",
            duration_micros: 1,
            orig_bytes: 1,
            resp_bytes: 2,
            conn_state: "SF",
            missed_bytes: 0,
            history: "ShADadFf",
            orig_pkts: 5,
            orig_ip_bytes: 300,
            resp_pkts: 5,
            resp_ip_bytes: 300,
            ip_proto: 6,
            service_evidence: "port",
            end_reason: "closed",
            tunnel_depth: 0,
            related_uid: "",
            content: [""; crate::report::export::CONTENT_COLUMN_COUNT],
            initiator: "",
            initiator_reason: "",
            anomalies: "",
            sensor: "lab",
        }
    }

    /// 2024-03-01T23:59:59Z and 2024-03-02T00:00:01Z (from `date -u -d ... +%s`).
    const BEFORE_MIDNIGHT: i64 = 1_709_337_599_000_000;
    const AFTER_MIDNIGHT: i64 = 1_709_337_601_000_000;

    fn write_run(dir: &Path, identity: &str, starts: &[i64]) -> PathBuf {
        let mut w: Box<dyn RowSink> = Box::new(DatasetWriter::create(dir, "lab").unwrap());
        w.set_identity(identity);
        for ts in starts {
            w.write_row(&row(*ts)).unwrap();
        }
        w.finish().unwrap()
    }

    fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for day in std::fs::read_dir(root.join("sensor=lab")).unwrap() {
            let day = day.unwrap().path();
            for f in std::fs::read_dir(&day).unwrap() {
                let f = f.unwrap().path();
                out.push(format!(
                    "{}/{}",
                    day.file_name().unwrap().to_str().unwrap(),
                    f.file_name().unwrap().to_str().unwrap()
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn days_split_and_reruns_replace() {
        let dir = temp_dir("days");
        let root = write_run(
            &dir,
            "aaaa",
            &[BEFORE_MIDNIGHT, AFTER_MIDNIGHT, AFTER_MIDNIGHT],
        );
        assert_eq!(root, dir.join("sessions"));
        assert_eq!(
            files(&root),
            [
                "date=2024-03-01/part-aaaa.parquet",
                "date=2024-03-02/part-aaaa.parquet"
            ]
        );
        let path = root.join("sensor=lab/date=2024-03-02/part-aaaa.parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let b = &batches[0];
        assert!(b.column_by_name("sensor").is_none());
        let ts = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), AFTER_MIDNIGHT);

        // The same input again, now only on the second day: its old first-day file goes.
        write_run(&dir, "aaaa", &[AFTER_MIDNIGHT]);
        assert_eq!(files(&root), ["date=2024-03-02/part-aaaa.parquet"]);
        // Another input adds its own file.
        write_run(&dir, "bbbb", &[AFTER_MIDNIGHT]);
        assert_eq!(
            files(&root),
            [
                "date=2024-03-02/part-aaaa.parquet",
                "date=2024-03-02/part-bbbb.parquet"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn identity_depends_on_packets_and_sensor_not_names() {
        let file = |name: &str, first: i64, packets: u64| FileSummary {
            name: name.into(),
            packets,
            first_ts: Some(Timestamp(first)),
            last_ts: Some(Timestamp(first + 10)),
            ..FileSummary::default()
        };
        let a = run_identity("s1", &[file("a.pcap", 1, 10), file("b.pcap", 100, 5)]);
        // Renamed and listed in another order: the same input.
        let renamed = run_identity("s1", &[file("y.pcap", 100, 5), file("x.pcap", 1, 10)]);
        assert_eq!(a, renamed);
        assert_eq!(a.len(), 16);
        assert_ne!(
            a,
            run_identity("s2", &[file("a.pcap", 1, 10), file("b.pcap", 100, 5)])
        );
        assert_ne!(a, run_identity("s1", &[file("a.pcap", 1, 10)]));
        // The same packets cut at another point (a.pcap 1..11 and b.pcap 100..110 with 15
        // packets in all): the same input, so the same files and no duplicate rows.
        let resplit = run_identity(
            "s1",
            &[
                FileSummary {
                    last_ts: Some(Timestamp(50)),
                    ..file("p1.pcap", 1, 12)
                },
                FileSummary {
                    first_ts: Some(Timestamp(60)),
                    ..file("p2.pcap", 100, 3)
                },
            ],
        );
        assert_eq!(a, resplit);
    }

    #[test]
    fn sensor_names() {
        assert!(check_sensor_name("dc1-tap.3_b").is_ok());
        for bad in ["", ".hidden", "_x", "a/b", "a=b", "a b", &"x".repeat(65)] {
            assert!(check_sensor_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(default_sensor(Path::new("-")), "stdin");
        assert_eq!(
            default_sensor(Path::new("/var/capture/sensor 1/x.pcap")),
            "sensor-1"
        );
        assert_eq!(default_sensor(Path::new("/x.pcap")), "sensor");
        let dir = temp_dir("sensor-default");
        assert_eq!(
            default_sensor(&dir),
            dir.file_name().unwrap().to_str().unwrap()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
