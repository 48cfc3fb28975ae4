//! sessions.parquet: the sessions as typed columns for DuckDB, pandas, Polars and Spark.
//!
//! Owns the Parquet schema and writing it with the `arrow` and `parquet` crates. Column names
//! are sessions.csv's (no dots, so SQL needs no quoting), all 51 of them; types are real ones:
//! `ts` a UTC timestamp with microseconds, ports and small numbers 32-bit integers, counts
//! 64-bit integers, `duration` seconds as a double, addresses and names strings, the list
//! columns (`tls_alpn`, `dns_answers`) lists of strings; a field without a value is null
//! (sessions.csv writes it empty). Only signed integer types are used, since Spark reads
//! unsigned Parquet types poorly. Promises: memory bounded by one batch of [`BATCH_ROWS`] rows
//! plus one row group; rows in start order (from the shared ordered stream); Snappy compression.
//!
//! Other writers extend the schema: [`session_fields`] lists the columns, [`SessionColumns`]
//! appends rows and finishes them into arrays in the same order; add fields after them.

use super::export::{CONTENT_COLUMNS, ContentKind, RowSink, SessionRow, list_items};
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name inside the output directory.
pub const SESSIONS_PARQUET_FILE_NAME: &str = "sessions.parquet";

/// Rows gathered in Arrow builders before they are handed to the Parquet writer.
pub const BATCH_ROWS: usize = 65_536;

/// Rows per Parquet row group (the unit readers parallelise over).
pub const ROW_GROUP_ROWS: usize = 262_144;

/// The timestamp type of `ts` (and of the hidden patterns' times): microseconds, UTC.
pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A list of strings (items not null).
fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The columns of sessions.parquet, in sessions.csv's column order.
pub fn session_fields() -> Vec<Field> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let int32 = |name: &str| Field::new(name, DataType::Int32, false);
    let int64 = |name: &str| Field::new(name, DataType::Int64, false);
    let mut fields = vec![
        Field::new("ts", utc_micros(), false),
        text("uid", false),
        text("community_id", false),
        text("orig_h", false),
        int32("orig_p"),
        text("resp_h", false),
        int32("resp_p"),
        text("proto", false),
        text("service", true),
        Field::new("duration", DataType::Float64, false),
        int64("orig_bytes"),
        int64("resp_bytes"),
        text("conn_state", false),
        int64("missed_bytes"),
        text("history", true),
        int64("orig_pkts"),
        int64("orig_ip_bytes"),
        int64("resp_pkts"),
        int64("resp_ip_bytes"),
        int32("ip_proto"),
        text("service_evidence", true),
        text("end_reason", false),
        int32("tunnel_depth"),
        text("related_uid", true),
    ];
    for column in &CONTENT_COLUMNS {
        let data_type = match column.kind {
            ContentKind::Text => DataType::Utf8,
            ContentKind::Integer => DataType::Int32,
            ContentKind::List(_) => string_list(),
        };
        fields.push(Field::new(column.name, data_type, true));
    }
    fields.push(text("initiator", true));
    fields.push(text("initiator_reason", true));
    fields.push(text("anomalies", true));
    fields.push(text("sensor", false));
    fields
}

/// The Arrow schema of sessions.parquet ([`session_fields`]).
pub fn session_schema() -> SchemaRef {
    Arc::new(Schema::new(session_fields()))
}

/// A content column's builder.
enum ContentBuilder {
    Text(StringBuilder),
    Integer(Int32Builder),
    List(ListBuilder<StringBuilder>, char),
}

impl ContentBuilder {
    fn append(&mut self, text: &str) {
        match self {
            ContentBuilder::Text(b) => optional(b, text),
            // Checked to be digits when the row was read; anything else is null.
            ContentBuilder::Integer(b) => b.append_option(text.parse::<i32>().ok()),
            ContentBuilder::List(b, separator) => {
                if text.is_empty() {
                    b.append_null();
                } else {
                    for item in list_items(text, *separator) {
                        b.values().append_value(item);
                    }
                    b.append(true);
                }
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ContentBuilder::Text(b) => Arc::new(b.finish()),
            ContentBuilder::Integer(b) => Arc::new(b.finish()),
            ContentBuilder::List(b, _) => Arc::new(b.finish()),
        }
    }
}

fn optional(b: &mut StringBuilder, v: &str) {
    if v.is_empty() {
        b.append_null();
    } else {
        b.append_value(v);
    }
}

/// Column builders for session rows: [`SessionColumns::append`] one row at a time, then
/// [`SessionColumns::finish`] gives the arrays in [`session_fields`] order.
pub struct SessionColumns {
    ts: TimestampMicrosecondBuilder,
    uid: StringBuilder,
    community_id: StringBuilder,
    orig_h: StringBuilder,
    orig_p: Int32Builder,
    resp_h: StringBuilder,
    resp_p: Int32Builder,
    proto: StringBuilder,
    service: StringBuilder,
    duration: Float64Builder,
    orig_bytes: Int64Builder,
    resp_bytes: Int64Builder,
    conn_state: StringBuilder,
    missed_bytes: Int64Builder,
    history: StringBuilder,
    orig_pkts: Int64Builder,
    orig_ip_bytes: Int64Builder,
    resp_pkts: Int64Builder,
    resp_ip_bytes: Int64Builder,
    ip_proto: Int32Builder,
    service_evidence: StringBuilder,
    end_reason: StringBuilder,
    tunnel_depth: Int32Builder,
    related_uid: StringBuilder,
    content: Vec<ContentBuilder>,
    initiator: StringBuilder,
    initiator_reason: StringBuilder,
    anomalies: StringBuilder,
    sensor: StringBuilder,
    rows: usize,
}

impl SessionColumns {
    /// Builders sized for `capacity` rows.
    pub fn new(capacity: usize) -> Self {
        let s = || StringBuilder::with_capacity(capacity, capacity * 16);
        let i32b = || Int32Builder::with_capacity(capacity);
        let i64b = || Int64Builder::with_capacity(capacity);
        let content = CONTENT_COLUMNS
            .iter()
            .map(|c| match c.kind {
                // Content is mostly empty: start small, builders grow as needed.
                ContentKind::Text => ContentBuilder::Text(StringBuilder::new()),
                ContentKind::Integer => ContentBuilder::Integer(Int32Builder::new()),
                ContentKind::List(separator) => {
                    ContentBuilder::List(ListBuilder::new(StringBuilder::new()), separator)
                }
            })
            .collect();
        SessionColumns {
            ts: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            uid: s(),
            community_id: s(),
            orig_h: s(),
            orig_p: i32b(),
            resp_h: s(),
            resp_p: i32b(),
            proto: s(),
            service: s(),
            duration: Float64Builder::with_capacity(capacity),
            orig_bytes: i64b(),
            resp_bytes: i64b(),
            conn_state: s(),
            missed_bytes: i64b(),
            history: s(),
            orig_pkts: i64b(),
            orig_ip_bytes: i64b(),
            resp_pkts: i64b(),
            resp_ip_bytes: i64b(),
            ip_proto: i32b(),
            service_evidence: s(),
            end_reason: s(),
            tunnel_depth: i32b(),
            related_uid: s(),
            content,
            initiator: s(),
            initiator_reason: StringBuilder::new(),
            anomalies: StringBuilder::new(),
            sensor: s(),
            rows: 0,
        }
    }

    /// Rows appended since the last [`SessionColumns::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one session to every column.
    pub fn append(&mut self, r: &SessionRow<'_>) {
        // Counts past i64::MAX (never seen in practice) saturate rather than wrap.
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.ts.append_value(r.ts_micros);
        self.uid.append_value(r.uid);
        self.community_id.append_value(r.community_id);
        self.orig_h.append_value(r.orig_h);
        self.orig_p.append_value(i32::from(r.orig_p));
        self.resp_h.append_value(r.resp_h);
        self.resp_p.append_value(i32::from(r.resp_p));
        self.proto.append_value(r.proto);
        optional(&mut self.service, r.service);
        self.duration
            .append_value(r.duration_micros as f64 / 1_000_000.0);
        self.orig_bytes.append_value(count(r.orig_bytes));
        self.resp_bytes.append_value(count(r.resp_bytes));
        self.conn_state.append_value(r.conn_state);
        self.missed_bytes.append_value(count(r.missed_bytes));
        optional(&mut self.history, r.history);
        self.orig_pkts.append_value(count(r.orig_pkts));
        self.orig_ip_bytes.append_value(count(r.orig_ip_bytes));
        self.resp_pkts.append_value(count(r.resp_pkts));
        self.resp_ip_bytes.append_value(count(r.resp_ip_bytes));
        self.ip_proto.append_value(i32::from(r.ip_proto));
        optional(&mut self.service_evidence, r.service_evidence);
        self.end_reason.append_value(r.end_reason);
        self.tunnel_depth.append_value(i32::from(r.tunnel_depth));
        optional(&mut self.related_uid, r.related_uid);
        for (builder, text) in self.content.iter_mut().zip(r.content) {
            builder.append(text);
        }
        optional(&mut self.initiator, r.initiator);
        optional(&mut self.initiator_reason, r.initiator_reason);
        optional(&mut self.anomalies, r.anomalies);
        self.sensor.append_value(r.sensor);
        self.rows += 1;
    }

    /// The rows appended so far as arrays, in [`session_fields`] order (the builders start
    /// over empty).
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.community_id.finish()),
            Arc::new(self.orig_h.finish()),
            Arc::new(self.orig_p.finish()),
            Arc::new(self.resp_h.finish()),
            Arc::new(self.resp_p.finish()),
            Arc::new(self.proto.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.orig_bytes.finish()),
            Arc::new(self.resp_bytes.finish()),
            Arc::new(self.conn_state.finish()),
            Arc::new(self.missed_bytes.finish()),
            Arc::new(self.history.finish()),
            Arc::new(self.orig_pkts.finish()),
            Arc::new(self.orig_ip_bytes.finish()),
            Arc::new(self.resp_pkts.finish()),
            Arc::new(self.resp_ip_bytes.finish()),
            Arc::new(self.ip_proto.finish()),
            Arc::new(self.service_evidence.finish()),
            Arc::new(self.end_reason.finish()),
            Arc::new(self.tunnel_depth.finish()),
            Arc::new(self.related_uid.finish()),
        ];
        columns.extend(self.content.iter_mut().map(ContentBuilder::finish));
        columns.push(Arc::new(self.initiator.finish()));
        columns.push(Arc::new(self.initiator_reason.finish()));
        columns.push(Arc::new(self.anomalies.finish()));
        columns.push(Arc::new(self.sensor.finish()));
        columns
    }
}

/// The writer properties every sessionscope Parquet file uses.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("sessionscope {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Writes DIR/sessions.parquet.
pub struct ParquetWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    columns: SessionColumns,
}

pub(crate) fn to_io(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl ParquetWriter {
    /// Creates (truncates) `dir/sessions.parquet`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        Self::create_file(&dir.join(SESSIONS_PARQUET_FILE_NAME), session_schema())
    }

    /// Creates (truncates) `path` with `schema`: [`schema`] or a subset of its columns.
    pub(crate) fn create_file(path: &Path, schema: SchemaRef) -> io::Result<Self> {
        let path = path.to_path_buf();
        let file = File::create(&path)?;
        let writer =
            ArrowWriter::try_new(file, schema.clone(), Some(writer_properties())).map_err(to_io)?;
        Ok(ParquetWriter {
            path,
            schema,
            writer,
            columns: SessionColumns::new(BATCH_ROWS),
        })
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        if self.columns.is_empty() {
            return Ok(());
        }
        let full = RecordBatch::try_new(session_schema(), self.columns.finish()).map_err(to_io)?;
        // A dataset's files leave out the columns their directory names hold (`sensor`).
        let batch = if self.schema.fields().len() == full.num_columns() {
            full
        } else {
            let keep: Vec<usize> = self
                .schema
                .fields()
                .iter()
                .filter_map(|f| full.schema().index_of(f.name()).ok())
                .collect();
            full.project(&keep).map_err(to_io)?
        };
        self.writer.write(&batch).map_err(to_io)
    }
}

impl RowSink for ParquetWriter {
    fn write_row(&mut self, row: &SessionRow<'_>) -> io::Result<()> {
        self.columns.append(row);
        if self.columns.len() >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<PathBuf> {
        self.flush_batch()?;
        let ParquetWriter { path, writer, .. } = *self;
        writer.close().map_err(to_io)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn row(i: u16) -> SessionRow<'static> {
        SessionRow {
            ts_micros: 1_362_692_526_869_344 + i64::from(i),
            uid: "CabcDEF123",
            community_id: "1:yvyB8h+3dnggTZW0UEITWCst97w=",
            orig_h: "2001:db8::1",
            orig_p: 65535 - i,
            resp_h: "192.150.187.43",
            resp_p: 80,
            proto: "tcp",
            service: if i.is_multiple_of(2) { "http" } else { "" },
            duration_micros: 211_484,
            orig_bytes: 136,
            resp_bytes: 5007,
            conn_state: "SF",
            missed_bytes: 0,
            history: "ShADadFf",
            orig_pkts: 7,
            orig_ip_bytes: 512,
            resp_pkts: 7,
            resp_ip_bytes: u64::from(i) * 1000,
            ip_proto: 6,
            service_evidence: "port",
            end_reason: "closed",
            tunnel_depth: 1,
            related_uid: "",
            content: [""; crate::report::export::CONTENT_COLUMN_COUNT],
            initiator: "technology",
            initiator_reason: "",
            anomalies: "",
            sensor: "lab-1",
        }
    }

    #[test]
    fn typed_columns_round_trip() {
        let dir = std::env::temp_dir().join(format!("sessionscope-pq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w: Box<dyn RowSink> = Box::new(ParquetWriter::create(&dir).unwrap());
        // More rows than one batch, so batching and row groups are exercised.
        let n = BATCH_ROWS + 10;
        for i in 0..n {
            w.write_row(&row((i % 60_000) as u16)).unwrap();
        }
        let path = w.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, n);
        let b = &batches[0];
        assert_eq!(
            b.schema().field_with_name("ts").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let ts = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_362_692_526_869_344);
        let orig_p = b
            .column_by_name("orig_p")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(orig_p.value(0), 65535);
        let bytes = b
            .column_by_name("resp_ip_bytes")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(bytes.value(3), 3000);
        let service = b.column_by_name("service").unwrap().as_string::<i32>();
        assert_eq!(service.value(0), "http");
        assert!(service.is_null(1));
        let orig_h = b.column_by_name("orig_h").unwrap().as_string::<i32>();
        assert_eq!(orig_h.value(0), "2001:db8::1");
        assert!(b.column_by_name("related_uid").unwrap().is_null(0));
        assert_eq!(b.num_columns(), 51);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn content_columns_have_real_types() {
        let dir = std::env::temp_dir().join(format!("sessionscope-pqc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let full = crate::report::export::tests::full_record("404");
        let mut w: Box<dyn RowSink> = Box::new(ParquetWriter::create(&dir).unwrap());
        w.write_row(&SessionRow::parse(&full).unwrap()).unwrap();
        w.write_row(&row(1)).unwrap();
        let path = w.finish().unwrap();
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
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
        assert_eq!(names, crate::report::csv::SESSIONS_CSV_COLUMNS);
        let status = b
            .column_by_name("http_status")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(status.value(0), 404);
        assert!(status.is_null(1));
        let answers = b.column_by_name("dns_answers").unwrap().as_list::<i32>();
        let first = answers.value(0);
        let first = first.as_string::<i32>();
        assert_eq!(
            (0..first.len()).map(|i| first.value(i)).collect::<Vec<_>>(),
            ["192.0.2.1", "example.test"]
        );
        assert!(answers.is_null(1));
        let alpn = b.column_by_name("tls_alpn").unwrap().as_list::<i32>();
        assert_eq!(alpn.value(0).len(), 2);
        let server = b.column_by_name("server_name").unwrap().as_string::<i32>();
        assert_eq!(server.value(0), "bro.org");
        assert!(server.is_null(1));
        let initiator = b.column_by_name("initiator").unwrap().as_string::<i32>();
        assert_eq!(
            (initiator.value(0), initiator.value(1)),
            ("user", "technology")
        );
        assert!(b.column_by_name("initiator_reason").unwrap().is_null(1));
        let sensor = b.column_by_name("sensor").unwrap().as_string::<i32>();
        assert_eq!((sensor.value(0), sensor.value(1)), ("lab-1", "lab-1"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
