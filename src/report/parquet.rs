//! sessions.parquet: the sessions as typed columns for DuckDB, pandas, Polars and Spark.
//!
//! Owns the Parquet schema and writing it with the `arrow` and `parquet` crates. Column names
//! are sessions.csv's (no dots, so SQL needs no quoting); types are real ones: `ts` a UTC
//! timestamp with microseconds, ports and small numbers 32-bit integers, counts 64-bit
//! integers, `duration` seconds as a double, addresses and names strings; a text field without
//! a value is null (sessions.csv writes it empty). Only signed integer types are used, since
//! Spark reads unsigned Parquet types poorly. Promises: memory bounded by one batch of
//! [`BATCH_ROWS`] rows plus one row group; rows in start order (from the shared ordered
//! stream); Snappy compression.

use super::export::{RowSink, SessionRow};
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
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
const ROW_GROUP_ROWS: usize = 262_144;

/// The Arrow schema of sessions.parquet, in sessions.csv's column order.
pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let int32 = |name: &str| Field::new(name, DataType::Int32, false);
    let int64 = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
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
        text("sensor", false),
    ]))
}

/// Column builders for one batch.
struct Columns {
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
    sensor: StringBuilder,
    rows: usize,
}

impl Columns {
    fn new() -> Self {
        let s = || StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16);
        let i32b = || Int32Builder::with_capacity(BATCH_ROWS);
        let i64b = || Int64Builder::with_capacity(BATCH_ROWS);
        Columns {
            ts: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            uid: s(),
            community_id: s(),
            orig_h: s(),
            orig_p: i32b(),
            resp_h: s(),
            resp_p: i32b(),
            proto: s(),
            service: s(),
            duration: Float64Builder::with_capacity(BATCH_ROWS),
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
            sensor: s(),
            rows: 0,
        }
    }

    fn push(&mut self, r: &SessionRow<'_>) {
        let optional = |b: &mut StringBuilder, v: &str| {
            if v.is_empty() {
                b.append_null();
            } else {
                b.append_value(v);
            }
        };
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
        self.sensor.append_value(r.sensor);
        self.rows += 1;
    }

    /// Takes the rows gathered so far as a batch (the builders start over empty).
    fn batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
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
            Arc::new(self.sensor.finish()),
        ];
        let batch = RecordBatch::try_new(self::schema(), columns)?;
        // A dataset's files leave out the columns their directory names hold (`sensor`).
        let keep: Vec<usize> = schema
            .fields()
            .iter()
            .filter_map(|f| batch.schema().index_of(f.name()).ok())
            .collect();
        batch.project(&keep)
    }
}

/// Writes DIR/sessions.parquet.
pub struct ParquetWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    columns: Columns,
}

fn to_io(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl ParquetWriter {
    /// Creates (truncates) `dir/sessions.parquet`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        Self::create_file(&dir.join(SESSIONS_PARQUET_FILE_NAME), schema())
    }

    /// Creates (truncates) `path` with `schema`: [`schema`] or a subset of its columns.
    pub(crate) fn create_file(path: &Path, schema: SchemaRef) -> io::Result<Self> {
        let path = path.to_path_buf();
        let file = File::create(&path)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("sessionscope {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(to_io)?;
        Ok(ParquetWriter {
            path,
            schema,
            writer,
            columns: Columns::new(),
        })
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        if self.columns.rows == 0 {
            return Ok(());
        }
        let batch = self.columns.batch(&self.schema).map_err(to_io)?;
        self.writer.write(&batch).map_err(to_io)
    }
}

impl RowSink for ParquetWriter {
    fn write_row(&mut self, row: &SessionRow<'_>) -> io::Result<()> {
        self.columns.push(row);
        if self.columns.rows >= BATCH_ROWS {
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
        let sensor = b.column_by_name("sensor").unwrap().as_string::<i32>();
        assert_eq!(sensor.value(5), "lab-1");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
