//! Encapsulations inside IP: GRE (with ERSPAN, PPTP, Aruba), VXLAN, Geneve, Teredo, AYIYA,
//! GTP-U, IP-in-IP.
//!
//! Owns deciding, for each IP header, whether it is visited as a session and whether a tunnel
//! inside it is followed, the way Zeek's conn.log sees it: a UDP tunnel's outer datagram is a
//! session of its own and so is the packet inside; GRE and IP-in-IP datagrams are not, only
//! what they carry. A UDP tunnel is recognised by a well-known port (Zeek uses the responder's
//! port), Teredo and AYIYA also by their payload, and each tunnel's header
//! must be valid (and the inner length consistent) before the inside is followed. Nesting is
//! capped at [`MAX_DEPTH`] IP layers. No allocation; recursion is bounded by the cap.

use super::ip::{self, IpLayer, IpVersion};
use super::link::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TRANSPARENT_BRIDGING, ethernet, ethertype_payload,
    ieee802_11,
};
use super::{IpPacket, Sink, SkipReason, Transport, TunnelKind};

/// The deepest IP layer followed (0 is the outermost).
pub(super) const MAX_DEPTH: u8 = 8;

const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;

const PORT_VXLAN: u16 = 4789;
const PORT_GENEVE: u16 = 6081;
const PORT_TEREDO: u16 = 3544;
const PORT_AYIYA: u16 = 5072;
const PORT_GTP_U: u16 = 2152;
const PORT_GTP_C: u16 = 2123;
const PORT_GRE_IN_UDP: u16 = 4754;

/// Where an IP layer sits: how many IP layers enclose it and the tunnel that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Encap {
    pub depth: u8,
    pub tunnel: Option<TunnelKind>,
}

impl Encap {
    pub const OUTER: Encap = Encap {
        depth: 0,
        tunnel: None,
    };

    /// The position of a packet carried by `kind` inside the IP layer at `self`.
    fn inner(self, kind: TunnelKind) -> Result<Encap, SkipReason> {
        if self.depth >= MAX_DEPTH {
            return Err(SkipReason::TooManyEncapsulations);
        }
        Ok(Encap {
            depth: self.depth + 1,
            tunnel: Some(kind),
        })
    }
}

/// Decodes the IP header at the start of `data`, visits it if Zeek would count it as a
/// connection, and follows any tunnel inside it.
pub(super) fn ip_layer<'a, V>(
    data: &'a [u8],
    want: IpVersion,
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let layer = ip::parse_ip(data, want)?;
    // A fragment taken for reassembly is decoded once its datagram is complete.
    if layer.fragment.is_some() && visit.fragment(data, &layer, enc) {
        return Ok(());
    }
    match layer.protocol {
        // Fragments not reassembled (stateless decoding, or cut by the snaplen): a first
        // fragment is followed like a packet cut by the snaplen; later ones cannot be.
        PROTO_IPIP | PROTO_IPV6 | PROTO_GRE if !layer.has_transport_header() => {
            Err(SkipReason::FragmentedTunnel)
        }
        PROTO_IPIP => ip_layer(
            layer.l4,
            IpVersion::Any,
            enc.inner(TunnelKind::IpInIp)?,
            visit,
        ),
        PROTO_IPV6 => ip_layer(
            layer.l4,
            IpVersion::Any,
            enc.inner(TunnelKind::IpInIp)?,
            visit,
        ),
        PROTO_GRE => gre(layer.l4, enc.inner(TunnelKind::Gre)?, visit),
        // IGMP, ESP, no next header, mobility: Zeek keeps no connection for these.
        2 | 50 | 59 | 135 => Err(SkipReason::NoSessionProtocol),
        _ => {
            let transport = ip::parse_transport(&layer)?;
            visit.packet(&packet(&layer, enc, transport));
            match transport {
                Transport::Udp {
                    src_port,
                    dst_port,
                    payload_len,
                    payload,
                } => udp_tunnel(&layer, src_port, dst_port, payload, payload_len, enc, visit),
                _ => Ok(()),
            }
        }
    }
}

fn packet<'a>(layer: &IpLayer<'a>, enc: Encap, transport: Transport<'a>) -> IpPacket<'a> {
    IpPacket {
        src: layer.src,
        dst: layer.dst,
        protocol: layer.protocol,
        ip_len: layer.ip_len,
        ttl: layer.ttl,
        fragment: layer.fragment,
        depth: enc.depth,
        tunnel: enc.tunnel,
        transport,
        l4: layer.l4,
        l4_len: layer.l4_len,
        ip_header: layer.header,
        reassembly: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UdpTunnel {
    Vxlan,
    Geneve,
    Teredo,
    Ayiya,
    Gtp,
    Gre,
}

fn tunnel_for_port(port: u16) -> Option<UdpTunnel> {
    match port {
        PORT_VXLAN => Some(UdpTunnel::Vxlan),
        PORT_GENEVE => Some(UdpTunnel::Geneve),
        PORT_TEREDO => Some(UdpTunnel::Teredo),
        PORT_AYIYA => Some(UdpTunnel::Ayiya),
        PORT_GTP_U | PORT_GTP_C => Some(UdpTunnel::Gtp),
        PORT_GRE_IN_UDP => Some(UdpTunnel::Gre),
        _ => None,
    }
}

/// Follows a tunnel inside a UDP datagram. `payload` is what was captured of the UDP
/// payload, `declared` its length per the IP header.
fn udp_tunnel<'a, V>(
    layer: &IpLayer<'a>,
    src_port: u16,
    dst_port: u16,
    payload: &'a [u8],
    declared: u32,
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    // Zeek looks at the responder's port. Statelessly: the destination port, or the source
    // port of a reply, i.e. unless the destination looks like a service (a port below 1024).
    let by_port = tunnel_for_port(dst_port)
        .or_else(|| tunnel_for_port(src_port).filter(|_| dst_port >= 1024));
    let kind = match by_port {
        Some(kind) => kind,
        None if looks_like_ayiya(payload) => UdpTunnel::Ayiya,
        None if looks_like_teredo(payload) => UdpTunnel::Teredo,
        None => return Ok(()),
    };
    // In the first fragment of a datagram, the UDP length field tells how long the whole
    // payload is; the tunnel is followed as far as this fragment goes (as with a snaplen).
    let declared = match layer.fragment {
        Some(_) => match layer.l4 {
            [_, _, _, _, hi, lo, ..] => u32::from(u16::from_be_bytes([*hi, *lo])).saturating_sub(8),
            _ => return Err(SkipReason::FragmentedTunnel),
        },
        None => declared,
    };
    match kind {
        UdpTunnel::Vxlan => vxlan(payload, enc, visit),
        UdpTunnel::Geneve => geneve(payload, enc, visit),
        UdpTunnel::Teredo => teredo(payload, declared, enc, visit),
        UdpTunnel::Ayiya => ayiya(payload, enc, visit),
        UdpTunnel::Gtp => gtp(payload, declared, enc, visit),
        UdpTunnel::Gre => gre(payload, enc.inner(TunnelKind::Gre)?, visit),
    }
}

/// VXLAN: 8-byte header with the I flag (a valid VNI), then an Ethernet frame.
fn vxlan<'a, V>(payload: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let flags = *payload.first().ok_or(SkipReason::BadEncapsulation)?;
    if payload.len() < 8 {
        return Err(SkipReason::BadEncapsulation);
    }
    if flags & 0x08 == 0 {
        return Ok(()); // not VXLAN after all: the datagram stays a plain UDP session
    }
    match payload.get(8..) {
        Some(frame) if !frame.is_empty() => ethernet(frame, enc.inner(TunnelKind::Vxlan)?, visit),
        _ => Ok(()),
    }
}

/// Geneve: 8-byte header plus options, then what its protocol type names.
fn geneve<'a, V>(payload: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let (first, protocol) = match payload {
        [first, _, hi, lo, _, _, _, _, ..] => (*first, u16::from_be_bytes([*hi, *lo])),
        _ => return Err(SkipReason::BadEncapsulation),
    };
    if first >> 6 != 0 {
        return Ok(()); // unknown version
    }
    let header_len = 8 + usize::from(first & 0x3f) * 4;
    let inner = payload
        .get(header_len..)
        .ok_or(SkipReason::BadEncapsulation)?;
    if inner.is_empty() {
        return Ok(());
    }
    let enc = enc.inner(TunnelKind::Geneve)?;
    match protocol {
        ETHERTYPE_TRANSPARENT_BRIDGING => ethernet(inner, enc, visit),
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip_layer(inner, IpVersion::Any, enc, visit),
        other => ethertype_payload(other, inner, enc, visit),
    }
}

/// Zeek's content check for Teredo on ports other than 3544: an IPv6 header whose source or
/// destination is in 2001:0::/32, or origin indication/authentication headers before one.
fn looks_like_teredo(payload: &[u8]) -> bool {
    const TEREDO_PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];
    let (b0, b1) = match payload {
        [b0, b1, ..] if payload.len() >= 40 => (*b0, *b1),
        _ => return false,
    };
    if b0 >> 4 == 6 {
        if payload.get(8..12) == Some(&TEREDO_PREFIX[..])
            || payload.get(24..28) == Some(&TEREDO_PREFIX[..])
        {
            return true;
        }
    } else if b0 != 0 || b1 > 1 {
        return false;
    }
    let mut rest = payload;
    if b1 == 1 {
        let (id_len, auth_len) = match rest {
            [_, _, id, au, ..] => (usize::from(*id), usize::from(*au)),
            _ => return false,
        };
        rest = match rest.get(13 + id_len + auth_len..) {
            Some(r) if r.len() >= 40 => r,
            _ => return false,
        };
        if rest.get(..2) != Some(&[0, 0][..]) {
            return false;
        }
    } else if b1 != 0 {
        return false;
    }
    matches!(rest.get(8..), Some(r) if r.len() >= 40 && r.first().is_some_and(|b| b >> 4 == 6))
}

/// Teredo: optional authentication and origin indication headers, then IPv6 whose length
/// must fill the datagram (bubbles, with no next header, may be followed by padding).
fn teredo<'a, V>(
    payload: &'a [u8],
    declared: u32,
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let mut offset = 0usize;
    let mut seen_origin = false;
    let mut seen_auth = false;
    loop {
        let Some(tag) = payload
            .get(offset..offset + 2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
        else {
            return Ok(());
        };
        if tag == 0 {
            if seen_origin {
                return Ok(());
            }
            seen_origin = true;
            offset += 8;
        } else if tag == 1 {
            if seen_origin || seen_auth {
                return Ok(());
            }
            let (Some(&id_len), Some(&auth_len)) =
                (payload.get(offset + 2), payload.get(offset + 3))
            else {
                return Ok(());
            };
            seen_auth = true;
            offset += 13 + usize::from(id_len) + usize::from(auth_len);
        } else if tag >> 12 == 6 {
            break;
        } else {
            return Ok(());
        }
    }
    let Some(inner) = payload.get(offset..).filter(|i| i.len() >= 40) else {
        return Ok(());
    };
    let inner_declared = declared.saturating_sub(offset as u32);
    let (payload_len, next_header) = match inner {
        [_, _, _, _, hi, lo, nh, ..] => (u32::from(u16::from_be_bytes([*hi, *lo])), *nh),
        _ => return Ok(()),
    };
    let bubble = payload_len == 0 && next_header == 59;
    if bubble {
        // A bubble opens the NAT mapping; Zeek keeps no connection for the IPv6 inside.
        return Ok(());
    }
    if 40 + payload_len != inner_declared {
        return Ok(()); // not Teredo after all
    }
    ip_layer(inner, IpVersion::V6, enc.inner(TunnelKind::Teredo)?, visit)
}

fn looks_like_ayiya(payload: &[u8]) -> bool {
    matches!(payload, [_, 0x52, 0x11, ..])
}

/// AYIYA: identity and signature of announced sizes, then (for op code 1, forward) an IP
/// packet of the protocol in the next-header field.
fn ayiya<'a, V>(payload: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let (b0, b1, b2, next_header) = match payload {
        [b0, b1, b2, b3, _, _, _, _, ..] => (*b0, *b1, *b2, *b3),
        _ => return Err(SkipReason::BadEncapsulation),
    };
    let identity_len = 1usize << (b0 >> 4);
    let signature_len = usize::from(b1 >> 4) * 4;
    let inner = payload
        .get(8 + identity_len + signature_len..)
        .ok_or(SkipReason::BadEncapsulation)?;
    if b2 & 0x0f != 1 || inner.is_empty() {
        return Ok(());
    }
    let want = match next_header {
        PROTO_IPIP => IpVersion::V4,
        PROTO_IPV6 => IpVersion::V6,
        _ => return Ok(()),
    };
    ip_layer(inner, want, enc.inner(TunnelKind::Ayiya)?, visit)
}

/// GTP-U version 1: only G-PDU messages (type 0xff) carry a user packet, after the optional
/// sequence/N-PDU/next-extension word and any extension headers. The packet must fill the
/// datagram exactly. GTP is never followed inside GTP.
fn gtp<'a, V>(payload: &'a [u8], declared: u32, enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    const MAX_EXTENSION_HEADERS: usize = 16;
    if enc.tunnel == Some(TunnelKind::Gtp) {
        return Ok(());
    }
    let (flags, message_type) = match payload {
        [flags, message_type, _, _, _, _, _, _, ..] => (*flags, *message_type),
        _ => return Ok(()),
    };
    let version = flags >> 5;
    let protocol_type_gtp = flags & 0x10 != 0;
    if version != 1 || !protocol_type_gtp || message_type != 0xff {
        return Ok(());
    }
    let mut header_len = 8usize;
    if flags & 0x07 != 0 {
        header_len = 12;
        if flags & 0x04 != 0 {
            // Extension headers: a length in 4-byte units, contents, next type (0 ends).
            let mut done = false;
            for _ in 0..MAX_EXTENSION_HEADERS {
                let Some(&units) = payload.get(header_len) else {
                    return Ok(());
                };
                if units == 0 {
                    return Ok(());
                }
                header_len += usize::from(units) * 4;
                let Some(&next_type) = payload.get(header_len - 1) else {
                    return Ok(());
                };
                if next_type == 0 {
                    done = true;
                    break;
                }
            }
            if !done {
                return Ok(());
            }
        }
    }
    let Some(inner) = payload.get(header_len..).filter(|i| i.len() >= 20) else {
        return Ok(());
    };
    let inner_declared = declared.saturating_sub(header_len as u32);
    let total = match inner {
        [b0, _, hi, lo, ..] if b0 >> 4 == 4 => u32::from(u16::from_be_bytes([*hi, *lo])),
        [b0, _, _, _, hi, lo, ..] if b0 >> 4 == 6 && inner.len() >= 40 => {
            40 + u32::from(u16::from_be_bytes([*hi, *lo]))
        }
        _ => return Ok(()),
    };
    if total != inner_declared {
        return Ok(());
    }
    ip_layer(inner, IpVersion::Any, enc.inner(TunnelKind::Gtp)?, visit)
}

/// GRE version 0 (IP, transparent Ethernet bridging, ERSPAN I/II/III, Aruba 802.11, other
/// ethertypes) and version 1 (PPTP's enhanced GRE with PPP inside). `enc` is already the
/// position of the carried packet.
fn gre<'a, V>(data: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let (flags, protocol) = match data {
        [f0, f1, p0, p1, ..] => (
            u16::from_be_bytes([*f0, *f1]),
            u16::from_be_bytes([*p0, *p1]),
        ),
        _ => return Err(SkipReason::BadEncapsulation),
    };
    let version = flags & 0x0007;
    // Versions other than 0 and 1, source routing and unknown flags: not decodable.
    if version > 1 || flags & 0x4000 != 0 || flags & 0x0078 != 0 {
        return Err(SkipReason::BadEncapsulation);
    }
    let has_sequence = flags & 0x1000 != 0;
    let optional_words = [0x8000u16, 0x2000, 0x1000, 0x0080]
        .iter()
        .filter(|bit| flags & **bit != 0)
        .count();
    let body = data
        .get(4 + 4 * optional_words..)
        .ok_or(SkipReason::BadEncapsulation)?;
    if version == 1 {
        if protocol != 0x880b {
            return Err(SkipReason::BadEncapsulation);
        }
        if body.is_empty() {
            return Err(SkipReason::NonIp); // an acknowledgement without payload
        }
        let ppp = match body {
            [0xff, 0x03, rest @ ..] => rest,
            _ => body,
        };
        return match ppp {
            [0x21, rest @ ..] | [0x00, 0x21, rest @ ..] => {
                ip_layer(rest, IpVersion::V4, enc, visit)
            }
            [0x57, rest @ ..] | [0x00, 0x57, rest @ ..] => {
                ip_layer(rest, IpVersion::V6, enc, visit)
            }
            _ => Err(SkipReason::NonIp),
        };
    }
    match protocol {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip_layer(body, IpVersion::Any, enc, visit),
        ETHERTYPE_TRANSPARENT_BRIDGING => ethernet(body, enc, visit),
        // ERSPAN type II (8-byte header, announced by the sequence bit) or type I (none).
        0x88be => {
            let skip = if has_sequence { 8 } else { 0 };
            ethernet(
                body.get(skip..).ok_or(SkipReason::BadEncapsulation)?,
                enc,
                visit,
            )
        }
        // ERSPAN type III: 12-byte header, plus an 8-byte platform subheader when O is set.
        0x22eb => {
            let optional = body.get(11).ok_or(SkipReason::BadEncapsulation)? & 0x01 != 0;
            let skip = if optional { 20 } else { 12 };
            ethernet(
                body.get(skip..).ok_or(SkipReason::BadEncapsulation)?,
                enc,
                visit,
            )
        }
        // Aruba's access points tunnel 802.11 frames under these protocol numbers.
        0x8200..=0x8370 | 0x9000 if protocol & 0x000f == 0 => ieee802_11(body, enc, visit),
        other => ethertype_payload(other, body, enc, visit),
    }
}
