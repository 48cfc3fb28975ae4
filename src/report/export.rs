//! Session export formats beside sessions.csv: which ones exist, and the typed row they share.
//!
//! Every format is written from the same start-ordered stream: the CSV row that
//! [`super::csv::SessionCsvWriter`] formats is the canonical text of a session, and
//! [`SessionRow::parse`] reads it back into typed fields for JSON lines and Parquet. So all
//! formats hold the same sessions, in the same order, with the same values (addresses in the
//! same canonical text, durations rounded the same way), and the ordering machinery
//! ([`super::order`]) exists once. [`CONTENT_COLUMNS`] says how each content column is typed
//! and named in the other formats. Promises: parsing a row never panics; a row that does not
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

/// How a content column's text is typed in JSON lines and Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A string (null / left out when empty).
    Text,
    /// A whole number (the CSV field is digits or empty).
    Integer,
    /// A list: the CSV field joins its items with this separator.
    List(char),
}

/// One content column: its sessions.csv (and Parquet) name, its JSON lines name, its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentColumn {
    pub name: &'static str,
    /// Zeek's name where a Zeek log has the same value (`log.field`, the way Zeek's JSON
    /// names a record's fields, as in `id.orig_h`), else ours.
    pub json_name: &'static str,
    pub kind: ContentKind,
}

const fn content(name: &'static str, json_name: &'static str, kind: ContentKind) -> ContentColumn {
    ContentColumn {
        name,
        json_name,
        kind,
    }
}

/// How many content columns follow `related_uid` in sessions.csv.
pub const CONTENT_COLUMN_COUNT: usize = 23;

/// The content columns, in sessions.csv order (docs/sessions-csv.md has the mapping).
pub const CONTENT_COLUMNS: [ContentColumn; CONTENT_COLUMN_COUNT] = {
    use ContentKind::{Integer, List, Text};
    [
        content("server_name", "server_name", Text),
        content("tls_version", "ssl.version", Text),
        content("tls_alpn", "tls_alpn", List(',')),
        content("ja4", "ja4", Text),
        content("http_method", "http.method", Text),
        content("http_host", "http.host", Text),
        content("http_uri", "http.uri", Text),
        content("http_user_agent", "http.user_agent", Text),
        content("http_status", "http.status_code", Integer),
        content("dns_query", "dns.query", Text),
        content("dns_qtype", "dns.qtype_name", Text),
        content("dns_rcode", "dns.rcode_name", Text),
        content("dns_answers", "dns.answers", List(' ')),
        content("netbios_name", "netbios_name", Text),
        content("ssh_client", "ssh.client", Text),
        content("ssh_server", "ssh.server", Text),
        content("banner", "banner", Text),
        content("quic_version", "quic.version", Text),
        content("dhcp_hostname", "dhcp.host_name", Text),
        content("dhcp_vendor_class", "dhcp_vendor_class", Text),
        content("ntp_version", "ntp.version", Integer),
        content("ntp_mode", "ntp_mode", Text),
        content("ssdp_target", "ssdp_target", Text),
    ]
};

/// The items of a list column's CSV text (empty items, as from an empty field, are skipped).
pub fn list_items(text: &str, separator: char) -> impl Iterator<Item = &str> {
    text.split(separator).filter(|item| !item.is_empty())
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
    /// The content columns' CSV text, per [`CONTENT_COLUMNS`] (empty: no value). An
    /// [`ContentKind::Integer`] column holds digits only (checked by [`SessionRow::parse`]).
    pub content: [&'a str; CONTENT_COLUMN_COUNT],
    /// `user`, `technology`, or empty when the rows were not labelled.
    pub initiator: &'a str,
    pub initiator_reason: &'a str,
    /// Evasion and inconsistency counts, `name:count` joined by `;` (empty: none).
    pub anomalies: &'a str,
    /// The `sensor` column (the row's last).
    pub sensor: &'a str,
}

impl<'a> SessionRow<'a> {
    /// Reads the 51 fields of a sessions.csv row (in [`super::csv::SESSIONS_CSV_COLUMNS`] order).
    pub fn parse(record: &'a csv::StringRecord) -> Result<Self, RowError> {
        let mut fields = record.iter();
        let mut next = |name: &'static str| fields.next().ok_or(RowError { column: name });
        let ts_micros = micros(next("ts")?).ok_or(RowError { column: "ts" })?;
        let uid = next("uid")?;
        let community_id = next("community_id")?;
        let orig_h = next("orig_h")?;
        let orig_p = number(next("orig_p")?, "orig_p")?;
        let resp_h = next("resp_h")?;
        let resp_p = number(next("resp_p")?, "resp_p")?;
        let proto = next("proto")?;
        let service = next("service")?;
        let duration_micros = micros(next("duration")?)
            .and_then(|m| u64::try_from(m).ok())
            .ok_or(RowError { column: "duration" })?;
        let orig_bytes = number(next("orig_bytes")?, "orig_bytes")?;
        let resp_bytes = number(next("resp_bytes")?, "resp_bytes")?;
        let conn_state = next("conn_state")?;
        let missed_bytes = number(next("missed_bytes")?, "missed_bytes")?;
        let history = next("history")?;
        let orig_pkts = number(next("orig_pkts")?, "orig_pkts")?;
        let orig_ip_bytes = number(next("orig_ip_bytes")?, "orig_ip_bytes")?;
        let resp_pkts = number(next("resp_pkts")?, "resp_pkts")?;
        let resp_ip_bytes = number(next("resp_ip_bytes")?, "resp_ip_bytes")?;
        let ip_proto = number(next("ip_proto")?, "ip_proto")?;
        let service_evidence = next("service_evidence")?;
        let end_reason = next("end_reason")?;
        let tunnel_depth = number(next("tunnel_depth")?, "tunnel_depth")?;
        let related_uid = next("related_uid")?;
        let mut content = [""; CONTENT_COLUMN_COUNT];
        for (slot, column) in content.iter_mut().zip(CONTENT_COLUMNS.iter()) {
            let text = next(column.name)?;
            if column.kind == ContentKind::Integer && !text.is_empty() {
                number::<i32>(text, column.name)?;
            }
            *slot = text;
        }
        Ok(SessionRow {
            ts_micros,
            uid,
            community_id,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            proto,
            service,
            duration_micros,
            orig_bytes,
            resp_bytes,
            conn_state,
            missed_bytes,
            history,
            orig_pkts,
            orig_ip_bytes,
            resp_pkts,
            resp_ip_bytes,
            ip_proto,
            service_evidence,
            end_reason,
            tunnel_depth,
            related_uid,
            content,
            initiator: next("initiator")?,
            initiator_reason: next("initiator_reason")?,
            anomalies: next("anomalies")?,
            sensor: next("sensor")?,
        })
    }

    /// The CSV text of the content column `name` (empty when it has no value or no such column).
    pub fn content_value(&self, name: &str) -> &'a str {
        CONTENT_COLUMNS
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.content.get(i).copied())
            .unwrap_or("")
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
pub(crate) mod tests {
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
    fn content_columns_are_the_csv_columns_between_related_uid_and_initiator() {
        let names: Vec<&str> = CONTENT_COLUMNS.iter().map(|c| c.name).collect();
        let csv = &super::super::csv::SESSIONS_CSV_COLUMNS;
        let at = csv.iter().position(|c| *c == "related_uid").unwrap() + 1;
        assert_eq!(names, csv[at..at + CONTENT_COLUMN_COUNT]);
        assert_eq!(
            csv[at + CONTENT_COLUMN_COUNT..],
            ["initiator", "initiator_reason", "anomalies", "sensor"]
        );
    }

    /// A full 51-column row, as docs/sessions-csv.md describes one (an HTTP session).
    pub(crate) fn full_record(http_status: &str) -> csv::StringRecord {
        let mut fields = vec![
            "1362692526.869344",
            "CabcDEF123",
            "1:yvyB8h+3dnggTZW0UEITWCst97w=",
            "141.142.228.5",
            "59856",
            "192.150.187.43",
            "80",
            "tcp",
            "http",
            "0.211484",
            "136",
            "5007",
            "SF",
            "0",
            "ShADadFf",
            "7",
            "512",
            "7",
            "5379",
            "6",
            "content",
            "closed",
            "0",
            "",
        ];
        let mut content = vec![""; CONTENT_COLUMN_COUNT];
        content[0] = "bro.org";
        content[2] = "h2,http/1.1";
        content[4] = "GET";
        content[5] = "bro.org";
        content[6] = "/download/CHANGES.bro-aux.txt";
        content[7] = "Wget/1.14 (darwin12.2.0)";
        content[8] = http_status;
        content[12] = "192.0.2.1 example.test";
        fields.extend(content);
        fields.extend(["user", "an HTTP request", "SYN_with_data:1", "lab-1"]);
        csv::StringRecord::from(fields)
    }

    #[test]
    fn every_column_reads_back() {
        let record = full_record("200");
        let row = SessionRow::parse(&record).unwrap();
        assert_eq!(row.ts_micros, 1_362_692_526_869_344);
        assert_eq!(row.resp_p, 80);
        assert_eq!(row.resp_ip_bytes, 5379);
        assert_eq!(row.content_value("server_name"), "bro.org");
        assert_eq!(row.content_value("http_status"), "200");
        assert_eq!(row.content_value("ssdp_target"), "");
        assert_eq!(row.content_value("no_such_column"), "");
        assert_eq!(row.initiator, "user");
        assert_eq!(row.initiator_reason, "an HTTP request");
        assert_eq!(
            list_items(row.content_value("tls_alpn"), ',').collect::<Vec<_>>(),
            ["h2", "http/1.1"]
        );
        assert_eq!(list_items("", ' ').count(), 0);
    }

    #[test]
    fn a_malformed_integer_content_column_is_an_error() {
        let record = full_record("2x0");
        assert_eq!(
            SessionRow::parse(&record).unwrap_err().column,
            "http_status"
        );
        let full = full_record("200");
        let mut short: Vec<&str> = full.iter().collect();
        short.pop();
        let record = csv::StringRecord::from(short);
        assert_eq!(SessionRow::parse(&record).unwrap_err().column, "sensor");
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
