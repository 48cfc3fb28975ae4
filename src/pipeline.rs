//! Wires the stages together: capture -> decode -> session -> classify -> analysis -> report.
// STUB: filled by the lead.
