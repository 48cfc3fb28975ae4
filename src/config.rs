//! Analysis settings: one typed struct that the CLI fills, with each field's unit in its name.

use std::time::Duration;

/// Ports that mark the server when a session's first packet does not show who started it
/// (a SYN-ACK, mid-stream data, a UDP reply): the session is then flipped so that the side on
/// such a port is the responder. Zeek calls this set `likely_server_ports` and fills it with the
/// ports of the analysers it loads; [`ServerPorts::zeek_default`] is that set for Zeek's default
/// scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPorts {
    tcp: Vec<u16>,
    udp: Vec<u16>,
}

/// Tunnel ports Zeek always registers (its packet analysers load even in bare mode).
const TUNNEL_PORTS_UDP: [u16; 6] = [2123, 2152, 3544, 4789, 5072, 6081];

/// Server ports of Zeek's default protocol analysers (`scripts/base/protocols/*/main.zeek`).
const ZEEK_ANALYZER_PORTS_TCP: [u16; 48] = [
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587,
    614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222,
    5223, 5269, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];
const ZEEK_ANALYZER_PORTS_UDP: [u16; 19] = [
    53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 784, 853, 1812, 3389, 4011, 5060, 5353, 5355,
    20000,
];

impl ServerPorts {
    /// No port marks a server: sessions keep the direction of their first packet.
    pub fn none() -> Self {
        ServerPorts {
            tcp: Vec::new(),
            udp: Vec::new(),
        }
    }

    /// What Zeek has with no protocol analyser loaded (`zeek -b`): the tunnel ports.
    pub fn tunnels() -> Self {
        let mut ports = Self::none();
        ports.udp.extend_from_slice(&TUNNEL_PORTS_UDP);
        ports.normalise();
        ports
    }

    /// Zeek's set with its default scripts loaded.
    pub fn zeek_default() -> Self {
        let mut ports = Self::tunnels();
        ports.tcp.extend_from_slice(&ZEEK_ANALYZER_PORTS_TCP);
        ports.udp.extend_from_slice(&ZEEK_ANALYZER_PORTS_UDP);
        ports.normalise();
        ports
    }

    /// Parses a comma-separated union of `zeek`, `tunnels`, `none`, `tcp/PORT` and `udp/PORT`
    /// (for example `zeek,tcp/8443`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut ports = Self::none();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "zeek" => ports.extend(&Self::zeek_default()),
                "tunnels" => ports.extend(&Self::tunnels()),
                "none" => {}
                _ => {
                    let (proto, port) = item.split_once('/').ok_or_else(|| {
                        format!("'{item}': expected zeek, tunnels, none, tcp/PORT or udp/PORT")
                    })?;
                    let port: u16 = port
                        .parse()
                        .map_err(|_| format!("'{item}': '{port}' is not a port number"))?;
                    match proto {
                        "tcp" => ports.tcp.push(port),
                        "udp" => ports.udp.push(port),
                        _ => return Err(format!("'{item}': protocol must be tcp or udp")),
                    }
                }
            }
        }
        ports.normalise();
        Ok(ports)
    }

    fn extend(&mut self, other: &ServerPorts) {
        self.tcp.extend_from_slice(&other.tcp);
        self.udp.extend_from_slice(&other.udp);
    }

    fn normalise(&mut self) {
        self.tcp.sort_unstable();
        self.tcp.dedup();
        self.udp.sort_unstable();
        self.udp.dedup();
    }

    /// Whether `port` marks a server for IP protocol `ip_proto` (6 TCP, 17 UDP).
    pub fn contains(&self, ip_proto: u8, port: u16) -> bool {
        match ip_proto {
            6 => self.tcp.binary_search(&port).is_ok(),
            17 => self.udp.binary_search(&port).is_ok(),
            _ => false,
        }
    }
}

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
    /// UDP DNS sessions (responder port 53, 137, 5353, 5355) end after this long without a
    /// packet, checked every such interval from the first packet (Zeek: dns_session_timeout, 10 s).
    pub dns_session_timeout: Duration,
    /// Live sessions above this count evict the longest idle one.
    pub max_sessions: usize,
    /// Ports that mark the server of a session whose start was not seen.
    pub server_ports: ServerPorts,
    /// Read each TCP and UDP session's first bytes to name its service (TLS, HTTP, DNS...).
    pub classify_content: bool,
    /// Verify IP, TCP, UDP and ICMP checksums and leave bad packets out of their sessions, as
    /// Zeek does by default (without `-C`). Off by default: offloading hosts record their own
    /// packets with wrong checksums.
    pub verify_checksums: bool,
    /// IP fragment reassembly (done by decode, before sessions see the datagram).
    pub fragments: FragmentConfig,
    /// Bytes a TCP direction may hold ahead of a hole so that the content classifier still
    /// sees a protocol's opening messages in order (a stream output sets its own limit).
    pub content_reorder_bytes: usize,
}

/// One memory budget (`--memory MIB`) split over everything that grows with hostile traffic:
/// live sessions with their reassembly buffers (3/4), pending IP fragments (1/8) and the rows
/// the sessions.csv writer sorts in memory (1/8). Each share is charged at its worst case, so
/// the structures stay within the budget whatever the traffic; the process adds a fixed
/// overhead (docs/hostile-input.md, "Memory budget").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub max_sessions: usize,
    /// Reorder memory per TCP direction (content classification and `--write-streams`).
    pub stream_bytes: usize,
    pub fragment_bytes: usize,
    /// sessions.csv rows sorted in memory before a run is spilled to disk.
    pub order_rows: usize,
}

impl MemoryBudget {
    /// A live session's own state: table slot, index entry, LRU links, classifier.
    pub const SESSION_BYTES: usize = 1024;
    /// Reorder memory per TCP direction under a budget.
    pub const STREAM_BYTES: usize = 1024;
    /// The most a direction's reassembler holds for [`Self::STREAM_BYTES`] of data: buffer
    /// growth (up to twice the bytes) and block bookkeeping.
    pub const STREAM_CHARGE_BYTES: usize = 3 * 1024;
    /// One sessions.csv row waiting in the start-order buffer, with its key and tag.
    pub const ORDER_ROW_BYTES: usize = 256;

    pub fn split(mebibytes: usize) -> Self {
        let total = mebibytes.saturating_mul(1 << 20);
        let eighth = total / 8;
        let per_session = Self::SESSION_BYTES + 2 * Self::STREAM_CHARGE_BYTES;
        MemoryBudget {
            max_sessions: (total.saturating_sub(2 * eighth) / per_session).max(1),
            stream_bytes: Self::STREAM_BYTES,
            fragment_bytes: eighth,
            order_rows: (eighth / Self::ORDER_ROW_BYTES).max(1),
        }
    }
}

/// Limits of IP fragment reassembly. Memory held for fragments is at most `max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentConfig {
    /// A datagram still incomplete this long after its first fragment is given up (Zeek:
    /// frag_timeout, 5 min); zero means never (then only the limits below end it).
    pub timeout: Duration,
    /// Most datagrams pending at once; beyond it the oldest is given up.
    pub max_datagrams: usize,
    /// Most bytes held for pending datagrams (buffers plus bookkeeping); beyond it the oldest
    /// datagrams are given up.
    pub max_bytes: usize,
}

impl Default for FragmentConfig {
    fn default() -> Self {
        FragmentConfig {
            timeout: Duration::from_secs(300),
            max_datagrams: 16_384,
            max_bytes: 64 << 20,
        }
    }
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
            dns_session_timeout: Duration::from_secs(10),
            max_sessions: 1_000_000,
            verify_checksums: false,
            server_ports: ServerPorts::zeek_default(),
            classify_content: true,
            fragments: FragmentConfig::default(),
            content_reorder_bytes: 16 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_port_specs() {
        let zeek = ServerPorts::zeek_default();
        assert!(zeek.contains(6, 443) && zeek.contains(17, 53) && zeek.contains(17, 4789));
        assert!(!zeek.contains(6, 8443) && !zeek.contains(17, 68));
        let custom = ServerPorts::parse("zeek,tcp/8443").unwrap();
        assert!(custom.contains(6, 8443) && custom.contains(6, 443));
        let bare = ServerPorts::parse("tunnels").unwrap();
        assert!(bare.contains(17, 3544) && !bare.contains(6, 80));
        assert_eq!(ServerPorts::parse("none").unwrap(), ServerPorts::none());
        assert!(ServerPorts::parse("sctp/9").is_err());
        assert!(ServerPorts::parse("tcp/99999").is_err());
    }

    #[test]
    fn memory_budget_shares_add_up() {
        let b = MemoryBudget::split(200);
        let total = 200usize << 20;
        let sessions =
            b.max_sessions * (MemoryBudget::SESSION_BYTES + 2 * MemoryBudget::STREAM_CHARGE_BYTES);
        let rows = b.order_rows * MemoryBudget::ORDER_ROW_BYTES;
        assert!(sessions + b.fragment_bytes + rows <= total);
        assert_eq!(b.fragment_bytes, total / 8);
        assert_eq!(b.max_sessions, (total - total / 4) / (7 * 1024));
        assert_eq!(MemoryBudget::split(0).max_sessions, 1);
    }
}
