//! Output: sessions.csv and the terminal summary.
// STUB: the report helper fills this.
