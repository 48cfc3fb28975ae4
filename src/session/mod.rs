//! Conversations: tracking sessions with Zeek's conn.log semantics.
//!
//! Owns the session table (keyed by a direction-independent 5-tuple), each session's TCP
//! endpoint states and history letters, per-direction counters, inactivity expiry driven by
//! capture time, and the cap on live sessions. Finished sessions leave as [`SessionRecord`]s.
//! Promise: memory follows live sessions (bounded by `max_sessions`), never capture size.

mod history;
pub mod reassembly;
mod tcp;
mod timers;
mod tracker;
mod uid;

pub use history::History;
pub use tracker::{SessionTracker, TrackerStats};
pub use uid::Uid;

use crate::capture::Timestamp;
use crate::classify::Findings;
use std::net::IpAddr;

/// The transport a session runs over, as conn.log's `proto` column names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    /// Any other IP protocol (Zeek's `unknown_transport`), with its number.
    Other(u8),
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Other(_) => "unknown_transport",
        }
    }
}

/// Zeek's conn_state values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub const ALL: [ConnState; 13] = [
        ConnState::S0,
        ConnState::S1,
        ConnState::SF,
        ConnState::REJ,
        ConnState::S2,
        ConnState::S3,
        ConnState::RSTO,
        ConnState::RSTR,
        ConnState::RSTOS0,
        ConnState::RSTRH,
        ConnState::SH,
        ConnState::SHR,
        ConnState::OTH,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// Zeek's one-line meaning of the state, for docs and the summary.
    pub fn meaning(self) -> &'static str {
        match self {
            ConnState::S0 => "attempt seen, no reply",
            ConnState::S1 => "established, not terminated",
            ConnState::SF => "normal establishment and termination",
            ConnState::REJ => "attempt rejected",
            ConnState::S2 => "established, close attempt by originator only",
            ConnState::S3 => "established, close attempt by responder only",
            ConnState::RSTO => "established, originator aborted (RST)",
            ConnState::RSTR => "responder sent a RST",
            ConnState::RSTOS0 => "originator sent SYN then RST, no SYN-ACK",
            ConnState::RSTRH => "responder sent SYN-ACK then RST, no SYN seen",
            ConnState::SH => "originator sent SYN then FIN, no SYN-ACK (half-open)",
            ConnState::SHR => "responder sent SYN-ACK then FIN, no SYN seen",
            ConnState::OTH => "no SYN seen, midstream traffic",
        }
    }
}

/// One side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: IpAddr,
    /// TCP/UDP port; for ICMP, Zeek's convention: the message type on the originator side, and
    /// on the responder side the counterpart type (echo request 8 -> reply 0) or, for one-way
    /// messages such as errors, the code.
    pub port: u16,
}

/// Counters for one direction of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Packets sent.
    pub pkts: u64,
    /// Sum of the IP total lengths of those packets.
    pub ip_bytes: u64,
    /// Payload bytes: for TCP, from sequence numbers (so retransmissions count once and
    /// gaps count); for UDP and ICMP, the sum of payload lengths.
    pub bytes: u64,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// TCP teardown (FIN both ways or RST) and the linger delay passed.
    Closed,
    /// No packet for the protocol's inactivity timeout.
    Inactive,
    /// The capture ended with the session still open.
    CaptureEnd,
    /// Removed to respect `--max-sessions`.
    Evicted,
    /// A new SYN on a closed 5-tuple started a new session.
    PortReuse,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Inactive => "inactive",
            EndReason::CaptureEnd => "capture_end",
            EndReason::Evicted => "evicted",
            EndReason::PortReuse => "port_reuse",
        }
    }
}

/// Which evidence named a session's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServiceEvidence {
    /// No service known.
    #[default]
    None,
    /// The responder port is registered for the service (IANA).
    Port,
    /// The payload was recognised (later: content classification).
    Content,
}

impl ServiceEvidence {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceEvidence::None => "",
            ServiceEvidence::Port => "port",
            ServiceEvidence::Content => "content",
        }
    }
}

/// A finished session, as it is exported.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub uid: Uid,
    /// First packet's timestamp.
    pub start: Timestamp,
    /// Last packet's timestamp.
    pub last: Timestamp,
    pub orig: Endpoint,
    pub resp: Endpoint,
    pub proto: Proto,
    /// The IP protocol number (6, 17, 1, 58, ...).
    pub ip_proto: u8,
    pub orig_stats: DirectionStats,
    pub resp_stats: DirectionStats,
    pub conn_state: ConnState,
    pub history: History,
    /// Bytes the sequence numbers say were sent but never seen (gaps), both directions.
    pub missed_bytes: u64,
    /// Service name (`None` when unknown), filled by [`crate::classify`].
    pub service: Option<&'static str>,
    pub service_evidence: ServiceEvidence,
    pub end_reason: EndReason,
    /// How many IP layers enclosed this session's packets (0 = not tunnelled).
    pub tunnel_depth: u8,
    /// The session an ICMP error ties this one to: on an ICMP error session, the session whose
    /// packet the error quotes; on that quoted session, the first ICMP error about it.
    pub related_uid: Option<Uid>,
    /// What the session's bytes showed (service, server name, protocol details), when the
    /// content classifier recognised them.
    pub content: Option<Findings>,
    /// Evasion-relevant oddities seen in the session's packets.
    pub anomalies: Anomalies,
}

/// Oddities an evader uses (overlaps with other bytes, TTL changes, injected RSTs...), counted
/// per session for sessions.csv's `anomalies` column. Names are Zeek's weird.log names where
/// Zeek has one (`rexmit_inconsistency` is Zeek's event for the same thing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// TCP segments whose bytes differ from bytes held for the same sequence numbers.
    pub rexmit_inconsistency: u32,
    /// IP fragments overlapping bytes already received, with the same bytes.
    pub fragment_overlap: u32,
    /// IP fragments overlapping bytes already received, with other bytes.
    pub fragment_inconsistency: u32,
    /// Last fragments disagreeing with the datagram's other fragments about its length.
    pub fragment_size_inconsistency: u32,
    /// Fragments whose TTL (hop limit) differs from their datagram's first fragment's.
    pub fragment_ttl_change: u32,
    /// Packets whose TTL (hop limit) differs from the first packet of their direction.
    pub ttl_change: u32,
    /// TCP RSTs whose sequence number lies outside the window the receiver advertised.
    pub rst_out_of_window: u32,
    /// TCP data sent by an endpoint after its own RST.
    pub data_after_reset: u32,
    /// TCP SYNs (or SYN-ACKs) carrying data.
    pub syn_with_data: u32,
    /// Both sides sent a SYN without ACK.
    pub simultaneous_open: u32,
}

impl Anomalies {
    /// Every counter with its name, in column order.
    pub fn entries(&self) -> [(&'static str, u32); 10] {
        [
            ("rexmit_inconsistency", self.rexmit_inconsistency),
            ("fragment_overlap", self.fragment_overlap),
            ("fragment_inconsistency", self.fragment_inconsistency),
            (
                "fragment_size_inconsistency",
                self.fragment_size_inconsistency,
            ),
            ("fragment_ttl_change", self.fragment_ttl_change),
            ("ttl_change", self.ttl_change),
            ("rst_out_of_window", self.rst_out_of_window),
            ("data_after_reset", self.data_after_reset),
            ("SYN_with_data", self.syn_with_data),
            ("simultaneous_open", self.simultaneous_open),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.entries().iter().all(|&(_, n)| n == 0)
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Anomalies) {
        let pairs = [
            (&mut self.rexmit_inconsistency, other.rexmit_inconsistency),
            (&mut self.fragment_overlap, other.fragment_overlap),
            (
                &mut self.fragment_inconsistency,
                other.fragment_inconsistency,
            ),
            (
                &mut self.fragment_size_inconsistency,
                other.fragment_size_inconsistency,
            ),
            (&mut self.fragment_ttl_change, other.fragment_ttl_change),
            (&mut self.ttl_change, other.ttl_change),
            (&mut self.rst_out_of_window, other.rst_out_of_window),
            (&mut self.data_after_reset, other.data_after_reset),
            (&mut self.syn_with_data, other.syn_with_data),
            (&mut self.simultaneous_open, other.simultaneous_open),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }
}

/// The `anomalies` column: `name:count` pairs of the non-zero counters joined by `;`.
impl std::fmt::Display for Anomalies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, count) in self.entries() {
            if count > 0 {
                if !first {
                    f.write_str(";")?;
                }
                write!(f, "{name}:{count}")?;
                first = false;
            }
        }
        Ok(())
    }
}

impl SessionRecord {
    /// Seconds from first to last packet.
    pub fn duration_nanos(&self) -> u64 {
        self.last.nanos_since(self.start)
    }
}
