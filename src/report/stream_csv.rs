//! Streaming sessions CSV for live runs: rows appended in end order as sessions finish.
//!
//! Owns the files `DIR/sessions-YYYYMMDDTHHMMSSZ.csv` (UTC time the file was opened), each
//! starting with the header, and their rotation by time (aligned to multiples of the interval
//! since the epoch, so `1h` rotates on the hour) or by size. Promises: every row reaches the
//! kernel with one write of a complete line as soon as its session ends, so a killed process
//! loses only the sessions still open; a row never spans two files; when a write fails (disk
//! full) the file is cut back to its last whole row and the error is returned. Rows are
//! formatted by [`RowFormatter`], the same code as the start-ordered `sessions.csv`.

use super::csv::{CsvError, RowFormatter};
use crate::session::SessionRecord;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a live run starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// One file for the whole run.
    Never,
    /// A new file at each multiple of this interval (UTC, since the epoch).
    Every(Duration),
    /// A new file before a row would take the current one past this many bytes (a file holds
    /// at least one row, so a single longer row still gets written).
    Size(u64),
}

impl Rotation {
    /// Parses `1h`, `30m`, `90s`, `2d` (time) or `100MB`, `512KB`, `1GB`, `4096B` (size, powers
    /// of 1000; `KiB`, `MiB`, `GiB` for powers of 1024).
    pub fn parse(text: &str) -> Result<Rotation, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: expected a number and a unit, like 1h or 100MB"))?;
        if value == 0 {
            return Err(format!("`{text}`: must be more than 0"));
        }
        let bad_unit = || {
            format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h, d, or B, KB, MB, GB, KiB, MiB, GiB)"
            )
        };
        let seconds = |per: u64| {
            value
                .checked_mul(per)
                .map(|s| Rotation::Every(Duration::from_secs(s)))
        };
        let bytes = |per: u64| value.checked_mul(per).map(Rotation::Size);
        let rotation = match unit.trim() {
            "s" => seconds(1),
            "m" | "min" => seconds(60),
            "h" => seconds(3600),
            "d" => seconds(86_400),
            "B" => bytes(1),
            "KB" | "kB" => bytes(1_000),
            "MB" => bytes(1_000_000),
            "GB" => bytes(1_000_000_000),
            "KiB" => bytes(1 << 10),
            "MiB" => bytes(1 << 20),
            "GiB" => bytes(1 << 30),
            _ => return Err(bad_unit()),
        };
        rotation.ok_or_else(|| format!("`{text}`: too large"))
    }
}

/// What a finished streaming writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    pub rows: u64,
}

struct OpenFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file (header included): where the next row starts.
    len: u64,
    rows: u64,
    /// For time rotation: when this file's interval ends.
    rotate_at: Option<SystemTime>,
}

/// Appends session rows to rotating CSV files; see the module documentation.
pub struct StreamingCsvWriter {
    dir: PathBuf,
    rotation: Rotation,
    rows: RowFormatter,
    header: Vec<u8>,
    current: OpenFile,
    files: Vec<PathBuf>,
    rows_written: u64,
}

impl StreamingCsvWriter {
    /// Opens the first file in `dir` (which must exist) and writes its header.
    pub fn create(
        dir: &Path,
        rotation: Rotation,
        community_id_seed: u16,
    ) -> Result<Self, CsvError> {
        Self::create_at(dir, rotation, community_id_seed, SystemTime::now())
    }

    fn create_at(
        dir: &Path,
        rotation: Rotation,
        community_id_seed: u16,
        now: SystemTime,
    ) -> Result<Self, CsvError> {
        let header = RowFormatter::header()?;
        let current = open_file(dir, &header, rotation, now)?;
        Ok(StreamingCsvWriter {
            dir: dir.to_path_buf(),
            rotation,
            rows: RowFormatter::new(community_id_seed),
            files: vec![current.path.clone()],
            header,
            current,
            rows_written: 0,
        })
    }

    /// Sets the `sensor` column's value for the rows written from now on.
    pub fn set_sensor(&mut self, sensor: &str) {
        self.rows.set_sensor(sensor);
    }

    /// The file rows go to now.
    pub fn current_path(&self) -> &Path {
        &self.current.path
    }

    /// Rows written so far, all files together.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Appends one finished session (rotating first when due) and hands it to the kernel.
    pub fn write(&mut self, record: &SessionRecord) -> Result<(), CsvError> {
        self.write_at(record, SystemTime::now())
    }

    fn write_at(&mut self, record: &SessionRecord, now: SystemTime) -> Result<(), CsvError> {
        let row_len = self.rows.row(record)?.len() as u64;
        let size_due = match self.rotation {
            Rotation::Size(limit) => {
                self.current.rows > 0 && self.current.len.saturating_add(row_len) > limit
            }
            _ => false,
        };
        if size_due {
            self.rotate(now)?;
        } else {
            self.rotate_if_due(now)?;
        }
        // The formatter still holds the row: formatting it again would give the same bytes.
        let row = self.rows.last_row();
        append_whole(&mut self.current, row)?;
        self.current.rows += 1;
        self.rows_written += 1;
        Ok(())
    }

    /// Starts a new file when the time interval of the current one has passed (call it now and
    /// then on a quiet link). Returns the file just closed, if any.
    pub fn rotate_if_due(&mut self, now: SystemTime) -> Result<Option<PathBuf>, CsvError> {
        match self.current.rotate_at {
            Some(at) if now >= at => self.rotate(now).map(Some),
            _ => Ok(None),
        }
    }

    /// Closes the current file and opens the next; returns the closed file's path.
    fn rotate(&mut self, now: SystemTime) -> Result<PathBuf, CsvError> {
        let next = open_file(&self.dir, &self.header, self.rotation, now)?;
        let closed = std::mem::replace(&mut self.current, next);
        self.files.push(self.current.path.clone());
        // Rows went out with unbuffered writes; syncing is for durability across power loss.
        let _ = closed.file.sync_data();
        Ok(closed.path)
    }

    /// Syncs the last file and says what was written.
    pub fn finish(self) -> Result<StreamStats, CsvError> {
        self.current
            .file
            .sync_data()
            .map_err(|source| CsvError::Io {
                path: self.current.path.clone(),
                source,
            })?;
        Ok(StreamStats {
            files: self.files,
            rows: self.rows_written,
        })
    }
}

/// `DIR/sessions-YYYYMMDDTHHMMSSZ.csv`, or with `-1`, `-2`... when that name is taken (two
/// rotations in one second, or a run restarted into the same directory).
fn open_file(
    dir: &Path,
    header: &[u8],
    rotation: Rotation,
    now: SystemTime,
) -> Result<OpenFile, CsvError> {
    let stamp = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ");
    let mut attempt = 0u32;
    let (path, file) = loop {
        let name = if attempt == 0 {
            format!("sessions-{stamp}.csv")
        } else {
            format!("sessions-{stamp}-{attempt}.csv")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => break (path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 10_000 => {
                attempt += 1;
            }
            Err(source) => return Err(CsvError::Io { path, source }),
        }
    };
    let mut open = OpenFile {
        path,
        file,
        len: 0,
        rows: 0,
        rotate_at: match rotation {
            Rotation::Every(interval) => Some(next_boundary(now, interval)),
            _ => None,
        },
    };
    append_whole(&mut open, header)?;
    Ok(open)
}

/// The first multiple of `interval` since the epoch that is after `now`.
fn next_boundary(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let step = interval.as_secs().max(1);
    let next = (since / step).saturating_add(1).saturating_mul(step);
    UNIX_EPOCH + Duration::from_secs(next)
}

/// Writes `line` at the end of the file; on failure cuts the file back to where it was, so a
/// reader never sees half a row.
fn append_whole(open: &mut OpenFile, line: &[u8]) -> Result<(), CsvError> {
    match open.file.write_all(line) {
        Ok(()) => {
            open.len = open.len.saturating_add(line.len() as u64);
            Ok(())
        }
        Err(source) => {
            let _ = open.file.set_len(open.len);
            Err(CsvError::Io {
                path: open.path.clone(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::session::{
        ConnState, DirectionStats, EndReason, Endpoint, History, Proto, ServiceEvidence, Uid,
    };

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sessionscope-stream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn session(port: u16) -> SessionRecord {
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::from_micros(1_700_000_000_000_000),
            last: Timestamp::from_micros(1_700_000_000_500_000),
            orig: Endpoint {
                addr: "10.0.0.1".parse().unwrap(),
                port,
            },
            resp: Endpoint {
                addr: "10.0.0.2".parse().unwrap(),
                port: 80,
            },
            proto: Proto::Tcp,
            ip_proto: 6,
            orig_stats: DirectionStats::default(),
            resp_stats: DirectionStats::default(),
            conn_state: ConnState::REJ,
            history: History::default(),
            missed_bytes: 0,
            service: Some("http"),
            service_evidence: ServiceEvidence::Port,
            end_reason: EndReason::Closed,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// (header, orig_p of each row) of a file, checking every row has every column.
    fn read(path: &Path) -> (String, Vec<String>) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-row", path.display());
        let mut rdr = csv::Reader::from_path(path).unwrap();
        let header = rdr.headers().unwrap().iter().collect::<Vec<_>>().join(",");
        let ports = rdr
            .records()
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(r.len(), super::super::csv::SESSIONS_CSV_COLUMNS.len());
                r[4].to_string()
            })
            .collect();
        (header, ports)
    }

    #[test]
    fn parses_rotation() {
        assert_eq!(
            Rotation::parse("1h"),
            Ok(Rotation::Every(Duration::from_secs(3600)))
        );
        assert_eq!(
            Rotation::parse("30m"),
            Ok(Rotation::Every(Duration::from_secs(1800)))
        );
        assert_eq!(Rotation::parse("100MB"), Ok(Rotation::Size(100_000_000)));
        assert_eq!(Rotation::parse("2KiB"), Ok(Rotation::Size(2048)));
        assert!(Rotation::parse("0h").is_err());
        assert!(Rotation::parse("10 parsecs").is_err());
        assert!(Rotation::parse("MB").is_err());
        assert!(Rotation::parse("99999999999999999999GB").is_err());
    }

    #[test]
    fn rows_appear_in_the_file_as_they_are_written() {
        let dir = temp_dir("append");
        // 2023-11-14T22:13:20Z
        let mut w =
            StreamingCsvWriter::create_at(&dir, Rotation::Never, 0, at(1_700_000_000)).unwrap();
        let path = w.current_path().to_path_buf();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            "sessions-20231114T221320Z.csv"
        );
        w.write_at(&session(1001), at(1_700_000_001)).unwrap();
        // Readable before finish: nothing is buffered in the process.
        let (header, ports) = read(&path);
        assert!(header.starts_with("ts,uid,community_id,"));
        assert_eq!(ports, ["1001"]);
        w.write_at(&session(1002), at(1_700_000_002)).unwrap();
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows, 2);
        assert_eq!(stats.files, vec![path.clone()]);
        assert_eq!(read(&path).1, ["1001", "1002"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn time_rotation_on_interval_boundaries() {
        let dir = temp_dir("time");
        let hour = Rotation::Every(Duration::from_secs(3600));
        // 10:59:00 UTC on 2023-11-14 is 1_699_959_540.
        let start = 1_699_959_540;
        let mut w = StreamingCsvWriter::create_at(&dir, hour, 0, at(start)).unwrap();
        w.write_at(&session(1), at(start + 30)).unwrap();
        // 11:00:00 is a boundary: nothing to write, but a quiet link still rotates.
        let closed = w.rotate_if_due(at(start + 60)).unwrap().unwrap();
        assert!(closed.ends_with("sessions-20231114T105900Z.csv"));
        assert_eq!(w.rotate_if_due(at(start + 61)).unwrap(), None);
        w.write_at(&session(2), at(start + 62)).unwrap();
        // 12:00:00 passes while the next row is waiting: it goes to a new file.
        w.write_at(&session(3), at(start + 60 + 3600)).unwrap();
        let stats = w.finish().unwrap();
        let names: Vec<_> = stats
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "sessions-20231114T105900Z.csv",
                "sessions-20231114T110000Z.csv",
                "sessions-20231114T120000Z.csv"
            ]
        );
        let ports: Vec<Vec<String>> = stats.files.iter().map(|p| read(p).1).collect();
        assert_eq!(ports, [vec!["1"], vec!["2"], vec!["3"]]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn size_rotation_keeps_rows_whole_and_names_unique() {
        let dir = temp_dir("size");
        let header_len = RowFormatter::header().unwrap().len() as u64;
        let row_len = RowFormatter::new(0).row(&session(1000)).unwrap().len() as u64;
        // Room for the header and two rows, not three.
        let limit = header_len + 2 * row_len + row_len / 2;
        let mut w =
            StreamingCsvWriter::create_at(&dir, Rotation::Size(limit), 0, at(1_700_000_000))
                .unwrap();
        for port in 1000..1007u16 {
            // All in the same second: names must not collide.
            w.write_at(&session(port), at(1_700_000_000)).unwrap();
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows, 7);
        assert_eq!(stats.files.len(), 4);
        assert!(stats.files[1].ends_with("sessions-20231114T221320Z-1.csv"));
        let mut all = Vec::new();
        for path in &stats.files {
            assert!(std::fs::metadata(path).unwrap().len() <= limit);
            all.extend(read(path).1);
        }
        let expected: Vec<String> = (1000..1007).map(|p: u16| p.to_string()).collect();
        assert_eq!(all, expected);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_row_longer_than_the_limit_still_gets_its_own_file() {
        let dir = temp_dir("tiny");
        let mut w =
            StreamingCsvWriter::create_at(&dir, Rotation::Size(10), 0, at(1_700_000_000)).unwrap();
        w.write_at(&session(1), at(1_700_000_000)).unwrap();
        w.write_at(&session(2), at(1_700_000_000)).unwrap();
        let stats = w.finish().unwrap();
        assert_eq!(stats.files.len(), 2);
        assert_eq!(read(&stats.files[0]).1, ["1"]);
        assert_eq!(read(&stats.files[1]).1, ["2"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_partial_row() {
        // /dev/full accepts opening and fails every write with ENOSPC, like a full disk.
        let Ok(file) = OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut open = OpenFile {
            path: PathBuf::from("/dev/full"),
            file,
            len: 0,
            rows: 0,
            rotate_at: None,
        };
        let error = append_whole(&mut open, b"a,b,c\n").unwrap_err();
        assert!(error.to_string().contains("/dev/full"), "{error}");
        assert_eq!(open.len, 0);
    }
}
