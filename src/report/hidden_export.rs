//! hidden.jsonl and hidden.parquet: the hidden patterns of hidden.csv, typed, for other tools.
//!
//! Owns the typed form of a hidden.csv row ([`hidden_fields`] for Parquet, the same names as
//! JSON keys): the same patterns in the same order with the same columns as hidden.csv
//! ([`super::hidden_csv::HIDDEN_CSV_COLUMNS`]), numbers rounded as hidden.csv rounds them, so the
//! three files agree value for value. Times are UTC timestamps with microseconds (JSON: epoch
//! seconds, as sessions.jsonl's `ts`); counts integers; `period_s`, `jitter` and `score` doubles;
//! `allowed` a boolean; a text or number without a value is null in Parquet and left out in JSON
//! lines. Promises: strings escaped per RFC 8259; Parquet built in batches of
//! [`super::parquet::BATCH_ROWS`] patterns.

use super::export::ExportFormat;
use super::hidden_csv::{self, HIDDEN_CSV_COLUMNS};
use super::jsonl::{push_json_string, seconds};
use super::parquet::{BATCH_ROWS, to_io, utc_micros, writer_properties};
use crate::analysis::hidden::{HiddenPattern, HiddenReport};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names inside the output directory.
pub const HIDDEN_JSONL_FILE_NAME: &str = "hidden.jsonl";
pub const HIDDEN_PARQUET_FILE_NAME: &str = "hidden.parquet";

/// The columns of hidden.parquet (and keys of hidden.jsonl), in hidden.csv's order.
pub fn hidden_fields() -> Vec<Field> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let fields = vec![
        text("host", false),
        text("dest_h", false),
        Field::new("dest_addresses", DataType::Int32, false),
        text("dest_name", true),
        text("proto", false),
        Field::new("dest_p", DataType::Int32, false),
        text("service", true),
        text("kind", false),
        Field::new("sessions", DataType::Int64, false),
        Field::new("first_ts", utc_micros(), false),
        Field::new("last_ts", utc_micros(), false),
        Field::new("period_s", DataType::Float64, true),
        Field::new("jitter", DataType::Float64, true),
        Field::new("orig_bytes", DataType::Int64, false),
        Field::new("resp_bytes", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("allowed", DataType::Boolean, false),
        text("reason", true),
    ];
    debug_assert!(
        fields
            .iter()
            .map(|f| f.name().as_str())
            .eq(HIDDEN_CSV_COLUMNS)
    );
    fields
}

/// One hidden.csv row with typed values (numbers as hidden.csv rounds them).
struct Typed<'a> {
    host: String,
    dest_h: String,
    dest_addresses: i32,
    dest_name: &'a str,
    proto: String,
    dest_p: i32,
    service: &'a str,
    kind: &'static str,
    sessions: i64,
    first_micros: i64,
    last_micros: i64,
    period_s: Option<f64>,
    jitter: Option<f64>,
    orig_bytes: i64,
    resp_bytes: i64,
    score: f64,
    allowed: bool,
    reason: &'a str,
}

impl<'a> Typed<'a> {
    fn of(p: &'a HiddenPattern) -> Self {
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Typed {
            host: p.host.to_string(),
            dest_h: p.dest.to_string(),
            dest_addresses: i32::try_from(p.dest_addresses).unwrap_or(i32::MAX),
            dest_name: p.name.as_deref().unwrap_or(""),
            proto: hidden_csv::proto_name(p.ip_proto),
            dest_p: i32::from(p.port),
            service: &p.service,
            kind: p.kind.as_str(),
            sessions: count(p.sessions),
            first_micros: p.first.as_micros(),
            last_micros: p.last.as_micros(),
            period_s: p.period_s.map(|v| rounded(v, 3)),
            jitter: p.jitter.map(|v| rounded(v, 3)),
            orig_bytes: count(p.orig_bytes),
            resp_bytes: count(p.resp_bytes),
            score: rounded(p.score, 2),
            allowed: p.allowed,
            reason: &p.reason,
        }
    }
}

/// `v` as hidden.csv shows it with `decimals` decimals, read back (NaN and infinities stay).
fn rounded(v: f64, decimals: usize) -> f64 {
    format!("{v:.decimals$}").parse().unwrap_or(v)
}

/// Writes hidden.jsonl and/or hidden.parquet as `formats` asks (hidden.csv is written by
/// [`hidden_csv::write`]); returns each file written and its rows.
pub fn write_formats(
    dir: &Path,
    report: &HiddenReport,
    formats: &[ExportFormat],
) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut written = Vec::new();
    for format in formats {
        match format {
            ExportFormat::Csv => {}
            ExportFormat::Jsonl => written.push(write_jsonl(dir, report.shown())?),
            ExportFormat::Parquet => written.push(write_parquet(dir, report.shown())?),
        }
    }
    Ok(written)
}

/// Writes `dir/hidden.jsonl` from `patterns` (hidden.csv's rows, in its order).
pub fn write_jsonl<'p>(
    dir: &Path,
    patterns: impl Iterator<Item = &'p HiddenPattern>,
) -> io::Result<(PathBuf, u64)> {
    let path = dir.join(HIDDEN_JSONL_FILE_NAME);
    let mut out = BufWriter::new(File::create(&path)?);
    let mut line = String::with_capacity(512);
    let mut rows = 0u64;
    for p in patterns {
        line.clear();
        json_line(&Typed::of(p), &mut line);
        out.write_all(line.as_bytes())?;
        rows += 1;
    }
    out.flush()?;
    Ok((path, rows))
}

fn json_line(t: &Typed<'_>, out: &mut String) {
    let mut first = true;
    let mut key = |out: &mut String, name: &str| {
        out.push(if first { '{' } else { ',' });
        first = false;
        push_json_string(out, name);
        out.push(':');
    };
    let mut string = |out: &mut String, name: &str, value: &str, optional: bool| {
        if !(optional && value.is_empty()) {
            key(out, name);
            push_json_string(out, value);
        }
    };
    string(out, "host", &t.host, false);
    string(out, "dest_h", &t.dest_h, false);
    let _ = write!(out, ",\"dest_addresses\":{}", t.dest_addresses);
    string(out, "dest_name", t.dest_name, true);
    string(out, "proto", &t.proto, false);
    let _ = write!(out, ",\"dest_p\":{}", t.dest_p);
    string(out, "service", t.service, true);
    string(out, "kind", t.kind, false);
    let _ = write!(
        out,
        ",\"sessions\":{},\"first_ts\":{},\"last_ts\":{}",
        t.sessions,
        seconds(t.first_micros),
        seconds(t.last_micros)
    );
    for (name, value) in [("period_s", t.period_s), ("jitter", t.jitter)] {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            let _ = write!(out, ",\"{name}\":{}", json_number(v));
        }
    }
    let _ = write!(
        out,
        ",\"orig_bytes\":{},\"resp_bytes\":{},\"score\":{},\"allowed\":{}",
        t.orig_bytes,
        t.resp_bytes,
        json_number(t.score),
        t.allowed
    );
    string(out, "reason", t.reason, true);
    out.push_str("}\n");
}

/// A finite double as a JSON number (always with a decimal point); 0 for NaN or infinities,
/// which JSON cannot hold.
fn json_number(v: f64) -> String {
    if !v.is_finite() {
        return "0.0".into();
    }
    let text = format!("{v}");
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        text + ".0"
    }
}

/// Writes `dir/hidden.parquet` from `patterns` (hidden.csv's rows, in its order).
pub fn write_parquet<'p>(
    dir: &Path,
    patterns: impl Iterator<Item = &'p HiddenPattern>,
) -> io::Result<(PathBuf, u64)> {
    let path = dir.join(HIDDEN_PARQUET_FILE_NAME);
    let schema = Arc::new(Schema::new(hidden_fields()));
    let mut writer = ArrowWriter::try_new(
        File::create(&path)?,
        schema.clone(),
        Some(writer_properties()),
    )
    .map_err(to_io)?;
    let mut columns = HiddenColumns::default();
    let mut rows = 0u64;
    for p in patterns {
        columns.append(&Typed::of(p));
        rows += 1;
        if columns.rows >= BATCH_ROWS {
            let batch = RecordBatch::try_new(schema.clone(), columns.finish()).map_err(to_io)?;
            writer.write(&batch).map_err(to_io)?;
        }
    }
    if columns.rows > 0 {
        let batch = RecordBatch::try_new(schema.clone(), columns.finish()).map_err(to_io)?;
        writer.write(&batch).map_err(to_io)?;
    }
    writer.close().map_err(to_io)?;
    Ok((path, rows))
}

#[derive(Default)]
struct HiddenColumns {
    host: StringBuilder,
    dest_h: StringBuilder,
    dest_addresses: Int32Builder,
    dest_name: StringBuilder,
    proto: StringBuilder,
    dest_p: Int32Builder,
    service: StringBuilder,
    kind: StringBuilder,
    sessions: Int64Builder,
    first_ts: TimestampMicrosecondBuilder,
    last_ts: TimestampMicrosecondBuilder,
    period_s: Float64Builder,
    jitter: Float64Builder,
    orig_bytes: Int64Builder,
    resp_bytes: Int64Builder,
    score: Float64Builder,
    allowed: BooleanBuilder,
    reason: StringBuilder,
    rows: usize,
}

impl HiddenColumns {
    fn append(&mut self, t: &Typed<'_>) {
        let optional = |b: &mut StringBuilder, v: &str| {
            if v.is_empty() {
                b.append_null();
            } else {
                b.append_value(v);
            }
        };
        self.host.append_value(&t.host);
        self.dest_h.append_value(&t.dest_h);
        self.dest_addresses.append_value(t.dest_addresses);
        optional(&mut self.dest_name, t.dest_name);
        self.proto.append_value(&t.proto);
        self.dest_p.append_value(t.dest_p);
        optional(&mut self.service, t.service);
        self.kind.append_value(t.kind);
        self.sessions.append_value(t.sessions);
        self.first_ts.append_value(t.first_micros);
        self.last_ts.append_value(t.last_micros);
        self.period_s.append_option(t.period_s);
        self.jitter.append_option(t.jitter);
        self.orig_bytes.append_value(t.orig_bytes);
        self.resp_bytes.append_value(t.resp_bytes);
        self.score.append_value(t.score);
        self.allowed.append_value(t.allowed);
        optional(&mut self.reason, t.reason);
        self.rows += 1;
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        vec![
            Arc::new(self.host.finish()),
            Arc::new(self.dest_h.finish()),
            Arc::new(self.dest_addresses.finish()),
            Arc::new(self.dest_name.finish()),
            Arc::new(self.proto.finish()),
            Arc::new(self.dest_p.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.sessions.finish()),
            Arc::new(self.first_ts.finish().with_timezone("UTC")),
            Arc::new(self.last_ts.finish().with_timezone("UTC")),
            Arc::new(self.period_s.finish()),
            Arc::new(self.jitter.finish()),
            Arc::new(self.orig_bytes.finish()),
            Arc::new(self.resp_bytes.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.allowed.finish()),
            Arc::new(self.reason.finish()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::hidden::PatternKind;
    use crate::capture::Timestamp;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn beacon() -> HiddenPattern {
        HiddenPattern {
            host: "10.0.0.5".parse().unwrap(),
            dest: "2001:db8::7".parse().unwrap(),
            dest_addresses: 3,
            name: Some("c2.example\"test".into()),
            ip_proto: 6,
            port: 8443,
            service: String::new(),
            kind: PatternKind::Beacon,
            sessions: 41,
            first: Timestamp::from_micros(1_700_000_000_250_000),
            last: Timestamp::from_micros(1_700_001_200_000_001),
            period_s: Some(30.000_4),
            jitter: Some(0.031_6),
            orig_bytes: 4100,
            resp_bytes: 82_000,
            score: 0.876,
            reason: "periodic: 41 sessions every 30.0 s, jitter 3%".into(),
            allowed: false,
            starts_nanos: Vec::new(),
        }
    }

    fn keepalive() -> HiddenPattern {
        HiddenPattern {
            name: None,
            kind: PatternKind::KeepAlive,
            period_s: None,
            jitter: None,
            score: 0.8,
            allowed: true,
            ..beacon()
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sessionscope-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn json_lines_have_hidden_csv_columns_and_values() {
        let dir = temp_dir("hj");
        let patterns = [beacon(), keepalive()];
        let (path, rows) = write_jsonl(&dir, patterns.iter()).unwrap();
        assert_eq!(rows, 2);
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Values as hidden.csv shows them: period and jitter to 3 decimals, score to 2.
        assert_eq!(
            lines[0],
            "{\"host\":\"10.0.0.5\",\"dest_h\":\"2001:db8::7\",\"dest_addresses\":3,\
             \"dest_name\":\"c2.example\\\"test\",\"proto\":\"tcp\",\"dest_p\":8443,\
             \"kind\":\"beacon\",\"sessions\":41,\"first_ts\":1700000000.25,\
             \"last_ts\":1700001200.000001,\"period_s\":30.0,\"jitter\":0.032,\
             \"orig_bytes\":4100,\"resp_bytes\":82000,\"score\":0.88,\"allowed\":false,\
             \"reason\":\"periodic: 41 sessions every 30.0 s, jitter 3%\"}"
        );
        // No period, no name, no service: left out, as Zeek leaves out unset fields.
        assert!(!lines[1].contains("period_s") && !lines[1].contains("dest_name"));
        assert!(lines[1].contains("\"kind\":\"keep-alive\""));
        assert!(lines[1].contains("\"allowed\":true"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn parquet_has_hidden_csv_columns_with_real_types() {
        let dir = temp_dir("hp");
        let patterns = [beacon(), keepalive()];
        let (path, rows) = write_parquet(&dir, patterns.iter()).unwrap();
        assert_eq!(rows, 2);
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let b = reader.next().unwrap().unwrap();
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, HIDDEN_CSV_COLUMNS);
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        assert_eq!(col("dest_p").as_primitive::<Int32Type>().value(0), 8443);
        assert_eq!(col("sessions").as_primitive::<Int64Type>().value(1), 41);
        assert_eq!(
            col("first_ts")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_250_000
        );
        assert_eq!(col("first_ts").data_type(), &utc_micros());
        let period = col("period_s");
        assert_eq!(period.as_primitive::<Float64Type>().value(0), 30.0);
        assert!(period.is_null(1));
        assert_eq!(col("score").as_primitive::<Float64Type>().value(0), 0.88);
        let allowed = col("allowed");
        let allowed = allowed.as_boolean();
        assert!(!allowed.value(0) && allowed.value(1));
        assert!(col("dest_name").is_null(1));
        assert!(col("service").is_null(0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_patterns_give_empty_files_that_still_read() {
        let dir = temp_dir("h0");
        let (jsonl, n) = write_jsonl(&dir, std::iter::empty()).unwrap();
        assert_eq!((std::fs::read(jsonl).unwrap().len(), n), (0, 0));
        let (pq, n) = write_parquet(&dir, std::iter::empty()).unwrap();
        assert_eq!(n, 0);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(pq).unwrap()).unwrap();
        assert_eq!(reader.schema().fields().len(), HIDDEN_CSV_COLUMNS.len());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
