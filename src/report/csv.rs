//! sessions.csv: one row per finished session, in start order.
//!
//! Owns the column set (see docs/sessions-csv.md), formatting a [`SessionRecord`] into a CSV
//! row with the `csv` crate (so hostile text such as service names or history strings is
//! quoted, never breaks a row), and handing rows to [`StartOrderBuffer`] so the file lists
//! sessions by (start, uid) although they finish in end order. Promises: the header line is
//! written when the file is created, rows only on [`SessionCsvWriter::finish`]; memory is
//! bounded by [`CsvOptions::max_rows_in_memory`]; formatting a row allocates nothing per row.
//!
//! The same ordered stream feeds the other export formats ([`SessionCsvWriter::create_formats`]):
//! each row is read back once into a typed [`SessionRow`] and handed to the JSON lines and
//! Parquet writers, so every format lists the same sessions in the same order.

use super::community_id::CommunityIdHasher;
use super::dataset::DatasetWriter;
use super::export::{ExportFormat, RowSink, SessionRow};
use super::jsonl::JsonlWriter;
use super::order::{DEFAULT_MAX_ROWS_IN_MEMORY, OrderStats, RowKey, StartOrderBuffer};
use super::parquet::ParquetWriter;
use crate::classify::ContentInfo;
use crate::session::{Anomalies, SessionRecord};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// File name inside the output directory.
pub const SESSIONS_FILE_NAME: &str = "sessions.csv";

/// The header, in column order.
pub const SESSIONS_CSV_COLUMNS: [&str; 51] = [
    "ts",
    "uid",
    "community_id",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "ip_proto",
    "service_evidence",
    "end_reason",
    "tunnel_depth",
    "related_uid",
    "server_name",
    "tls_version",
    "tls_alpn",
    "ja4",
    "http_method",
    "http_host",
    "http_uri",
    "http_user_agent",
    "http_status",
    "dns_query",
    "dns_qtype",
    "dns_rcode",
    "dns_answers",
    "netbios_name",
    "ssh_client",
    "ssh_server",
    "banner",
    "quic_version",
    "dhcp_hostname",
    "dhcp_vendor_class",
    "ntp_version",
    "ntp_mode",
    "ssdp_target",
    "initiator",
    "initiator_reason",
    "anomalies",
    "sensor",
];

/// Where the `sensor` column is: the last one.
pub const SENSOR_COLUMN: usize = SESSIONS_CSV_COLUMNS.len() - 1;

/// The columns after the content columns decided only once the whole capture is known
/// (hidden-session analysis); rows are stored without them (and without `anomalies`, kept
/// beside the row, and `sensor`, the same for every row) and they are appended when rows are
/// written in start order.
pub const LABEL_COLUMNS: usize = 2;

#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Community ID seed (the spec's default is 0; all parties must use the same one).
    pub community_id_seed: u16,
    /// Rows kept in memory before a sorted run is spilled to the output directory.
    pub max_rows_in_memory: usize,
    /// The `sensor` column's value (the same on every row; `--sensor`).
    pub sensor: String,
    /// Write Parquet as the partitioned dataset `sessions/sensor=NAME/date=DAY/` (`--partition`)
    /// instead of sessions.parquet.
    pub partition: bool,
    /// Delete an earlier run's sessions.csv on a thread of its own (with a core to spare).
    pub remove_old_beside: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            community_id_seed: 0,
            max_rows_in_memory: DEFAULT_MAX_ROWS_IN_MEMORY,
            sensor: String::new(),
            partition: false,
            remove_old_beside: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("formatting a sessions.csv row: {0}")]
    Format(#[from] csv::Error),
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> CsvError + '_ {
    move |source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`SessionCsvWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvStats {
    /// sessions.csv (its would-be path when CSV was not asked for).
    pub path: PathBuf,
    /// Every file written, sessions.csv first when it was asked for.
    pub files: Vec<PathBuf>,
    pub rows: u64,
    /// Sorted runs spilled to temporary files (0 when all rows fit in memory).
    pub runs_spilled: u64,
}

/// Writes DIR/sessions.csv (and the other asked-for formats); see the module documentation.
pub struct SessionCsvWriter {
    path: PathBuf,
    /// None when CSV was not among the formats (rows are still formatted: they are the
    /// canonical text the other formats read back).
    file: Option<BufWriter<File>>,
    sinks: Vec<Box<dyn RowSink + Send>>,
    order: StartOrderBuffer,
    rows: RowFormatter,
    /// The `anomalies` column of the row being stored (reused).
    anomalies: String,
    /// The sensor column as written after the labels (quoted when it needs to be).
    sensor_field: Vec<u8>,
    /// Write the finished lines on a thread of their own (see [`Self::write_beside_labels`]).
    write_beside: bool,
    /// An earlier run's sessions.csv being deleted beside the run.
    old_file: OldFileRemoval,
}

/// Deletes a file on a thread of its own, waited for when dropped.
#[derive(Default)]
struct OldFileRemoval(Option<std::thread::JoinHandle<()>>);

impl Drop for OldFileRemoval {
    fn drop(&mut self) {
        if let Some(removing) = self.0.take() {
            let _ = removing.join();
        }
    }
}

/// Makes way for a new `path`: an earlier run's regular file there is unlinked (renamed aside
/// and unlinked on a thread of its own when `beside`). Truncating it instead costs as much as
/// unlinking (its pages and blocks are freed either way: 54 ms for 88 MB here), and ext4 then
/// also starts writing the new file back when it is closed (29 ms), as it does for every file
/// truncated and rewritten. A symbolic link is left alone: the new file is written through it,
/// as before.
fn remove_old(path: &Path, beside: bool) -> OldFileRemoval {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !is_file {
        return OldFileRemoval::default();
    }
    if beside && let Some(name) = path.file_name() {
        let mut aside_name = std::ffi::OsString::from(".");
        aside_name.push(name);
        aside_name.push(format!(".old-{}.tmp", std::process::id()));
        let aside = path.with_file_name(aside_name);
        if std::fs::rename(path, &aside).is_ok() {
            let removing = std::thread::Builder::new()
                .name("remove-old".into())
                .spawn(move || {
                    let _ = std::fs::remove_file(&aside);
                });
            return OldFileRemoval(removing.ok());
        }
    }
    // File::create reports what goes wrong from here.
    let _ = std::fs::remove_file(path);
    OldFileRemoval::default()
}

/// Formats sessions into complete CSV lines (shared by the start-ordered writer and the
/// streaming writer of live runs).
pub struct RowFormatter {
    /// The last row formatted (reused: no allocation per row once it has grown).
    line: Vec<u8>,
    hasher: CommunityIdHasher,
    sensor: String,
}

impl RowFormatter {
    pub fn new(community_id_seed: u16) -> Self {
        RowFormatter {
            line: Vec::with_capacity(512),
            hasher: CommunityIdHasher::new(community_id_seed),
            sensor: String::new(),
        }
    }

    /// Sets the `sensor` column's value for the rows [`RowFormatter::row`] makes.
    pub fn set_sensor(&mut self, sensor: &str) {
        self.sensor = sensor.to_string();
    }

    /// The header line, ending in `\n`.
    pub fn header() -> Result<Vec<u8>, csv::Error> {
        let mut header = new_staging();
        header.write_record(SESSIONS_CSV_COLUMNS)?;
        header.flush()?;
        Ok(header.get_ref().clone())
    }

    /// One session as a complete CSV line ending in `\n`, valid until the next call. The
    /// label columns are left empty, the sensor column follows them (streaming writers cannot wait for the whole capture).
    pub fn row(&mut self, record: &SessionRecord) -> Result<&[u8], csv::Error> {
        self.row_with_history(record, record.history.as_str(), true)
    }

    fn row_with_history(
        &mut self,
        record: &SessionRecord,
        history: &str,
        empty_labels: bool,
    ) -> Result<&[u8], csv::Error> {
        self.line.clear();
        self.format_row(record, history, empty_labels);
        Ok(self.last_row())
    }

    /// The row the last call to [`RowFormatter::row`] made.
    pub fn last_row(&self) -> &[u8] {
        &self.line
    }

    /// Writes the row's fields straight as bytes: quoting as the csv crate quotes
    /// ([`push_field`]), numbers through `itoa`; only the two times and IPv6 addresses go
    /// through `fmt`.
    fn format_row(&mut self, r: &SessionRecord, history: &str, empty_labels: bool) {
        let community_id = self.hasher.session(r);
        let out = &mut self.line;
        let start = r.start.as_micros();
        seconds_with_micros(
            out,
            start.div_euclid(1_000_000),
            start.rem_euclid(1_000_000) as u64,
        );
        plain_field(out, r.uid.as_bytes());
        plain_field(out, community_id.as_bytes());
        addr_field(out, r.orig.addr);
        int_field(out, r.orig.port);
        addr_field(out, r.resp.addr);
        int_field(out, r.resp.port);
        plain_field(out, r.proto.as_str().as_bytes());
        text_field(out, r.service.unwrap_or("").as_bytes());
        out.push(b',');
        let duration = round_to_micros(r.duration_nanos());
        seconds_with_micros(out, duration / 1_000_000, duration % 1_000_000);
        int_field(out, r.orig_stats.bytes);
        int_field(out, r.resp_stats.bytes);
        plain_field(out, r.conn_state.as_str().as_bytes());
        int_field(out, r.missed_bytes);
        text_field(out, history.as_bytes());
        int_field(out, r.orig_stats.pkts);
        int_field(out, r.orig_stats.ip_bytes);
        int_field(out, r.resp_stats.pkts);
        int_field(out, r.resp_stats.ip_bytes);
        int_field(out, r.ip_proto);
        plain_field(out, r.service_evidence.as_str().as_bytes());
        plain_field(out, r.end_reason.as_str().as_bytes());
        int_field(out, r.tunnel_depth);
        plain_field(
            out,
            r.related_uid.as_ref().map_or(&[], |uid| uid.as_bytes()),
        );
        write_content_fields(out, r.content.as_deref());
        if empty_labels {
            for _ in 0..LABEL_COLUMNS {
                out.push(b',');
            }
            out.push(b',');
            // Names and counts only: never needs quoting.
            if r.anomalies != Anomalies::default() {
                let _ = write!(out, "{}", r.anomalies);
            }
            out.push(b',');
            push_field(out, self.sensor.as_bytes());
        }
        out.push(b'\n');
    }
}

impl SessionCsvWriter {
    /// Creates `dir/sessions.csv` (replacing an earlier one) and writes the header line.
    pub fn create(dir: &Path, options: &CsvOptions) -> Result<Self, CsvError> {
        Self::create_formats(dir, options, &[ExportFormat::Csv])
    }

    /// Creates one file per format in `dir` (replacing earlier ones): sessions.csv (header
    /// written now), sessions.jsonl, sessions.parquet.
    pub fn create_formats(
        dir: &Path,
        options: &CsvOptions,
        formats: &[ExportFormat],
    ) -> Result<Self, CsvError> {
        let path = dir.join(SESSIONS_FILE_NAME);
        let mut file = None;
        let mut old_file = OldFileRemoval::default();
        let mut sinks: Vec<Box<dyn RowSink + Send>> = Vec::new();
        for format in formats {
            match format {
                ExportFormat::Csv => {
                    let io_err = io_error(&path);
                    old_file = remove_old(&path, options.remove_old_beside);
                    let created = File::create(&path).map_err(&io_err)?;
                    let mut created = BufWriter::with_capacity(1 << 16, created);
                    created
                        .write_all(&RowFormatter::header()?)
                        .map_err(&io_err)?;
                    file = Some(created);
                }
                ExportFormat::Jsonl => sinks
                    .push(Box::new(JsonlWriter::create(dir).map_err(io_error(
                        &dir.join(super::jsonl::SESSIONS_JSONL_FILE_NAME),
                    ))?)),
                ExportFormat::Parquet if options.partition => sinks.push(Box::new(
                    DatasetWriter::create(dir, &options.sensor)
                        .map_err(io_error(&dir.join(super::dataset::DATASET_DIR_NAME)))?,
                )),
                ExportFormat::Parquet => sinks.push(Box::new(ParquetWriter::create(dir).map_err(
                    io_error(&dir.join(super::parquet::SESSIONS_PARQUET_FILE_NAME)),
                )?)),
            }
        }
        Ok(SessionCsvWriter {
            order: StartOrderBuffer::new(dir, options.max_rows_in_memory),
            path,
            file,
            sinks,
            rows: RowFormatter::new(options.community_id_seed),
            anomalies: String::new(),
            sensor_field: {
                let mut field = Vec::new();
                push_field(&mut field, options.sensor.as_bytes());
                field
            },
            write_beside: false,
            old_file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the input the rows come from, for the partitioned dataset's file names
    /// ([`super::dataset::run_identity`]); call it before [`SessionCsvWriter::finish`].
    pub fn set_dataset_identity(&mut self, identity: &str) {
        for sink in &mut self.sinks {
            sink.set_identity(identity);
        }
    }

    /// Formats one finished session and queues it for start-order output (no label tag).
    pub fn write(&mut self, record: &SessionRecord) -> Result<(), CsvError> {
        self.write_tagged(record, &[])
    }

    /// Like [`SessionCsvWriter::write`], keeping `tag` (at most 64 KiB) with the row for the
    /// labeller given to [`SessionCsvWriter::finish_labelled`].
    pub fn write_tagged(&mut self, record: &SessionRecord, tag: &[u8]) -> Result<(), CsvError> {
        self.write_with_history(record, record.history.as_str(), tag)
    }

    fn write_with_history(
        &mut self,
        record: &SessionRecord,
        history: &str,
        tag: &[u8],
    ) -> Result<(), CsvError> {
        let row = self.rows.row_with_history(record, history, false)?;
        let tag = tag
            .get(..tag.len().min(usize::from(u16::MAX)))
            .unwrap_or(&[]);
        self.anomalies.clear();
        if record.anomalies != Anomalies::default() {
            let _ = write!(self.anomalies, "{}", record.anomalies);
        }
        let anomalies = self
            .anomalies
            .as_bytes()
            .get(..self.anomalies.len().min(usize::from(u16::MAX)))
            .unwrap_or(&[]);
        let key = RowKey::new(record.start, record.uid.as_str());
        // Stored as: tag length (u16 LE), tag, anomalies length (u16 LE), the `anomalies`
        // column, formatted columns; copied once.
        self.order
            .push(
                key,
                &[
                    &(tag.len() as u16).to_le_bytes(),
                    tag,
                    &(anomalies.len() as u16).to_le_bytes(),
                    anomalies,
                    row,
                ],
            )
            .map_err(|source| CsvError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// With a core to spare: at finish, the runs are merged on a second thread and the lines
    /// written to the files (and parsed for the other formats) on a third, while this one
    /// labels the rows in order.
    pub fn write_beside_labels(&mut self, beside: bool) {
        self.write_beside = beside;
    }

    /// Sorts the queued rows held in memory (see [`StartOrderBuffer::sort_now`]).
    pub fn sort_now(&mut self) {
        self.order.sort_now();
    }

    /// Writes every queued row in start order to every format (empty label columns),
    /// completes the files and removes temporary runs.
    pub fn finish(self) -> Result<CsvStats, CsvError> {
        self.finish_labelled(&mut |_, _, _| "")
    }

    /// Like [`SessionCsvWriter::finish`]; `label` turns each row's tag (and, for context, the
    /// row's other columns as written) into its `initiator` and `initiator_reason`, and is called
    /// in start order.
    pub fn finish_labelled(self, label: &mut RowLabeller<'_>) -> Result<CsvStats, CsvError> {
        let SessionCsvWriter {
            path,
            file,
            sinks,
            order,
            sensor_field,
            write_beside,
            old_file,
            ..
        } = self;
        // The earlier run's file is gone before this run's files are complete.
        drop(old_file);
        let mut output = LineOutput {
            file,
            sinks,
            record: csv::StringRecord::new(),
        };
        // Appends one finished line (the stored row and its label columns) to `block`.
        let mut reason = Vec::new();
        let mut compose = |block: &mut Vec<u8>, stored: &[u8]| {
            let (tag, stored) = split_stored(stored);
            let (anomalies, row) = split_stored(stored);
            reason.clear();
            let initiator = label(tag, row, &mut reason);
            block.extend_from_slice(row.strip_suffix(b"\n").unwrap_or(row));
            block.push(b',');
            push_field(block, initiator.as_bytes());
            block.push(b',');
            push_field(block, &reason);
            block.push(b',');
            // Written by `Anomalies`' Display: names and counts, always UTF-8.
            push_field(block, anomalies);
            block.push(b',');
            block.extend_from_slice(&sensor_field);
            block.push(b'\n');
        };
        let (order_stats, output) = if write_beside {
            // Labelling stays here (it needs the rows in order); merging the runs before it,
            // and writing the lines to the files (parsing them for the other formats) after
            // it, run beside it.
            std::thread::scope(|scope| {
                let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(LINE_BLOCKS_QUEUED);
                let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
                let writing = scope.spawn(move || -> io::Result<LineOutput> {
                    for block in full_rx {
                        output.write_lines(&block)?;
                        let _ = empty_tx.send(block);
                    }
                    Ok(output)
                });
                let ordered = in_blocks_merged_beside(scope, order, &mut compose, &mut |block| {
                    pass_block(block, &full_tx, &empty_rx, LINE_BLOCK_BYTES)
                        .map_err(|_| io::Error::other("the output thread stopped"))
                });
                drop(full_tx);
                let output = writing
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                // The writer's own error says more than "it stopped".
                match (ordered, output) {
                    (_, Err(e)) | (Err(e), _) => Err(e),
                    (Ok(stats), Ok(output)) => Ok((stats, output)),
                }
            })
        } else {
            in_blocks(order, &mut compose, &mut |block| {
                output.write_lines(block)?;
                block.clear();
                Ok(())
            })
            .map(|stats| (stats, output))
        }
        .map_err(io_error(&path))?;
        let OrderStats { rows, runs_spilled } = order_stats;
        let LineOutput { file, sinks, .. } = output;
        let mut files = Vec::new();
        if let Some(mut file) = file {
            file.flush().map_err(io_error(&path))?;
            files.push(path.clone());
        }
        for sink in sinks {
            files.push(sink.finish().map_err(io_error(&path))?);
        }
        Ok(CsvStats {
            path,
            files,
            rows,
            runs_spilled,
        })
    }
}

/// Runs the ordered rows through `compose` into blocks of about [`LINE_BLOCK_BYTES`], handing
/// each full block, and the last one, to `hand_on` (which leaves the block empty).
fn in_blocks(
    order: StartOrderBuffer,
    compose: &mut dyn FnMut(&mut Vec<u8>, &[u8]),
    hand_on: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<OrderStats> {
    let mut block = Vec::with_capacity(LINE_BLOCK_BYTES);
    let stats = order.finish_each(&mut |stored| {
        compose(&mut block, stored);
        if block.len() >= LINE_BLOCK_BYTES {
            hand_on(&mut block)?;
        }
        Ok(())
    })?;
    hand_on(&mut block)?;
    Ok(stats)
}

/// Like [`in_blocks`], with the merge of the runs on a thread of `scope`: it hands the
/// ordered rows over in blocks (each row after its length as 4 little-endian bytes), so that
/// merging (reading the runs back, the heap of their heads) and composing run side by side.
fn in_blocks_merged_beside<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    order: StartOrderBuffer,
    compose: &mut dyn FnMut(&mut Vec<u8>, &[u8]),
    hand_on: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<OrderStats> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(ROW_BLOCKS_QUEUED);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let merging = scope.spawn(move || -> io::Result<OrderStats> {
        let mut rows = Vec::with_capacity(ROW_BLOCK_BYTES);
        let stats = order.finish_each(&mut |stored| {
            // A row longer than u32::MAX bytes cannot be stored: rows are capped far below.
            let len = u32::try_from(stored.len()).map_err(io::Error::other)?;
            rows.extend_from_slice(&len.to_le_bytes());
            rows.extend_from_slice(stored);
            if rows.len() >= ROW_BLOCK_BYTES {
                pass_block(&mut rows, &full_tx, &empty_rx, ROW_BLOCK_BYTES)
                    .map_err(|_| io::Error::other("the labelling stopped"))?;
            }
            Ok(())
        })?;
        if !rows.is_empty() {
            full_tx
                .send(rows)
                .map_err(|_| io::Error::other("the labelling stopped"))?;
        }
        Ok(stats)
    });
    let mut block = Vec::with_capacity(LINE_BLOCK_BYTES);
    let mut composed = Ok(());
    for rows in full_rx.iter() {
        let mut rest = rows.as_slice();
        while let Some((len, after)) = rest.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            let Some((stored, after)) = after.split_at_checked(len) else {
                break;
            };
            compose(&mut block, stored);
            rest = after;
        }
        if block.len() >= LINE_BLOCK_BYTES {
            composed = hand_on(&mut block);
            if composed.is_err() {
                break;
            }
        }
        let _ = empty_tx.send(rows);
    }
    if composed.is_ok() {
        composed = hand_on(&mut block);
    }
    // Dropping the receiver first lets a merge blocked on a full queue end.
    drop(full_rx);
    let merged = merging
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    composed?;
    merged
}

/// Sends `block` on `full` and leaves in its place an emptied block that came back on `empty`
/// (a new one of `capacity` bytes when none has yet). Fails when the receiver is gone.
fn pass_block(
    block: &mut Vec<u8>,
    full: &mpsc::SyncSender<Vec<u8>>,
    empty: &mpsc::Receiver<Vec<u8>>,
    capacity: usize,
) -> Result<(), mpsc::SendError<Vec<u8>>> {
    let mut fresh = empty
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(capacity));
    fresh.clear();
    full.send(std::mem::replace(block, fresh))
}

/// Merged rows are handed to the labelling in blocks of about this many bytes.
const ROW_BLOCK_BYTES: usize = 256 << 10;
/// Blocks of merged rows waiting for the labelling before the merge waits.
const ROW_BLOCKS_QUEUED: usize = 4;

/// Finished lines are handed to the files in blocks of about this many bytes (one write each:
/// larger writes cost the kernel less per byte; see `order::RUN_WRITE_BYTES`).
const LINE_BLOCK_BYTES: usize = 1 << 20;
/// Blocks waiting for the output thread before labelling waits.
const LINE_BLOCKS_QUEUED: usize = 4;

/// Where finished sessions.csv lines go: the CSV file as they are, the other formats parsed.
struct LineOutput {
    file: Option<BufWriter<File>>,
    sinks: Vec<Box<dyn RowSink + Send>>,
    record: csv::StringRecord,
}

impl LineOutput {
    /// Writes whole lines (each ending in `\n`).
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(lines)?;
        }
        if self.sinks.is_empty() {
            return Ok(());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(lines);
        while reader
            .read_record(&mut self.record)
            .map_err(io::Error::other)?
        {
            let typed = SessionRow::parse(&self.record)?;
            for sink in self.sinks.iter_mut() {
                sink.write_row(&typed)?;
            }
        }
        Ok(())
    }
}

/// The content columns (empty when the bytes were not recognised), in column order.
fn write_content_fields(out: &mut Vec<u8>, c: Option<&ContentInfo>) {
    let Some(c) = c else {
        for _ in 0..CONTENT_COLUMNS {
            out.push(b',');
        }
        return;
    };
    text_field(out, text(&c.server_name));
    text_field(out, c.tls_version.unwrap_or("").as_bytes());
    text_field(out, text(&c.tls_alpn));
    text_field(out, text(&c.ja4));
    text_field(out, text(&c.http_method));
    text_field(out, text(&c.http_host));
    text_field(out, text(&c.http_uri));
    text_field(out, text(&c.http_user_agent));
    optional_int_field(out, c.http_status);
    text_field(out, text(&c.dns_query));
    text_field(out, text(&c.dns_qtype));
    text_field(out, c.dns_rcode.unwrap_or("").as_bytes());
    joined_field(out, &c.dns_answers, " ");
    text_field(out, text(&c.more.netbios_name));
    text_field(out, text(&c.more.ssh_client));
    text_field(out, text(&c.more.ssh_server));
    text_field(out, text(&c.more.banner));
    text_field(out, text(&c.more.quic_version));
    text_field(out, text(&c.more.dhcp_hostname));
    text_field(out, text(&c.more.dhcp_vendor_class));
    optional_int_field(out, c.more.ntp_version);
    text_field(out, c.more.ntp_mode.unwrap_or("").as_bytes());
    text_field(out, text(&c.more.ssdp_target));
}

/// `,` then a field that never needs quoting by construction (uids, Community IDs and names
/// from a fixed set), without scanning it.
fn plain_field(out: &mut Vec<u8>, field: &[u8]) {
    debug_assert!(!needs_quotes(field), "{field:?} needs quoting");
    out.push(b',');
    out.extend_from_slice(field);
}

/// `,` then the field, quoted when it must be.
fn text_field(out: &mut Vec<u8>, field: &[u8]) {
    out.push(b',');
    push_field(out, field);
}

/// `,` then the items joined by `separator`, quoted as one field when it must be.
fn joined_field(out: &mut Vec<u8>, items: &[String], separator: &str) {
    out.push(b',');
    if items.iter().any(|item| needs_quotes(item.as_bytes())) {
        push_field(out, items.join(separator).as_bytes());
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(item.as_bytes());
    }
}

/// `SECS.FFFFFF` (as `{secs}.{micros:06}` would write it), without `fmt`'s machinery.
fn seconds_with_micros<S: itoa::Integer>(out: &mut Vec<u8>, secs: S, micros: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut rest = micros % 1_000_000;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
}

/// `,` then the integer.
fn int_field<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    out.push(b',');
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `,` then the integer if there is one.
fn optional_int_field<I: itoa::Integer>(out: &mut Vec<u8>, value: Option<I>) {
    match value {
        Some(value) => int_field(out, value),
        None => out.push(b','),
    }
}

/// `,` then the address as `Display` writes it, without `fmt`.
fn addr_field(out: &mut Vec<u8>, addr: std::net::IpAddr) {
    out.push(b',');
    crate::text::push_ip(out, addr);
}

fn text<T: std::ops::Deref<Target = str>>(value: &Option<T>) -> &[u8] {
    value.as_deref().unwrap_or("").as_bytes()
}

/// How many content columns [`write_content_fields`] writes.
const CONTENT_COLUMNS: usize = 23;

/// Turns a stored row's tag (and the row as written, for context) into its `initiator` and
/// `initiator_reason` columns: it appends the reason to the buffer it is given (cleared before
/// each row) and returns the initiator.
pub type RowLabeller<'a> = dyn FnMut(&[u8], &[u8], &mut Vec<u8>) -> &'static str + 'a;

/// Whether the csv crate would quote `field`: it holds a comma, a quote or a line break.
#[inline]
fn needs_quotes(field: &[u8]) -> bool {
    // Eight bytes at a time, without a branch per byte: user agents, URIs and reasons are
    // long and rarely quoted.
    let mut words = field.chunks_exact(8);
    let mut found = 0u64;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let word = u64::from_ne_bytes(bytes);
        found |= zero_bytes(word ^ COMMAS) | zero_bytes(word ^ QUOTES);
        found |= zero_bytes(word ^ CARRIAGE_RETURNS) | zero_bytes(word ^ LINE_FEEDS);
    }
    found != 0
        || words
            .remainder()
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const COMMAS: u64 = ONES * b',' as u64;
const QUOTES: u64 = ONES * b'"' as u64;
const CARRIAGE_RETURNS: u64 = ONES * b'\r' as u64;
const LINE_FEEDS: u64 = ONES * b'\n' as u64;

/// Non-zero when a byte of `word` is zero (exact: a borrow only sets bits above a zero byte).
#[inline]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & (ONES << 7)
}

/// Appends `field`, quoted as the csv crate quotes (only when it holds a comma, a quote or a
/// line break; quotes doubled).
#[inline]
fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    if needs_quotes(field) {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

/// Splits a length-prefixed (u16 LE) field off the front of `stored`: (field, rest).
fn split_stored(stored: &[u8]) -> (&[u8], &[u8]) {
    let len = match stored {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => return (&[], stored),
    };
    let rest = stored.get(2..).unwrap_or(&[]);
    match (rest.get(..len), rest.get(len..)) {
        (Some(tag), Some(row)) => (tag, row),
        _ => (&[], rest),
    }
}

fn new_staging() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(4096)
        .from_writer(Vec::new())
}

fn round_to_micros(nanos: u64) -> u64 {
    nanos / 1_000 + u64::from(nanos % 1_000 >= 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::session::{
        ConnState, DirectionStats, EndReason, Endpoint, History, Proto, ServiceEvidence, Uid,
    };
    use std::collections::HashMap;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sessionscope-csv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The HTTP GET session of Zeek's trace http/get.pcap with the counters of Zeek's baseline
    /// core.tcp.reassembly-known-ports/conn.log (the baseline masks ts; ours is arbitrary).
    fn http_get() -> SessionRecord {
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::from_micros(1_362_692_526_869_344),
            last: Timestamp::from_micros(1_362_692_526_869_344 + 211_484),
            orig: Endpoint {
                addr: "141.142.228.5".parse().unwrap(),
                port: 59856,
            },
            resp: Endpoint {
                addr: "192.150.187.43".parse().unwrap(),
                port: 80,
            },
            proto: Proto::Tcp,
            ip_proto: 6,
            orig_stats: DirectionStats {
                pkts: 7,
                ip_bytes: 512,
                bytes: 136,
            },
            resp_stats: DirectionStats {
                pkts: 7,
                ip_bytes: 5379,
                bytes: 5007,
            },
            conn_state: ConnState::SF,
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

    fn read_rows(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
        let mut rdr = csv::Reader::from_path(path).unwrap();
        let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        let rows = rdr
            .records()
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(r.len(), header.len());
                header
                    .iter()
                    .cloned()
                    .zip(r.iter().map(String::from))
                    .collect()
            })
            .collect();
        (header, rows)
    }

    #[test]
    fn header_and_one_row() {
        let dir = temp_dir("one");
        let mut w = SessionCsvWriter::create(&dir, &CsvOptions::default()).unwrap();
        w.write(&http_get()).unwrap();
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows, 1);
        let text = std::fs::read_to_string(&stats.path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "ts,uid,community_id,orig_h,orig_p,resp_h,resp_p,proto,service,duration,orig_bytes,\
             resp_bytes,conn_state,missed_bytes,history,orig_pkts,orig_ip_bytes,resp_pkts,\
             resp_ip_bytes,ip_proto,service_evidence,end_reason,tunnel_depth,related_uid,\
             server_name,tls_version,tls_alpn,ja4,http_method,http_host,http_uri,http_user_agent,\
             http_status,dns_query,dns_qtype,dns_rcode,dns_answers,netbios_name,ssh_client,\
             ssh_server,banner,quic_version,dhcp_hostname,dhcp_vendor_class,ntp_version,ntp_mode,\
             ssdp_target,initiator,initiator_reason,anomalies,sensor"
        );
        let (_, rows) = read_rows(&stats.path);
        let r = &rows[0];
        assert_eq!(r["ts"], "1362692526.869344");
        // Zeek's community-id-logging baseline for this 5-tuple.
        assert_eq!(r["community_id"], "1:yvyB8h+3dnggTZW0UEITWCst97w=");
        assert_eq!(r["orig_h"], "141.142.228.5");
        assert_eq!(r["resp_p"], "80");
        assert_eq!(r["proto"], "tcp");
        assert_eq!(r["service"], "http");
        assert_eq!(r["duration"], "0.211484");
        assert_eq!(r["orig_bytes"], "136");
        assert_eq!(r["resp_bytes"], "5007");
        assert_eq!(r["orig_ip_bytes"], "512");
        assert_eq!(r["conn_state"], "SF");
        assert_eq!(r["history"], "");
        assert_eq!(r["orig_pkts"], "7");
        assert_eq!(r["resp_ip_bytes"], "5379");
        assert_eq!(r["ip_proto"], "6");
        assert_eq!(r["service_evidence"], "port");
        assert_eq!(r["end_reason"], "closed");
        assert_eq!(r["tunnel_depth"], "0");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ipv6_icmp_zero_duration_and_empty_values() {
        let dir = temp_dir("v6");
        let mut w = SessionCsvWriter::create(&dir, &CsvOptions::default()).unwrap();
        let mut r = http_get();
        r.orig = Endpoint {
            addr: "fe80:0:0:0:200:86ff:fe05:80da".parse().unwrap(),
            port: 135,
        };
        r.resp = Endpoint {
            addr: "fe80:0000::260:97ff:fe07:69ea".parse().unwrap(),
            port: 136,
        };
        r.proto = Proto::Icmp;
        r.ip_proto = 58;
        r.last = r.start;
        r.service = None;
        r.service_evidence = ServiceEvidence::None;
        r.conn_state = ConnState::OTH;
        r.end_reason = EndReason::CaptureEnd;
        w.write(&r).unwrap();
        let path = w.finish().unwrap().path;
        let (_, rows) = read_rows(&path);
        let row = &rows[0];
        // RFC 5952 canonical text.
        assert_eq!(row["orig_h"], "fe80::200:86ff:fe05:80da");
        assert_eq!(row["resp_h"], "fe80::260:97ff:fe07:69ea");
        assert_eq!(row["proto"], "icmp");
        assert_eq!(row["ip_proto"], "58");
        // Zeek's run-pcaps baseline (icmp6.pcap) for this neighbour solicitation pair.
        assert_eq!(row["community_id"], "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=");
        assert_eq!(row["duration"], "0.000000");
        assert_eq!(row["service"], "");
        assert_eq!(row["service_evidence"], "");
        assert_eq!(row["end_reason"], "capture_end");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hostile_service_and_history_stay_one_field() {
        let dir = temp_dir("hostile");
        let mut w = SessionCsvWriter::create(&dir, &CsvOptions::default()).unwrap();
        let hostile_service = "ht\"tp,\r\nx\n\"\",evil";
        let hostile_history = "Sh\n\"A,d\"\rF";
        let mut r = http_get();
        r.service = Some(hostile_service);
        w.write_with_history(&r, hostile_history, b"").unwrap();
        w.write(&http_get()).unwrap();
        let path = w.finish().unwrap().path;
        let (header, rows) = read_rows(&path);
        assert_eq!(header.len(), SESSIONS_CSV_COLUMNS.len());
        assert_eq!(rows.len(), 2);
        let hostile = rows.iter().find(|r| r["service"] != "http").unwrap();
        assert_eq!(hostile["service"], hostile_service);
        assert_eq!(hostile["history"], hostile_history);
        assert_eq!(hostile["conn_state"], "SF");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rows_come_out_in_start_order_through_spills() {
        let dir = temp_dir("order");
        let options = CsvOptions {
            max_rows_in_memory: 3,
            ..CsvOptions::default()
        };
        let mut w = SessionCsvWriter::create(&dir, &options).unwrap();
        // Sessions finish in reverse start order (each one ends later than it starts).
        let base = 1_000_000_000_000_000i64;
        for i in (0..20i64).rev() {
            let mut r = http_get();
            r.start = Timestamp(base + i * 1_000_000);
            r.last = Timestamp(base + 100_000_000);
            r.orig.port = 1000 + i as u16;
            w.write(&r).unwrap();
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.rows, 20);
        assert!(stats.runs_spilled > 0);
        let (_, rows) = read_rows(&stats.path);
        let ports: Vec<String> = rows.iter().map(|r| r["orig_p"].clone()).collect();
        let expected: Vec<String> = (1000..1020).map(|p: u16| p.to_string()).collect();
        assert_eq!(ports, expected);
        assert_eq!(rows[0]["ts"], "1000000.000000");
        assert_eq!(rows[19]["ts"], "1000000.019000");
        assert_eq!(rows[0]["duration"], "0.100000");
        // Only sessions.csv is left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Writes `rows` sessions finishing out of start order through spills of 97 rows, labels
    /// them (the reason numbers the calls, so the order of the calls shows in the file), and
    /// returns sessions.csv's bytes.
    fn labelled_file(name: &str, rows: u16, beside: bool) -> Vec<u8> {
        let dir = temp_dir(name);
        let options = CsvOptions {
            max_rows_in_memory: 97,
            ..CsvOptions::default()
        };
        let mut w = SessionCsvWriter::create(&dir, &options).unwrap();
        let base = 1_000_000_000_000_000i64;
        for i in 0..rows {
            let mut r = http_get();
            // Interleaved start order: later rows often started earlier.
            let start = (i64::from(i) * 7919) % i64::from(rows);
            r.start = Timestamp(base + start * 1_000_000);
            r.last = Timestamp(base + 10_000_000_000);
            r.orig.port = i;
            w.write(&r).unwrap();
        }
        w.write_beside_labels(beside);
        let mut calls = 0u32;
        let stats = w
            .finish_labelled(&mut |_, row, reason| {
                calls += 1;
                reason.extend_from_slice(format!("call {calls}").as_bytes());
                if row.len() % 2 == 0 {
                    "user"
                } else {
                    "technology"
                }
            })
            .unwrap();
        assert_eq!(stats.rows, u64::from(rows));
        assert!(stats.runs_spilled > 0);
        let bytes = std::fs::read(&stats.path).unwrap();
        // Only sessions.csv is left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
        bytes
    }

    #[test]
    fn merging_beside_the_labelling_writes_the_same_file() {
        // Enough rows for several blocks of merged rows.
        let rows = 20_000;
        let inline = labelled_file("label-inline", rows, false);
        let beside = labelled_file("label-beside", rows, true);
        assert!(inline.len() > 4 * ROW_BLOCK_BYTES);
        assert!(inline == beside, "the files differ");
        // In start order, labelled in that order.
        let text = String::from_utf8(inline).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut last_ts = 0.0;
        for (index, record) in reader.records().enumerate() {
            let record = record.unwrap();
            let ts: f64 = record[0].parse().unwrap();
            assert!(ts >= last_ts);
            last_ts = ts;
            let reason_column = SESSIONS_CSV_COLUMNS
                .iter()
                .position(|c| *c == "initiator_reason")
                .unwrap();
            assert_eq!(&record[reason_column], format!("call {}", index + 1));
        }
    }

    /// Writes one session into `dir` with `options` and returns sessions.csv's text.
    fn write_one(dir: &Path, options: &CsvOptions) -> String {
        let mut w = SessionCsvWriter::create(dir, options).unwrap();
        w.write(&http_get()).unwrap();
        let stats = w.finish().unwrap();
        std::fs::read_to_string(stats.path).unwrap()
    }

    #[test]
    fn an_earlier_sessions_csv_is_replaced_and_nothing_is_left_beside() {
        for beside in [false, true] {
            let dir = temp_dir(&format!("replace-{beside}"));
            let old = dir.join(SESSIONS_FILE_NAME);
            std::fs::write(&old, "old contents\n".repeat(10_000)).unwrap();
            let options = CsvOptions {
                remove_old_beside: beside,
                ..CsvOptions::default()
            };
            let text = write_one(&dir, &options);
            assert!(text.starts_with("ts,uid,"), "{text}");
            assert!(!text.contains("old contents"));
            assert_eq!(text.lines().count(), 2);
            // The old file is gone once the writer has finished: only sessions.csv is left.
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, [SESSIONS_FILE_NAME], "beside: {beside}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_sessions_csv_link_is_written_through() {
        for beside in [false, true] {
            let dir = temp_dir(&format!("link-{beside}"));
            let target = dir.join("elsewhere.csv");
            std::fs::write(&target, "old contents\n").unwrap();
            std::os::unix::fs::symlink(&target, dir.join(SESSIONS_FILE_NAME)).unwrap();
            let options = CsvOptions {
                remove_old_beside: beside,
                ..CsvOptions::default()
            };
            write_one(&dir, &options);
            let link = std::fs::symlink_metadata(dir.join(SESSIONS_FILE_NAME)).unwrap();
            assert!(link.file_type().is_symlink());
            let through = std::fs::read_to_string(&target).unwrap();
            assert!(through.starts_with("ts,uid,") && !through.contains("old contents"));
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn quoting_is_decided_for_every_byte_at_every_position() {
        // The word-at-a-time test against the plain definition: every byte value, at every
        // position of fields one to twenty bytes long (inside a word and in the remainder).
        for len in 1..=20 {
            for at in 0..len {
                for byte in 0..=u8::MAX {
                    let mut field = vec![b'a'; len];
                    field[at] = byte;
                    let expected = matches!(byte, b',' | b'"' | b'\r' | b'\n');
                    assert_eq!(needs_quotes(&field), expected, "{field:?}");
                }
            }
        }
        let mut out = Vec::new();
        push_field(&mut out, b"Mozilla/5.0 (X11; \"Linux\", x86_64)");
        assert_eq!(out, b"\"Mozilla/5.0 (X11; \"\"Linux\"\", x86_64)\"");
    }

    #[test]
    fn duration_rounds_to_the_microsecond() {
        let seconds = |nanos: u64| {
            let micros = round_to_micros(nanos);
            let mut out = Vec::new();
            seconds_with_micros(&mut out, micros / 1_000_000, micros % 1_000_000);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(seconds(1_499), "0.000001");
        assert_eq!(seconds(1_500), "0.000002");
        assert_eq!(seconds(3_600_000_000_000), "3600.000000");
        assert_eq!(seconds(12_345_678_901), "12.345679");
    }

    #[test]
    fn times_before_1970_write_as_zeek_does() {
        // Zeek writes ts as %.6f of the epoch seconds; floor division keeps the fraction
        // positive, as Timestamp's Display does.
        let mut out = Vec::new();
        let start = crate::capture::Timestamp(-1_500_000_000).as_micros();
        seconds_with_micros(
            &mut out,
            start.div_euclid(1_000_000),
            start.rem_euclid(1_000_000) as u64,
        );
        assert_eq!(
            out,
            crate::capture::Timestamp(-1_500_000_000)
                .to_string()
                .as_bytes()
        );
    }
}
