//! Packet representation: link layers, encapsulations, IP and transport headers.
//!
//! Owns turning a captured frame into borrowed [`IpPacket`] views (no copying, no allocation).
//! A frame can carry several IP layers (a tunnel's outer datagram and the packet inside it);
//! [`Decoder::decode`] reports each IP layer it finds, outermost first, to a visitor. IP
//! fragments (at any depth) go to a [`FragmentReassembler`]; a completed datagram is decoded
//! from the reassembler's copy as one packet, and its fragments are not visited. The free
//! [`decode`] is the stateless form (fragments visited as they are).
//! Promise: never panics on any bytes. Every frame that yields no IP layer, or whose inner
//! layers could not be decoded, is given a [`SkipReason`] that the summary counts; fragments
//! of datagrams that never complete are counted in [`FragmentStats`].

mod checksum;
mod fragments;
mod ip;
mod link;
mod shard;
#[cfg(test)]
mod tests;
mod tunnel;

pub use checksum::{ChecksumVerdict, verify_checksums};
use fragments::FragmentVerdict;
pub use fragments::{
    FragmentReassembler, FragmentStats, MAX_FRAGMENTS_PER_DATAGRAM, ReassemblyNotes,
};
pub use ip::{QuotedFlow, TcpFlags, Transport, icmp_counterpart, is_icmp_error, parse_quoted};
pub use shard::{PacketParts, ShardMap, shard_key};

use crate::capture::{LinkType, Timestamp};
use crate::config::FragmentConfig;
use ip::{IpLayer, IpVersion};
use std::net::IpAddr;
use tunnel::Encap;

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
    /// Set on the layers of a datagram rebuilt from IP fragments: what its fragments did.
    pub reassembly: Option<ReassemblyNotes>,
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

/// Decodes one frame statelessly, calling `visit` for each IP layer found, outermost first.
///
/// Returns `Err` when the frame (or an inner layer) could not be decoded; layers already
/// visited stay valid (a tunnel's outer datagram counts even when its inside is garbage).
/// The layers visited are those Zeek's conn.log keeps connections for: both the outer UDP
/// datagram and the inside of UDP tunnels, only the inside of GRE and IP-in-IP, nothing for
/// IGMP, ESP or IPv6 no-next-header (see `tunnel.rs`). Fragments are visited one by one, not
/// reassembled (a later fragment has [`Transport::Other`]); [`Decoder`] reassembles them.
pub fn decode<'a, F>(link: LinkType, frame: &'a [u8], visit: &mut F) -> Result<(), SkipReason>
where
    F: FnMut(&IpPacket<'a>),
{
    link::decode_link(link, frame, &mut Stateless(visit))
}

/// Receives what the layer walk finds: IP layers to visit, and fragments to keep or not.
trait Sink<'a> {
    fn packet(&mut self, packet: &IpPacket<'a>);
    /// `packet` (starting at the IP header `layer` parsed) is a fragment found at `enc`.
    /// Returns true when it was taken for reassembly: the walk then ends at this layer.
    fn fragment(&mut self, packet: &'a [u8], layer: &IpLayer<'a>, enc: Encap) -> bool;
}

struct Stateless<'f, F>(&'f mut F);

impl<'a, F: FnMut(&IpPacket<'a>)> Sink<'a> for Stateless<'_, F> {
    fn packet(&mut self, packet: &IpPacket<'a>) {
        (self.0)(packet)
    }

    fn fragment(&mut self, _: &'a [u8], _: &IpLayer<'a>, _: Encap) -> bool {
        false
    }
}

/// Frame decoding with IP fragment reassembly (the state lives across frames).
#[derive(Debug)]
pub struct Decoder {
    fragments: FragmentReassembler,
    held_fragment: bool,
}

impl Decoder {
    /// `verify_ip_checksums`: leave IPv4 fragments whose header checksum is wrong out of
    /// reassembly (they are visited as they are, for the session tracker to reject).
    pub fn new(config: FragmentConfig, verify_ip_checksums: bool) -> Self {
        Decoder {
            fragments: FragmentReassembler::new(config, verify_ip_checksums),
            held_fragment: false,
        }
    }

    /// Decodes one frame seen at `ts` (capture time drives the fragment timeout), calling
    /// `visit` for each IP layer found, outermost first, as [`decode`] does; a fragment is kept
    /// instead of visited, and the fragment that completes a datagram makes the whole datagram
    /// visited (with the frame's outer layers, if any, before it). The reassembled datagram's
    /// `IpPacket` borrows the decoder's copy, valid during the call to `visit` only.
    pub fn decode<F>(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        frame: &[u8],
        visit: &mut F,
    ) -> Result<(), SkipReason>
    where
        F: FnMut(&IpPacket<'_>),
    {
        let mut sink = Reassembling {
            visit,
            fragments: &mut self.fragments,
            ts,
            completed: None,
            held: false,
            notes: None,
        };
        let mut result = link::decode_link(link, frame, &mut sink);
        // A reassembled datagram may carry a tunnel whose inner packet is a fragment that
        // completes in turn; each round is one layer deeper.
        for _ in 0..=tunnel::MAX_DEPTH {
            let Some((datagram, enc, notes)) = sink.completed.take() else {
                break;
            };
            sink.notes = Some(notes);
            let inner = tunnel::ip_layer(&datagram, IpVersion::Any, enc, &mut sink);
            result = result.and(inner);
        }
        if sink.completed.is_some() {
            result = result.and(Err(SkipReason::TooManyEncapsulations));
        }
        self.held_fragment = sink.held;
        result
    }

    /// Whether the last frame decoded held an IP fragment taken for reassembly (such a frame
    /// may visit no layer, yet it was decoded).
    pub fn held_fragment(&self) -> bool {
        self.held_fragment
    }

    /// What reassembly did so far (datagrams still pending count as incomplete).
    pub fn fragment_stats(&self) -> FragmentStats {
        self.fragments.stats()
    }
}

struct Reassembling<'r, F> {
    visit: &'r mut F,
    fragments: &'r mut FragmentReassembler,
    ts: Timestamp,
    /// A datagram completed during the walk, and where it sits (a walk follows one chain of
    /// layers and ends at the first fragment, so there is at most one).
    completed: Option<(Vec<u8>, Encap, ReassemblyNotes)>,
    held: bool,
    /// The notes of the datagram being walked, given to the layers found in it.
    notes: Option<ReassemblyNotes>,
}

impl<'a, F: FnMut(&IpPacket<'_>)> Sink<'a> for Reassembling<'_, F> {
    fn packet(&mut self, packet: &IpPacket<'a>) {
        match self.notes {
            Some(notes) => (self.visit)(&IpPacket {
                reassembly: Some(notes),
                ..*packet
            }),
            None => (self.visit)(packet),
        }
    }

    fn fragment(&mut self, packet: &'a [u8], layer: &IpLayer<'a>, enc: Encap) -> bool {
        match self.fragments.add(self.ts, packet, layer) {
            FragmentVerdict::NotTaken => false,
            FragmentVerdict::Held => {
                self.held = true;
                true
            }
            FragmentVerdict::Complete(datagram, notes) => {
                self.held = true;
                self.completed = Some((datagram, enc, notes));
                true
            }
        }
    }
}
