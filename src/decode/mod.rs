//! Packet representation: link layers, encapsulations, IP and transport headers.
//!
//! Owns turning a captured frame into borrowed [`IpPacket`] views (no copying, no allocation).
//! A frame can carry several IP layers (a tunnel's outer datagram and the packet inside it);
//! [`decode`] reports each IP layer it finds, outermost first, to a visitor.
//! Promise: never panics on any bytes. Every frame that yields no IP layer, or whose inner
//! layers could not be decoded, is given a [`SkipReason`] that the summary counts.

mod checksum;
mod ip;
mod link;
#[cfg(test)]
mod tests;
mod tunnel;

pub use checksum::{ChecksumVerdict, verify_checksums};
pub use ip::{QuotedFlow, TcpFlags, Transport, is_icmp_error, parse_quoted};

use crate::capture::LinkType;
use std::net::IpAddr;

/// One IP packet (outer or inner) seen in a frame.
#[derive(Debug, Clone, Copy)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number after any IPv6 extension headers.
    pub protocol: u8,
    /// Length of the IP packet as its header states it (IPv4 total length; IPv6 40 + payload
    /// length), even when the snaplen cut the capture short. This is what Zeek counts as IP bytes.
    pub ip_len: u32,
    pub ttl: u8,
    /// Set when this is a fragment (offset != 0 or more-fragments set); transport fields are
    /// only present in the first fragment.
    pub fragment: Option<Fragment>,
    /// How many IP layers enclose this one (0 = not tunnelled).
    pub depth: u8,
    /// When this packet travels inside a tunnel, what kind it is.
    pub tunnel: Option<TunnelKind>,
    pub transport: Transport<'a>,
    /// The captured transport header and payload (for checksums).
    pub l4: &'a [u8],
    /// The transport length as the IP header announces it (`l4` is shorter when cut).
    pub l4_len: u32,
    /// The IPv4 header bytes; empty for IPv6.
    pub ip_header: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in bytes.
    pub offset: u32,
    pub more: bool,
    pub id: u32,
}

/// The encapsulation that carried an inner IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    IpInIp,
    Gre,
    Vxlan,
    Geneve,
    Teredo,
    Ayiya,
    Gtp,
}

/// Why a frame (or its inner part) could not be turned into an IP packet. Counted by the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The link type is not one sessionscope decodes.
    UnsupportedLinkType,
    /// The frame is shorter than its link-layer header.
    TruncatedLinkHeader,
    /// An ARP frame (not IP traffic).
    Arp,
    /// Another non-IP ethertype or protocol (LLDP, STP, IPX, 802.11 management...).
    NonIp,
    /// IP header shorter than its minimum, or cut by the snaplen.
    TruncatedIpHeader,
    /// IP version field is neither 4 nor 6, or does not match the link's claim.
    BadIpVersion,
    /// IPv4 header length or total length is inconsistent.
    BadIpLength,
    /// TCP/UDP/ICMP header cut short or with an impossible length.
    TruncatedTransportHeader,
    /// An encapsulation header (VLAN, MPLS, PPPoE, GRE, VXLAN...) is cut short or malformed.
    BadEncapsulation,
    /// Tunnels nested deeper than sessionscope follows.
    TooManyEncapsulations,
    /// An IP protocol that Zeek keeps no connection for (IGMP, ESP, IPv6 no-next-header,
    /// mobility header).
    NoSessionProtocol,
    /// A protected (WEP/WPA-encrypted) 802.11 data frame.
    ProtectedWifi,
    /// A later IP fragment of a tunnel (GRE, IP-in-IP, UDP tunnels): its inside cannot be
    /// followed without reassembly, which sessionscope does not do.
    FragmentedTunnel,
}

impl SkipReason {
    pub const ALL: [SkipReason; 13] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::TruncatedLinkHeader,
        SkipReason::Arp,
        SkipReason::NonIp,
        SkipReason::TruncatedIpHeader,
        SkipReason::BadIpVersion,
        SkipReason::BadIpLength,
        SkipReason::TruncatedTransportHeader,
        SkipReason::BadEncapsulation,
        SkipReason::TooManyEncapsulations,
        SkipReason::NoSessionProtocol,
        SkipReason::ProtectedWifi,
        SkipReason::FragmentedTunnel,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Short readable label for the summary.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported link type",
            SkipReason::TruncatedLinkHeader => "truncated link-layer header",
            SkipReason::Arp => "ARP (not IP)",
            SkipReason::NonIp => "other non-IP frame",
            SkipReason::TruncatedIpHeader => "truncated IP header",
            SkipReason::BadIpVersion => "bad IP version",
            SkipReason::BadIpLength => "bad IP length",
            SkipReason::TruncatedTransportHeader => "truncated TCP/UDP/ICMP header",
            SkipReason::BadEncapsulation => "malformed encapsulation header",
            SkipReason::TooManyEncapsulations => "too many nested tunnels",
            SkipReason::NoSessionProtocol => "IP protocol without sessions (IGMP, ESP...)",
            SkipReason::ProtectedWifi => "encrypted 802.11 frame",
            SkipReason::FragmentedTunnel => "tunnel in IP fragments (not reassembled)",
        }
    }
}

/// Decodes one frame, calling `visit` for each IP layer found, outermost first.
///
/// Returns `Err` when the frame (or an inner layer) could not be decoded; layers already
/// visited stay valid (a tunnel's outer datagram counts even when its inside is garbage).
/// The layers visited are those Zeek's conn.log keeps connections for: both the outer UDP
/// datagram and the inside of UDP tunnels, only the inside of GRE and IP-in-IP, nothing for
/// IGMP, ESP or IPv6 no-next-header (see `tunnel.rs`).
pub fn decode<'a, F>(link: LinkType, frame: &'a [u8], visit: &mut F) -> Result<(), SkipReason>
where
    F: FnMut(&IpPacket<'a>),
{
    link::decode_link(link, frame, visit)
}
