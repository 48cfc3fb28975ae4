//! The session table. STUB.

use super::SessionRecord;
use crate::capture::Timestamp;
use crate::config::TrackerConfig;
use crate::decode::IpPacket;

/// Counters the summary reports about the table itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackerStats {
    pub sessions_started: u64,
    pub evicted: u64,
    pub peak_live: u64,
}

pub struct SessionTracker {
    config: TrackerConfig,
    stats: TrackerStats,
}

impl SessionTracker {
    pub fn new(config: TrackerConfig) -> Self {
        SessionTracker { config, stats: TrackerStats::default() }
    }
    /// Accounts one IP packet seen at `ts`; sessions that end as a result go to `emit`.
    pub fn process(&mut self, _ts: Timestamp, _packet: &IpPacket<'_>, _emit: &mut impl FnMut(SessionRecord)) {
        let _ = &self.config;
    }
    /// Ends every live session (end of capture).
    pub fn finish(&mut self, _emit: &mut impl FnMut(SessionRecord)) {}
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }
}
