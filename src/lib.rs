//! sessionscope: a passive network session analyser.
//!
//! The modules follow the pipeline in the order data flows through it:
//! [`capture`] reads packets from files (and later interfaces), [`decode`] turns link-layer
//! frames into borrowed IP packet views, [`session`] tracks conversations with Zeek's conn.log
//! semantics, [`classify`] names each session's service, [`analysis`] aggregates what was seen,
//! and [`report`] writes it out. [`pipeline`] wires the stages together; the CLI sits on top.
//! No stage reaches back up the pipeline; [`text`] holds the address text the per-row outputs share,
//! and [`prefetch`] the cache hints the session table uses when sessions end.

// Capture bytes and user input must never reach a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod analysis;
pub mod capture;
pub mod classify;
pub mod config;
pub mod decode;
#[cfg(feature = "live")]
pub mod live;
pub mod pipeline;
pub mod prefetch;
pub mod report;
pub mod session;
pub mod text;
