//! Aggregates over the whole capture: the counts behind the terminal summary.
//!
//! [`CaptureSummary`] is fed by the pipeline (per file, per packet, per skipped frame, per
//! finished session) and read by [`crate::report::terminal`]. Memory is bounded: fixed arrays,
//! maps keyed by small closed sets (protocols, services), and a bounded top-talkers table.
//! [`hidden`] finds the sessions technology started behind the user's back.

pub mod hidden;
mod summary;

pub use summary::{
    BoundaryKind, CaptureSetInfo, CaptureSummary, END_REASONS, FileBoundary, FileSummary, Talker,
    TopTalkers, Traffic,
};
