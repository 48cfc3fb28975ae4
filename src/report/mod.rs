//! Output: sessions.csv (with Community IDs, in start order) and the terminal summary.
//!
//! [`csv::SessionCsvWriter`] turns finished sessions into rows, [`order`] keeps them in start
//! order in bounded memory, [`stream_csv::StreamingCsvWriter`] appends rows as sessions end (live
//! runs, with rotation), [`community_id`] hashes 5-tuples per the Community ID spec, and
//! [`terminal::render`] turns an [`crate::analysis::CaptureSummary`] into the text report.

pub mod community_id;
pub mod csv;
pub mod order;
pub mod stream_csv;
pub mod streams;
pub mod terminal;

pub use self::csv::{CsvError, CsvOptions, CsvStats, RowFormatter, SessionCsvWriter};
pub use community_id::{CommunityId, CommunityIdHasher, FlowTuple};
pub use stream_csv::{Rotation, StreamStats, StreamingCsvWriter};
pub use terminal::{TerminalOptions, render};
