//! sessions.jsonl: one JSON object per session per line, named as Zeek's JSON conn.log.
//!
//! Owns the JSON lines format. Field names and value types follow Zeek's JSON log writer
//! (`LogAscii::use_json=T`), so pipelines that ingest Zeek's JSON conn.log take these lines:
//! `ts` as epoch seconds (a number), `id.orig_h`/`id.orig_p`/`id.resp_h`/`id.resp_p`, ports and
//! counts as integers, `duration` as seconds, and fields without a value left out (as Zeek
//! leaves out unset fields) rather than written empty. Ours follow Zeek's:
//! `ip_proto`, `community_id` (the name Zeek's community-id script uses), `service_evidence`,
//! `end_reason`, `tunnel_depth`, `related_uid`, `sensor`. The content columns take the name of the Zeek
//! log field with the same value, prefixed by the log (`http.method`, `dns.answers`, as Zeek's
//! JSON names a record's fields) and keep ours where Zeek has none ([`CONTENT_COLUMNS`]); lists
//! are arrays, status and version numbers integers. Promises: every string is escaped per RFC 8259
//! (quotes, backslashes, control characters), so a hostile value stays one string on one line;
//! rows arrive in start order from the shared ordered stream.

use super::export::{CONTENT_COLUMNS, ContentKind, RowSink, SessionRow, list_items};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// File name inside the output directory.
pub const SESSIONS_JSONL_FILE_NAME: &str = "sessions.jsonl";

/// Writes DIR/sessions.jsonl.
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<File>,
    line: String,
}

impl JsonlWriter {
    /// Creates (truncates) `dir/sessions.jsonl`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(SESSIONS_JSONL_FILE_NAME);
        let out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        Ok(JsonlWriter {
            path,
            out,
            line: String::with_capacity(512),
        })
    }
}

impl RowSink for JsonlWriter {
    fn write_row(&mut self, row: &SessionRow<'_>) -> io::Result<()> {
        self.line.clear();
        json_line(row, &mut self.line);
        self.out.write_all(self.line.as_bytes())
    }

    fn finish(mut self: Box<Self>) -> io::Result<PathBuf> {
        self.out.flush()?;
        Ok(self.path)
    }
}

/// Appends one session as a JSON object and a newline.
pub fn json_line(r: &SessionRow<'_>, out: &mut String) {
    let mut obj = Object { out, first: true };
    obj.raw("ts", &seconds(r.ts_micros));
    obj.string("uid", r.uid);
    obj.string("id.orig_h", r.orig_h);
    obj.uint("id.orig_p", u64::from(r.orig_p));
    obj.string("id.resp_h", r.resp_h);
    obj.uint("id.resp_p", u64::from(r.resp_p));
    obj.string("proto", r.proto);
    obj.optional_string("service", r.service);
    obj.raw(
        "duration",
        &seconds(i64::try_from(r.duration_micros).unwrap_or(i64::MAX)),
    );
    obj.uint("orig_bytes", r.orig_bytes);
    obj.uint("resp_bytes", r.resp_bytes);
    obj.string("conn_state", r.conn_state);
    obj.uint("missed_bytes", r.missed_bytes);
    obj.optional_string("history", r.history);
    obj.uint("orig_pkts", r.orig_pkts);
    obj.uint("orig_ip_bytes", r.orig_ip_bytes);
    obj.uint("resp_pkts", r.resp_pkts);
    obj.uint("resp_ip_bytes", r.resp_ip_bytes);
    obj.uint("ip_proto", u64::from(r.ip_proto));
    obj.string("community_id", r.community_id);
    obj.optional_string("service_evidence", r.service_evidence);
    obj.string("end_reason", r.end_reason);
    obj.uint("tunnel_depth", u64::from(r.tunnel_depth));
    obj.optional_string("related_uid", r.related_uid);
    for (column, text) in CONTENT_COLUMNS.iter().zip(r.content) {
        if text.is_empty() {
            continue;
        }
        match column.kind {
            ContentKind::Text => obj.string(column.json_name, text),
            // Checked to be digits when the row was read; a string otherwise, never bad JSON.
            ContentKind::Integer => match text.parse::<u64>() {
                Ok(n) => obj.uint(column.json_name, n),
                Err(_) => obj.string(column.json_name, text),
            },
            ContentKind::List(separator) => obj.list(column.json_name, list_items(text, separator)),
        }
    }
    obj.optional_string("initiator", r.initiator);
    obj.optional_string("initiator_reason", r.initiator_reason);
    obj.optional_string("anomalies", r.anomalies);
    obj.optional_string("sensor", r.sensor);
    obj.out.push_str("}\n");
}

struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl Object<'_> {
    fn key(&mut self, name: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        push_json_string(self.out, name);
        self.out.push(':');
    }

    fn raw(&mut self, name: &str, value: &str) {
        self.key(name);
        self.out.push_str(value);
    }

    fn uint(&mut self, name: &str, value: u64) {
        self.key(name);
        let _ = std::fmt::Write::write_fmt(self.out, format_args!("{value}"));
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        push_json_string(self.out, value);
    }

    /// A JSON array of strings (Zeek writes a `vector of string` this way).
    fn list<'s>(&mut self, name: &str, items: impl Iterator<Item = &'s str>) {
        self.key(name);
        self.out.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_json_string(self.out, item);
        }
        self.out.push(']');
    }

    /// Left out when empty, as Zeek leaves out unset fields.
    fn optional_string(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.string(name, value);
        }
    }
}

/// Microseconds as a JSON number of seconds, the shortest exact form ("1.5", "3.0"), as
/// Zeek's writer shows a time or interval.
pub(crate) fn seconds(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let frac = format!("{:06}", abs % 1_000_000);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() { "0" } else { frac };
    format!("{sign}{}.{frac}", abs / 1_000_000)
}

/// Appends `value` as a JSON string literal (RFC 8259 escaping).
pub fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SessionRow<'static> {
        SessionRow {
            ts_micros: 1_362_692_526_869_344,
            uid: "CabcDEF123",
            community_id: "1:yvyB8h+3dnggTZW0UEITWCst97w=",
            orig_h: "141.142.228.5",
            orig_p: 59856,
            resp_h: "192.150.187.43",
            resp_p: 80,
            proto: "tcp",
            service: "http",
            duration_micros: 211_484,
            orig_bytes: 136,
            resp_bytes: 5007,
            conn_state: "SF",
            missed_bytes: 0,
            history: "ShADadFf",
            orig_pkts: 7,
            orig_ip_bytes: 512,
            resp_pkts: 7,
            resp_ip_bytes: 5379,
            ip_proto: 6,
            service_evidence: "port",
            end_reason: "closed",
            tunnel_depth: 0,
            related_uid: "",
            content: [""; crate::report::export::CONTENT_COLUMN_COUNT],
            initiator: "",
            initiator_reason: "",
            anomalies: "",
            sensor: "",
        }
    }

    #[test]
    fn zeek_names_and_types() {
        let mut line = String::new();
        json_line(&row(), &mut line);
        // Zeek's JSON conn.log shape (Zeek's field order, numbers bare, epoch `ts`) for the
        // http/get.pcap session's counters of Zeek's baseline; ours appended, related_uid
        // left out as unset.
        assert_eq!(
            line,
            "{\"ts\":1362692526.869344,\"uid\":\"CabcDEF123\",\"id.orig_h\":\"141.142.228.5\",\
             \"id.orig_p\":59856,\"id.resp_h\":\"192.150.187.43\",\"id.resp_p\":80,\
             \"proto\":\"tcp\",\"service\":\"http\",\"duration\":0.211484,\"orig_bytes\":136,\
             \"resp_bytes\":5007,\"conn_state\":\"SF\",\"missed_bytes\":0,\
             \"history\":\"ShADadFf\",\"orig_pkts\":7,\"orig_ip_bytes\":512,\"resp_pkts\":7,\
             \"resp_ip_bytes\":5379,\"ip_proto\":6,\
             \"community_id\":\"1:yvyB8h+3dnggTZW0UEITWCst97w=\",\
             \"service_evidence\":\"port\",\"end_reason\":\"closed\",\"tunnel_depth\":0}\n"
        );
    }

    #[test]
    fn empty_values_are_left_out() {
        let mut r = row();
        r.service = "";
        r.history = "";
        r.service_evidence = "";
        let mut line = String::new();
        json_line(&r, &mut line);
        for absent in ["\"service\"", "\"history\"", "\"service_evidence\""] {
            assert!(!line.contains(absent), "{line}");
        }
    }

    #[test]
    fn content_columns_take_zeek_names_and_types() {
        let record = crate::report::export::tests::full_record("200");
        let r = SessionRow::parse(&record).unwrap();
        let mut line = String::new();
        json_line(&r, &mut line);
        // Names as Zeek's http.log and dns.log call these values (status_code a count,
        // answers a vector of strings); server_name as in ssl.log; ours where Zeek has none.
        assert!(!line.contains("related_uid"));
        assert!(
            line.ends_with(
                "\"server_name\":\"bro.org\",\"tls_alpn\":[\"h2\",\"http/1.1\"],\
             \"http.method\":\"GET\",\"http.host\":\"bro.org\",\
             \"http.uri\":\"/download/CHANGES.bro-aux.txt\",\
             \"http.user_agent\":\"Wget/1.14 (darwin12.2.0)\",\"http.status_code\":200,\
             \"dns.answers\":[\"192.0.2.1\",\"example.test\"],\
             \"initiator\":\"user\",\"initiator_reason\":\"an HTTP request\",\
             \"anomalies\":\"SYN_with_data:1\",\"sensor\":\"lab-1\"}\n"
            ),
            "{line}"
        );
    }

    #[test]
    fn numbers_are_shortest_exact_seconds() {
        assert_eq!(seconds(0), "0.0");
        assert_eq!(seconds(1_500_000), "1.5");
        assert_eq!(seconds(3_000_000), "3.0");
        assert_eq!(seconds(1), "0.000001");
        assert_eq!(seconds(-1_500_000), "-1.5");
    }

    #[test]
    fn hostile_strings_stay_one_line_and_one_string() {
        let hostile = "a\"b\\c\nd\re\u{0}f\u{1b}[31m</script>\u{2028}é";
        let mut r = row();
        r.service = hostile;
        let mut line = String::new();
        json_line(&r, &mut line);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("}\n"));
        assert!(line.contains(r#""service":"a\"b\\c\nd\re\u0000f\u001b[31m</script>\u2028é""#));
        assert!(!line.contains('\u{1b}'));
    }
}
