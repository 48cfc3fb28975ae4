//! Aggregates over the whole capture: the counts behind the terminal summary.
// STUB: the report helper fills this.
