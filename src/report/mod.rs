//! Output: sessions.csv (with Community IDs, in start order) and the terminal summary.
//!
//! [`csv::SessionCsvWriter`] turns finished sessions into rows, [`order`] keeps them in start
//! order in bounded memory, [`community_id`] hashes 5-tuples per the Community ID spec, and
//! [`terminal::render`] turns an [`crate::analysis::CaptureSummary`] into the text report;
//! [`hidden_csv`] and [`terminal::render_hidden`] show the hidden-session patterns.

pub mod community_id;
pub mod csv;
pub mod hidden_csv;
pub mod order;
pub mod terminal;

pub use self::csv::{CsvError, CsvOptions, CsvStats, SessionCsvWriter};
pub use community_id::{CommunityId, CommunityIdHasher, FlowTuple};
pub use terminal::{TerminalOptions, render};
