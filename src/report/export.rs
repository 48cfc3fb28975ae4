//! Session export formats beside sessions.csv: which ones exist, and the typed row they share.
//!
//! Every format is written from the same start-ordered stream: the CSV row that
//! [`super::csv::SessionCsvWriter`] formats is the canonical text of a session, and
//! [`SessionRow::parse`] reads it back into typed fields for JSON lines and Parquet. So all
//! formats hold the same sessions, in the same order, with the same values (addresses in the
//! same canonical text, durations rounded the same way), and the ordering machinery
//! ([`super::order`]) exists once. Promises: parsing a row never panics; a row that does not
//! parse is an error, never a silently wrong value.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An output format for sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportFormat {
    /// sessions.csv (docs/sessions-csv.md).
    Csv,
    /// sessions.jsonl: one JSON object per line with Zeek's conn.log JSON field names.
    Jsonl,
    /// sessions.parquet: typed columns for DuckDB, pandas, Polars, Spark.
    Parquet,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Csv,
        ExportFormat::Jsonl,
        ExportFormat::Parquet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Parquet => "parquet",
        }
    }

    /// Parses a comma-separated list (`csv,jsonl`); repeated names count once.
    pub fn parse_list(text: &str) -> Result<Vec<ExportFormat>, String> {
        let mut formats = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let format = ExportFormat::ALL
                .into_iter()
                .find(|f| f.as_str().eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("unknown format {name:?} (expected csv, jsonl, parquet)"))?;
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        Ok(formats)
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session with typed fields, read back from its sessions.csv row.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow<'a> {
    /// Start, whole microseconds since the epoch (UTC), as `ts` shows it.
    pub ts_micros: i64,
    pub uid: &'a str,
    pub community_id: &'a str,
    pub orig_h: &'a str,
    pub orig_p: u16,
    pub resp_h: &'a str,
    pub resp_p: u16,
    pub proto: &'a str,
    /// Empty when unknown.
    pub service: &'a str,
    /// Rounded microseconds.
    pub duration_micros: u64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: &'a str,
    pub missed_bytes: u64,
    pub history: &'a str,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub ip_proto: u8,
    pub service_evidence: &'a str,
    pub end_reason: &'a str,
    pub tunnel_depth: u8,
    pub related_uid: &'a str,
    /// The `sensor` column (the row's last).
    pub sensor: &'a str,
}

impl<'a> SessionRow<'a> {
    /// Reads the first 24 fields and the sensor of a sessions.csv row (in [`super::csv::SESSIONS_CSV_COLUMNS`] order).
    pub fn parse(record: &'a csv::StringRecord) -> Result<Self, RowError> {
        let mut fields = record.iter();
        let mut next = |name: &'static str| fields.next().ok_or(RowError { column: name });
        Ok(SessionRow {
            ts_micros: micros(next("ts")?).ok_or(RowError { column: "ts" })?,
            uid: next("uid")?,
            community_id: next("community_id")?,
            orig_h: next("orig_h")?,
            orig_p: number(next("orig_p")?, "orig_p")?,
            resp_h: next("resp_h")?,
            resp_p: number(next("resp_p")?, "resp_p")?,
            proto: next("proto")?,
            service: next("service")?,
            duration_micros: micros(next("duration")?)
                .and_then(|m| u64::try_from(m).ok())
                .ok_or(RowError { column: "duration" })?,
            orig_bytes: number(next("orig_bytes")?, "orig_bytes")?,
            resp_bytes: number(next("resp_bytes")?, "resp_bytes")?,
            conn_state: next("conn_state")?,
            missed_bytes: number(next("missed_bytes")?, "missed_bytes")?,
            history: next("history")?,
            orig_pkts: number(next("orig_pkts")?, "orig_pkts")?,
            orig_ip_bytes: number(next("orig_ip_bytes")?, "orig_ip_bytes")?,
            resp_pkts: number(next("resp_pkts")?, "resp_pkts")?,
            resp_ip_bytes: number(next("resp_ip_bytes")?, "resp_ip_bytes")?,
            ip_proto: number(next("ip_proto")?, "ip_proto")?,
            service_evidence: next("service_evidence")?,
            end_reason: next("end_reason")?,
            tunnel_depth: number(next("tunnel_depth")?, "tunnel_depth")?,
            related_uid: next("related_uid")?,
            sensor: record
                .get(super::csv::SENSOR_COLUMN)
                .ok_or(RowError { column: "sensor" })?,
        })
    }
}

/// A sessions.csv row that did not read back (names the first bad column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("internal error: sessions.csv row has a missing or malformed {column} column")]
pub struct RowError {
    pub column: &'static str,
}

impl From<RowError> for io::Error {
    fn from(e: RowError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

fn number<T: std::str::FromStr>(text: &str, column: &'static str) -> Result<T, RowError> {
    text.parse().map_err(|_| RowError { column })
}

/// "SECONDS.UUUUUU" (six decimals, may be negative) to microseconds, as a decimal number.
fn micros(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.')?;
    if frac.len() != 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let frac: i64 = frac.parse().ok()?;
    let whole = secs.checked_mul(1_000_000)?;
    if negative {
        whole.checked_sub(frac)
    } else {
        whole.checked_add(frac)
    }
}

/// A writer that receives every session row in start order.
pub(crate) trait RowSink {
    fn write_row(&mut self, row: &SessionRow<'_>) -> io::Result<()>;
    /// Tells the writer which input the rows come from (see [`super::dataset::run_identity`]);
    /// only the partitioned dataset uses it.
    fn set_identity(&mut self, _identity: &str) {}
    /// Completes the file; returns its path.
    fn finish(self: Box<Self>) -> io::Result<PathBuf>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_lists() {
        assert_eq!(
            ExportFormat::parse_list("csv, JSONL,parquet,csv").unwrap(),
            vec![
                ExportFormat::Csv,
                ExportFormat::Jsonl,
                ExportFormat::Parquet
            ]
        );
        assert!(ExportFormat::parse_list("xml").is_err());
        assert!(ExportFormat::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn timestamps_to_micros() {
        assert_eq!(micros("1362692526.869344"), Some(1_362_692_526_869_344));
        assert_eq!(micros("0.000001"), Some(1));
        // Read as the decimal number any CSV reader sees.
        assert_eq!(micros("-1.500000"), Some(-1_500_000));
        assert_eq!(micros("1.5"), None);
        assert_eq!(micros("x.000000"), None);
        assert_eq!(micros("99999999999999999.000000"), None);
    }

    #[test]
    fn a_short_row_is_an_error_not_a_panic() {
        let record = csv::StringRecord::from(vec!["1.000000", "C1"]);
        assert_eq!(
            SessionRow::parse(&record).unwrap_err().column,
            "community_id"
        );
    }
}
