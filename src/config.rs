//! Analysis settings: one typed struct that the CLI fills, with each field's unit in its name.

use std::time::Duration;

/// How sessions are tracked and expired. Defaults are Zeek's (`init-bare.zeek`).
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// A TCP session with no packet for this long ends (Zeek: tcp_inactivity_timeout, 5 min).
    pub tcp_inactivity: Duration,
    /// Likewise for UDP (Zeek: udp_inactivity_timeout, 1 min).
    pub udp_inactivity: Duration,
    /// Likewise for ICMP (Zeek: icmp_inactivity_timeout, 1 min).
    pub icmp_inactivity: Duration,
    /// Likewise for other IP protocols (Zeek: unknown_ip_inactivity_timeout, 1 min).
    pub other_inactivity: Duration,
    /// After both sides closed (FIN), the session lingers this long (Zeek: tcp_close_delay, 5 s).
    pub tcp_close_delay: Duration,
    /// After a RST, the session lingers this long (Zeek: tcp_reset_delay, 5 s).
    pub tcp_reset_delay: Duration,
    /// Live sessions above this count evict the longest idle one.
    pub max_sessions: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            tcp_inactivity: Duration::from_secs(300),
            udp_inactivity: Duration::from_secs(60),
            icmp_inactivity: Duration::from_secs(60),
            other_inactivity: Duration::from_secs(60),
            tcp_close_delay: Duration::from_secs(5),
            tcp_reset_delay: Duration::from_secs(5),
            max_sessions: 1_000_000,
        }
    }
}
