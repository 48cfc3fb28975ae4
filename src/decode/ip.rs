//! IPv4, IPv6 (with extension headers) and the TCP, UDP and ICMP headers on top.
//!
//! Owns reading one IP header into an [`IpLayer`] (addresses, lengths, fragment state and the
//! transport bytes) and one transport header into a [`Transport`]. Lengths follow the IP
//! header, not the capture: a packet cut by the snaplen still decodes, with the captured bytes
//! as a prefix of what the header announces. Also reads the datagram an ICMP error quotes
//! ([`parse_quoted`]). No allocation, no panic on any bytes.

use super::{Fragment, SkipReason};
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::net::IpAddr;

/// TCP flag bits as they appear in the header's flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// The transport layer of an [`super::IpPacket`].
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        /// Payload length from the IP header's lengths (not cut by the snaplen).
        payload_len: u32,
        /// The payload bytes that were captured (a prefix of `payload_len` bytes).
        payload: &'a [u8],
        /// The snaplen cut the header's options: ports and flags are known, nothing else counts.
        header_cut: bool,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        /// Payload length from the IP header's lengths (not cut by the snaplen).
        payload_len: u32,
        payload: &'a [u8],
    },
    Icmp {
        /// true for ICMPv6.
        v6: bool,
        icmp_type: u8,
        code: u8,
        /// Bytes 4..8 of the ICMP header (identifier and sequence for echo).
        rest: [u8; 4],
        /// Payload length from the IP header's lengths (after the 8-byte ICMP header).
        payload_len: u32,
        /// For errors: the quoted original datagram (its IP header and first bytes).
        payload: &'a [u8],
    },
    /// A non-first fragment, or a protocol sessionscope does not look inside.
    Other { payload_len: u32 },
}

impl Transport<'_> {
    /// For an ICMP error (destination unreachable, packet too big, time exceeded, parameter
    /// problem), the flow of the datagram it quotes.
    pub fn icmp_error_quote(&self) -> Option<QuotedFlow> {
        match *self {
            Transport::Icmp {
                v6,
                icmp_type,
                payload,
                ..
            } if is_icmp_error(v6, icmp_type) => parse_quoted(payload),
            _ => None,
        }
    }
}

/// Whether an ICMP (`v6 == false`) or ICMPv6 type is an error that quotes a datagram.
pub fn is_icmp_error(v6: bool, icmp_type: u8) -> bool {
    if v6 {
        matches!(icmp_type, 1..=4)
    } else {
        matches!(icmp_type, 3 | 11 | 12)
    }
}

/// The flow an ICMP error quotes, as the quoted datagram's sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotedFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// 0 unless the quoted datagram is TCP or UDP and its ports were quoted.
    pub src_port: u16,
    pub dst_port: u16,
}

/// Which IP version a layer may hold (what the link layer or tunnel announced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IpVersion {
    Any,
    V4,
    V6,
}

/// One IP header read from a frame, before its transport header is looked at.
#[derive(Debug, Clone, Copy)]
pub(super) struct IpLayer<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol after any IPv6 extension headers.
    pub protocol: u8,
    pub ip_len: u32,
    pub ttl: u8,
    pub fragment: Option<Fragment>,
    /// Captured bytes after the IP header(s), cut at the end the IP header announces.
    pub l4: &'a [u8],
    /// Length of the bytes after the IP header(s) as the IP header announces it.
    pub l4_len: u32,
    /// The IPv4 header bytes (for its checksum); empty for IPv6.
    pub header: &'a [u8],
}

impl IpLayer<'_> {
    /// True when this layer holds the start of its transport payload (not a later fragment).
    pub fn has_transport_header(&self) -> bool {
        self.fragment.is_none_or(|f| f.offset == 0)
    }
}

const PROTO_HOP_BY_HOP: u8 = 0;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_ICMPV6: u8 = 58;
const PROTO_DEST_OPTS: u8 = 60;
/// More IPv6 extension headers than this is not a real packet.
const MAX_IPV6_EXT_HEADERS: usize = 16;

/// Reads the IP header at the start of `data`.
pub(super) fn parse_ip(data: &[u8], want: IpVersion) -> Result<IpLayer<'_>, SkipReason> {
    let first = *data.first().ok_or(SkipReason::TruncatedIpHeader)?;
    match (first >> 4, want) {
        (4, IpVersion::Any | IpVersion::V4) => parse_ipv4(data),
        (6, IpVersion::Any | IpVersion::V6) => parse_ipv6(data),
        _ => Err(SkipReason::BadIpVersion),
    }
}

fn parse_ipv4(data: &[u8]) -> Result<IpLayer<'_>, SkipReason> {
    if data.len() < 20 {
        return Err(SkipReason::TruncatedIpHeader);
    }
    let ihl_bytes = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
    if ihl_bytes < 20 {
        return Err(SkipReason::BadIpLength);
    }
    let header = Ipv4HeaderSlice::from_slice(data).map_err(|_| SkipReason::TruncatedIpHeader)?;
    let header_len = header.slice().len();
    let total_len = usize::from(header.total_len());
    // A zero total length comes from segmentation offload on the capturing host: the
    // captured bytes are all there is to go by.
    let total_len = if total_len == 0 {
        data.len()
    } else {
        total_len
    };
    if total_len < header_len {
        return Err(SkipReason::BadIpLength);
    }
    let end = total_len.min(data.len());
    let l4 = data.get(header_len..end).unwrap_or(&[]);
    let offset = u32::from(header.fragments_offset().value()) * 8;
    let more = header.more_fragments();
    let fragment = (offset != 0 || more).then_some(Fragment {
        offset,
        more,
        id: u32::from(header.identification()),
    });
    Ok(IpLayer {
        src: IpAddr::V4(header.source_addr()),
        dst: IpAddr::V4(header.destination_addr()),
        protocol: header.protocol().0,
        ip_len: total_len as u32,
        ttl: header.ttl(),
        fragment,
        l4,
        l4_len: (total_len - header_len) as u32,
        header: data.get(..header_len).unwrap_or(&[]),
    })
}

fn parse_ipv6(data: &[u8]) -> Result<IpLayer<'_>, SkipReason> {
    let header = Ipv6HeaderSlice::from_slice(data).map_err(|_| SkipReason::TruncatedIpHeader)?;
    let payload_len = usize::from(header.payload_length());
    let next = header.next_header().0;
    let after_header = data.get(40..).unwrap_or(&[]);
    // Payload length 0 with something following is offload (or a jumbogram): go by the capture.
    let declared = if payload_len == 0 && next != 59 {
        after_header.len()
    } else {
        payload_len
    };
    let rest = after_header.get(..declared).unwrap_or(after_header);
    let chain = walk_ipv6_extensions(next, rest, declared)?;
    Ok(IpLayer {
        src: IpAddr::V6(header.source_addr()),
        dst: IpAddr::V6(header.destination_addr()),
        protocol: chain.protocol,
        ip_len: 40 + payload_len as u32,
        ttl: header.hop_limit(),
        fragment: chain.fragment,
        l4: chain.rest,
        l4_len: chain.rest_len as u32,
        header: &[],
    })
}

struct Ipv6Chain<'a> {
    protocol: u8,
    fragment: Option<Fragment>,
    rest: &'a [u8],
    rest_len: usize,
}

/// Walks hop-by-hop, routing, destination options, AH and fragment headers. Stops at a
/// non-first fragment (what follows is not a header) and at anything else (ESP, no next
/// header, a transport protocol).
fn walk_ipv6_extensions(
    mut next: u8,
    mut rest: &[u8],
    mut rest_len: usize,
) -> Result<Ipv6Chain<'_>, SkipReason> {
    let mut fragment = None;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let (header_len, following) = match next {
            PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest)
                    .map_err(|_| SkipReason::TruncatedIpHeader)?;
                (ext.slice().len(), ext.next_header().0)
            }
            PROTO_AH => {
                let ext = IpAuthHeaderSlice::from_slice(rest)
                    .map_err(|_| SkipReason::TruncatedIpHeader)?;
                (ext.slice().len(), ext.next_header().0)
            }
            PROTO_FRAGMENT => {
                let ext = Ipv6FragmentHeaderSlice::from_slice(rest)
                    .map_err(|_| SkipReason::TruncatedIpHeader)?;
                let offset = u32::from(ext.fragment_offset().value()) * 8;
                let more = ext.more_fragments();
                if offset != 0 || more {
                    fragment = Some(Fragment {
                        offset,
                        more,
                        id: ext.identification(),
                    });
                }
                (ext.slice().len(), ext.next_header().0)
            }
            _ => break,
        };
        rest_len = rest_len
            .checked_sub(header_len)
            .ok_or(SkipReason::BadIpLength)?;
        rest = rest.get(header_len..).unwrap_or(&[]);
        next = following;
        if fragment.is_some_and(|f| f.offset != 0) {
            break;
        }
    }
    Ok(Ipv6Chain {
        protocol: next,
        fragment,
        rest,
        rest_len,
    })
}

/// A TCP header whose fixed 20 bytes were captured but whose options were cut by the snaplen.
fn tcp_with_cut_options(l4: &[u8], l4_len: u32) -> Result<Transport<'_>, SkipReason> {
    let fixed: &[u8; 20] = l4
        .get(..20)
        .and_then(|b| b.try_into().ok())
        .ok_or(SkipReason::TruncatedTransportHeader)?;
    let header_len = u32::from(fixed[12] >> 4) * 4;
    if header_len < 20 || header_len > l4_len {
        return Err(SkipReason::TruncatedTransportHeader);
    }
    let word = |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    Ok(Transport::Tcp {
        src_port: u16::from_be_bytes([fixed[0], fixed[1]]),
        dst_port: u16::from_be_bytes([fixed[2], fixed[3]]),
        seq: word(4),
        ack: word(8),
        flags: TcpFlags(fixed[13]),
        window: u16::from_be_bytes([fixed[14], fixed[15]]),
        payload_len: l4_len - header_len,
        payload: &[],
        header_cut: true,
    })
}

/// Reads the transport header of `layer` (TCP, UDP, ICMP; anything else, and later
/// fragments, become [`Transport::Other`]).
pub(super) fn parse_transport<'a>(layer: &IpLayer<'a>) -> Result<Transport<'a>, SkipReason> {
    let l4 = layer.l4;
    let l4_len = layer.l4_len;
    if !layer.has_transport_header() {
        return Ok(Transport::Other {
            payload_len: l4_len,
        });
    }
    match layer.protocol {
        PROTO_TCP => {
            let tcp = match TcpHeaderSlice::from_slice(l4) {
                Ok(tcp) => tcp,
                // The fixed header is there but the snaplen cut its options: Zeek still opens
                // the session (it needs only the ports) but counts nothing of the packet.
                Err(_) => return tcp_with_cut_options(l4, l4_len),
            };
            let header_len = tcp.slice().len();
            let payload_len = l4_len
                .checked_sub(header_len as u32)
                .ok_or(SkipReason::TruncatedTransportHeader)?;
            Ok(Transport::Tcp {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: TcpFlags(l4.get(13).copied().unwrap_or(0)),
                window: tcp.window_size(),
                payload_len,
                payload: l4.get(header_len..).unwrap_or(&[]),
                header_cut: false,
            })
        }
        PROTO_UDP => {
            let udp =
                UdpHeaderSlice::from_slice(l4).map_err(|_| SkipReason::TruncatedTransportHeader)?;
            let payload_len = l4_len
                .checked_sub(8)
                .ok_or(SkipReason::TruncatedTransportHeader)?;
            Ok(Transport::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload_len,
                payload: l4.get(8..).unwrap_or(&[]),
            })
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let header = l4.get(..8).ok_or(SkipReason::TruncatedTransportHeader)?;
            let payload_len = l4_len
                .checked_sub(8)
                .ok_or(SkipReason::TruncatedTransportHeader)?;
            let mut rest = [0u8; 4];
            rest.copy_from_slice(header.get(4..8).unwrap_or(&[0; 4]));
            Ok(Transport::Icmp {
                v6: layer.protocol == PROTO_ICMPV6,
                icmp_type: header.first().copied().unwrap_or(0),
                code: header.get(1).copied().unwrap_or(0),
                rest,
                payload_len,
                payload: l4.get(8..).unwrap_or(&[]),
            })
        }
        _ => Ok(Transport::Other {
            payload_len: l4_len,
        }),
    }
}

/// Reads the datagram an ICMP error quotes (its IP header and, for TCP and UDP, its ports).
/// Lenient about lengths: a quote is usually cut after the first 8 transport bytes.
pub fn parse_quoted(payload: &[u8]) -> Option<QuotedFlow> {
    let first = *payload.first()?;
    let (src, dst, protocol, transport, first_fragment) = match first >> 4 {
        4 => {
            let header = Ipv4HeaderSlice::from_slice(payload).ok()?;
            let offset = header.fragments_offset().value();
            (
                IpAddr::V4(header.source_addr()),
                IpAddr::V4(header.destination_addr()),
                header.protocol().0,
                payload.get(header.slice().len()..).unwrap_or(&[]),
                offset == 0,
            )
        }
        6 => {
            let header = Ipv6HeaderSlice::from_slice(payload).ok()?;
            let rest = payload.get(40..).unwrap_or(&[]);
            let (protocol, transport, first_fragment) =
                match walk_ipv6_extensions(header.next_header().0, rest, rest.len()) {
                    Ok(chain) => (
                        chain.protocol,
                        chain.rest,
                        chain.fragment.is_none_or(|f| f.offset == 0),
                    ),
                    // The quote ended inside an extension header: the flow is still known
                    // by its addresses, the protocol is not.
                    Err(_) => (header.next_header().0, &[][..], false),
                };
            (
                IpAddr::V6(header.source_addr()),
                IpAddr::V6(header.destination_addr()),
                protocol,
                transport,
                first_fragment,
            )
        }
        _ => return None,
    };
    let ports = transport.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok());
    let (src_port, dst_port) = match (protocol, ports) {
        (PROTO_TCP | PROTO_UDP, Some([s0, s1, d0, d1])) if first_fragment => {
            (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]))
        }
        _ => (0, 0),
    };
    Some(QuotedFlow {
        src,
        dst,
        protocol,
        src_port,
        dst_port,
    })
}

/// The type of the other half of an ICMP request/reply pair (echo request 8 -> reply 0), or
/// `None` for one-way messages such as errors. Zeek and the Community ID spec both pair ICMP
/// messages this way.
pub fn icmp_counterpart(v6: bool, icmp_type: u8) -> Option<u8> {
    if v6 {
        icmp6_counterpart(icmp_type)
    } else {
        icmp4_counterpart(icmp_type)
    }
}

/// ICMPv4 request/reply pairs (RFC 792, 950, 1256): echo, timestamp, information, router
/// discovery, address mask.
fn icmp4_counterpart(icmp_type: u8) -> Option<u8> {
    Some(match icmp_type {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// ICMPv6 request/reply pairs (RFC 4443, 4861, 2710, 4620, 6275): echo, router and neighbour
/// discovery, MLD query/report, node information, home agent address discovery.
fn icmp6_counterpart(icmp_type: u8) -> Option<u8> {
    Some(match icmp_type {
        128 => 129,
        129 => 128,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        130 => 131,
        131 => 130,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}
