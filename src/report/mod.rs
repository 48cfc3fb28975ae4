//! Output: sessions in CSV, JSON lines and Parquet (start order), the HTML report, and the
//! terminal summary.
//!
//! [`csv::SessionCsvWriter`] turns finished sessions into rows, [`order`] keeps them in start
//! order in bounded memory and feeds every format ([`export`], [`jsonl`], [`parquet`], the
//! partitioned Parquet dataset [`dataset`]),
//! [`stream_csv::StreamingCsvWriter`] appends rows as sessions end (live runs, with rotation),
//! [`streams`] writes reassembled TCP streams, [`community_id`] hashes 5-tuples per the
//! Community ID spec, [`data::ReportData`] gathers a bounded picture of the sessions for
//! [`html`], [`hidden_csv`] writes the hidden-session patterns ([`hidden_export`]: as JSON lines and Parquet), and [`terminal::render`] turns an [`crate::analysis::CaptureSummary`] into the text
//! report.

pub mod community_id;
pub mod csv;
pub mod data;
pub mod dataset;
pub mod export;
pub mod hidden_csv;
pub mod hidden_export;
pub mod html;
pub mod jsonl;
pub mod order;
pub mod parquet;
pub mod stream_csv;
pub mod streams;
pub mod terminal;

pub use self::csv::{CsvError, CsvOptions, CsvStats, RowFormatter, SessionCsvWriter};
pub use community_id::{CommunityId, CommunityIdHasher, FlowTuple};
pub use data::ReportData;
pub use export::ExportFormat;
pub use stream_csv::{Rotation, StreamStats, StreamingCsvWriter};
pub use terminal::{TerminalOptions, render};
