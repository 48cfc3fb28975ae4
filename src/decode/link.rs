//! Link layers: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD null/loopback, PPP, Cisco
//! HDLC, SLIP, ATM (RFC 1483), IP over InfiniBand, 802.11, and the capture-side headers of pf's
//! and netfilter's logs (pflog, NFLOG) and of PPI and Apple's PKTAP.
//!
//! Owns everything between the start of a frame and its IP header: the link header of each
//! supported link type, and the headers an ethertype can announce on the way to IP (802.1Q
//! and QinQ tags, MPLS, PPPoE, PBB, VN-tag, LLC/SNAP). Walks stacked headers in a bounded
//! loop; hands each IP header to [`super::tunnel::ip_layer`]. Never panics, never allocates.

use super::ip::IpVersion;
use super::tunnel::{Encap, ip_layer};
use super::{Sink, SkipReason};
use crate::capture::LinkType;

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_RARP: u16 = 0x8035;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_PBB: u16 = 0x88e7;
const ETHERTYPE_VNTAG: u16 = 0x8926;
const ETHERTYPE_CISCO_FABRICPATH: u16 = 0x8903;
pub(super) const ETHERTYPE_TRANSPARENT_BRIDGING: u16 = 0x6558;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS: u16 = 0x0281;
const PPP_MPLS_MULTICAST: u16 = 0x0283;

/// More stacked link-layer headers than this (VLAN tags, MPLS labels...) is not a real frame.
const MAX_LINK_HEADERS: usize = 32;
const ETHERNET_HEADER_LEN: usize = 14;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(bytes.try_into().ok()?))
}

fn le16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u32_bytes(data: &[u8]) -> Option<[u8; 4]> {
    data.get(..4)?.try_into().ok()
}

pub(super) fn decode_link<'a, V>(
    link: LinkType,
    frame: &'a [u8],
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let enc = Encap::OUTER;
    // pcap files may set FCS information in the upper bits of the link type field.
    match LinkType(link.0 & 0xffff) {
        LinkType::ETHERNET => ethernet(frame, enc, visit),
        LinkType::RAW_DLT12 | LinkType::RAW_DLT14 | LinkType::RAW => {
            ip_layer(frame, IpVersion::Any, enc, visit)
        }
        LinkType::IPV4 => ip_layer(frame, IpVersion::V4, enc, visit),
        LinkType::IPV6 => ip_layer(frame, IpVersion::V6, enc, visit),
        LinkType::NULL | LinkType::LOOP => null_loopback(frame, enc, visit),
        LinkType::PPP => ppp(frame, enc, visit),
        LinkType::PPP_HDLC => ppp_hdlc(frame, enc, visit),
        LinkType::PPP_ETHER => pppoe_session(frame, enc, visit),
        LinkType::LINUX_SLL => {
            let protocol = be16(frame, 14).ok_or(SkipReason::TruncatedLinkHeader)?;
            let payload = frame.get(16..).unwrap_or(&[]);
            sll_protocol(protocol, payload, enc, visit)
        }
        LinkType::LINUX_SLL2 => {
            let protocol = be16(frame, 0).ok_or(SkipReason::TruncatedLinkHeader)?;
            let payload = frame.get(20..).ok_or(SkipReason::TruncatedLinkHeader)?;
            sll_protocol(protocol, payload, enc, visit)
        }
        LinkType::IEEE802_11 => ieee802_11(frame, enc, visit),
        LinkType::SLIP => {
            let packet = frame
                .get(SLIP_HEADER_LEN..)
                .ok_or(SkipReason::TruncatedLinkHeader)?;
            ip_layer(packet, IpVersion::Any, enc, visit)
        }
        LinkType::ATM_RFC1483 => {
            let (ethertype, rest) = llc_snap(frame)?;
            ethertype_payload(ethertype, rest, enc, visit)
        }
        LinkType::C_HDLC => {
            let protocol = be16(frame, 2).ok_or(SkipReason::TruncatedLinkHeader)?;
            ethertype_payload(protocol, frame.get(4..).unwrap_or(&[]), enc, visit)
        }
        LinkType::IPOIB => {
            let protocol = be16(frame, IPOIB_TYPE_AT).ok_or(SkipReason::TruncatedLinkHeader)?;
            let payload = frame.get(IPOIB_TYPE_AT + 4..).unwrap_or(&[]);
            ethertype_payload(protocol, payload, enc, visit)
        }
        LinkType::PFLOG => pflog(frame, enc, visit),
        LinkType::NFLOG => nflog(frame, enc, visit),
        LinkType::PPI | LinkType::PKTAP => {
            let (inner, frame) = metadata_header(link, frame)?;
            // One level only: a metadata header inside another is not a real capture.
            if matches!(inner, LinkType::PPI | LinkType::PKTAP) {
                return Err(SkipReason::BadEncapsulation);
            }
            decode_link(inner, frame, visit)
        }
        LinkType::IEEE802_11_RADIOTAP => {
            let len = le16(frame, 2).ok_or(SkipReason::TruncatedLinkHeader)?;
            let wifi = frame
                .get(usize::from(len)..)
                .filter(|rest| !rest.is_empty() && len >= 8)
                .ok_or(SkipReason::TruncatedLinkHeader)?;
            ieee802_11(wifi, enc, visit)
        }
        _ => Err(SkipReason::UnsupportedLinkType),
    }
}

/// BSD/OS SLIP's header: direction, then 15 bytes of the compression state.
const SLIP_HEADER_LEN: usize = 16;
/// IP over InfiniBand: destination and source hardware addresses (20 bytes each), then the
/// ethertype and 2 reserved bytes.
const IPOIB_TYPE_AT: usize = 40;
/// NFLOG's TLV holding the packet (`NFULA_PAYLOAD`).
const NFULA_PAYLOAD: u16 = 9;

/// PPI's and PKTAP's headers (both little-endian): their length, and the link type of the
/// frame after them. Returns that link type and the frame.
fn metadata_header(link: LinkType, frame: &[u8]) -> Result<(LinkType, &[u8]), SkipReason> {
    let (len, inner) = if link == LinkType::PPI {
        // Version, flags, length (16 bits), link type (32 bits).
        (le16(frame, 2).map(u32::from), le32(frame, 4))
    } else {
        // Header length, then the next header's link type (a DLT).
        (le32(frame, 0), le32(frame, 4))
    };
    let (Some(len), Some(inner)) = (len, inner) else {
        return Err(SkipReason::TruncatedLinkHeader);
    };
    let rest = usize::try_from(len)
        .ok()
        .filter(|&len| len >= 8)
        .and_then(|len| frame.get(len..))
        .ok_or(SkipReason::TruncatedLinkHeader)?;
    // Masked as the outer link type is, so that the check for nesting sees what will be decoded.
    Ok((LinkType(inner & 0xffff), rest))
}

/// pf's log header: its own length in the first byte (padded to 4 bytes), the address family
/// in the second (whose value differs between the BSDs: the IP header's version is read
/// instead).
fn pflog<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let len = usize::from(*frame.first().ok_or(SkipReason::TruncatedLinkHeader)?);
    let padded = len.div_ceil(4) * 4;
    let packet = frame
        .get(padded..)
        .filter(|_| len >= 4)
        .ok_or(SkipReason::TruncatedLinkHeader)?;
    ip_layer(packet, IpVersion::Any, enc, visit)
}

/// NFLOG: a 4-byte header (address family, version, group), then TLVs padded to 4 bytes whose
/// length and type are in the capturing host's byte order: read as that order which gives the
/// first TLV a sane length and a small type. The packet is the `NFULA_PAYLOAD` TLV's value.
fn nflog<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let version = match frame.first() {
        Some(2) => IpVersion::V4,
        Some(10) => IpVersion::V6,
        Some(_) => IpVersion::Any,
        None => return Err(SkipReason::TruncatedLinkHeader),
    };
    let tlvs = frame.get(4..).ok_or(SkipReason::TruncatedLinkHeader)?;
    let field = |at: usize, little: bool| {
        if little {
            le16(tlvs, at)
        } else {
            be16(tlvs, at)
        }
    };
    let sane = |little: bool| {
        matches!((field(0, little), field(2, little)),
            (Some(len), Some(kind)) if usize::from(len) >= 4 && usize::from(len) <= tlvs.len() && kind < 0x100)
    };
    let little = if sane(true) {
        true
    } else if sane(false) {
        false
    } else {
        return Err(SkipReason::BadEncapsulation);
    };
    let mut at = 0usize;
    // Each TLV takes at least 4 bytes, so the walk ends within the frame.
    while let (Some(len), Some(kind)) = (field(at, little), field(at + 2, little)) {
        let len = usize::from(len);
        if len < 4 {
            return Err(SkipReason::BadEncapsulation);
        }
        let value = tlvs
            .get(at + 4..at + len)
            .ok_or(SkipReason::TruncatedLinkHeader)?;
        if kind == NFULA_PAYLOAD {
            return ip_layer(value, version, enc, visit);
        }
        at += len.div_ceil(4) * 4;
    }
    // No packet in this log message (a TLV list cut short, or none carried).
    Err(SkipReason::TruncatedLinkHeader)
}

/// Linux cooked capture: the protocol field is an ethertype, or 4 for raw 802.2 LLC frames.
fn sll_protocol<'a, V>(
    protocol: u16,
    payload: &'a [u8],
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    match protocol {
        0x0004 => {
            let (ethertype, rest) = llc_snap(payload)?;
            ethertype_payload(ethertype, rest, enc, visit)
        }
        p if p >= 0x0600 => ethertype_payload(p, payload, enc, visit),
        _ => Err(SkipReason::NonIp),
    }
}

/// BSD null (host byte order) and OpenBSD loop (network byte order) headers: a 4-byte
/// address family. Accepts either order for both, since captures move between machines.
fn null_loopback<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let family = u32_bytes(frame).ok_or(SkipReason::TruncatedLinkHeader)?;
    let payload = frame.get(4..).unwrap_or(&[]);
    let le = u32::from_le_bytes(family);
    let be = u32::from_be_bytes(family);
    let version = [le, be].into_iter().find_map(|f| match f {
        2 => Some(IpVersion::V4),
        // AF_INET6 on Linux, OpenBSD, FreeBSD, macOS.
        10 | 24 | 28 | 30 => Some(IpVersion::V6),
        _ => None,
    });
    match version {
        Some(version) => ip_layer(payload, version, enc, visit),
        None => Err(SkipReason::NonIp),
    }
}

/// PPP with or without the HDLC address/control bytes, with or without a compressed protocol.
fn ppp<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let body = match frame {
        [0xff, 0x03, rest @ ..] => rest,
        _ => frame,
    };
    let (protocol, payload) = ppp_protocol(body).ok_or(SkipReason::TruncatedLinkHeader)?;
    ppp_payload(protocol, payload, enc, visit)
}

/// Reads a PPP protocol field (1 byte when compressed: the first byte is odd).
fn ppp_protocol(body: &[u8]) -> Option<(u16, &[u8])> {
    match body {
        [first, rest @ ..] if first & 1 == 1 => Some((u16::from(*first), rest)),
        [hi, lo, rest @ ..] => Some((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => None,
    }
}

fn ppp_payload<'a, V>(
    protocol: u16,
    payload: &'a [u8],
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    match protocol {
        PPP_IPV4 => ip_layer(payload, IpVersion::Any, enc, visit),
        PPP_IPV6 => ip_layer(payload, IpVersion::Any, enc, visit),
        PPP_MPLS => ethertype_payload(ETHERTYPE_MPLS, payload, enc, visit),
        PPP_MPLS_MULTICAST => ethertype_payload(ETHERTYPE_MPLS_MULTICAST, payload, enc, visit),
        _ => Err(SkipReason::NonIp),
    }
}

/// PPP in HDLC-like framing (DLT 50). Cisco HDLC frames (address 0x0f/0x8f) carry an
/// ethertype instead of a PPP protocol.
fn ppp_hdlc<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let protocol = be16(frame, 2).ok_or(SkipReason::TruncatedLinkHeader)?;
    let payload = frame.get(4..).unwrap_or(&[]);
    match frame.first() {
        Some(0x0f | 0x8f) => ethertype_payload(protocol, payload, enc, visit),
        _ => ppp_payload(protocol, payload, enc, visit),
    }
}

/// A PPPoE session header (version/type, code, session id, length) and the PPP protocol.
fn pppoe_session<'a, V>(data: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let length = usize::from(be16(data, 4).ok_or(SkipReason::BadEncapsulation)?);
    let protocol = be16(data, 6).ok_or(SkipReason::BadEncapsulation)?;
    let rest = data.get(8..).unwrap_or(&[]);
    let payload = rest.get(..length.saturating_sub(2)).unwrap_or(rest);
    ppp_payload(protocol, payload, enc, visit)
}

/// An Ethernet II or 802.3 frame.
pub(super) fn ethernet<'a, V>(frame: &'a [u8], enc: Encap, visit: &mut V) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let (ethertype, payload) = ethernet_header(frame)?;
    ethertype_payload(ethertype, payload, enc, visit)
}

/// Reads an Ethernet header (and a Cisco FabricPath header before it, and the LLC/SNAP
/// header of an 802.3 frame after it); returns the ethertype and what follows.
fn ethernet_header(frame: &[u8]) -> Result<(u16, &[u8]), SkipReason> {
    let mut frame = frame;
    if be16(frame, 12) == Some(ETHERTYPE_CISCO_FABRICPATH) {
        frame = frame.get(16..).unwrap_or(&[]);
    }
    let type_or_len = be16(frame, 12).ok_or(SkipReason::TruncatedLinkHeader)?;
    let payload = frame.get(ETHERNET_HEADER_LEN..).unwrap_or(&[]);
    type_or_length(type_or_len, payload)
}

/// The 2 bytes after MAC addresses or a VLAN tag: an ethertype (>= 0x0600), or the length of
/// an 802.3 frame whose payload starts with an LLC header.
fn type_or_length(type_or_len: u16, payload: &[u8]) -> Result<(u16, &[u8]), SkipReason> {
    if type_or_len >= 0x0600 {
        return Ok((type_or_len, payload));
    }
    if type_or_len > 1500 {
        return Err(SkipReason::NonIp);
    }
    // The length field also cuts off the padding of short frames.
    let llc = payload.get(..usize::from(type_or_len)).unwrap_or(payload);
    llc_snap(llc)
}

/// An 802.2 LLC header: only SNAP with the Ethernet OUI (0) carries an ethertype to follow.
fn llc_snap(llc: &[u8]) -> Result<(u16, &[u8]), SkipReason> {
    match llc {
        [0xaa, 0xaa, 0x03, 0, 0, 0, hi, lo, rest @ ..] => {
            Ok((u16::from_be_bytes([*hi, *lo]), rest))
        }
        [0xaa, 0xaa, ..] if llc.len() < 8 => Err(SkipReason::TruncatedLinkHeader),
        _ => Err(SkipReason::NonIp),
    }
}

/// Follows an ethertype through stacked tags and labels to an IP header.
pub(super) fn ethertype_payload<'a, V>(
    ethertype: u16,
    payload: &'a [u8],
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let mut ethertype = ethertype;
    let mut data = payload;
    for _ in 0..MAX_LINK_HEADERS {
        match ethertype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return ip_layer(data, IpVersion::Any, enc, visit),
            ETHERTYPE_ARP | ETHERTYPE_RARP => return Err(SkipReason::Arp),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let inner = be16(data, 2).ok_or(SkipReason::BadEncapsulation)?;
                (ethertype, data) = type_or_length(inner, data.get(4..).unwrap_or(&[]))?;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                let after = mpls_labels(data)?;
                match after.first().map(|b| b >> 4) {
                    Some(4 | 6) => return ip_layer(after, IpVersion::Any, enc, visit),
                    // A pseudowire control word (first nibble 0) before an Ethernet frame.
                    Some(0) if after.len() > 4 + ETHERNET_HEADER_LEN => {
                        (ethertype, data) = ethernet_header(after.get(4..).unwrap_or(&[]))?;
                    }
                    Some(_) => return Err(SkipReason::NonIp),
                    None => return Err(SkipReason::BadEncapsulation),
                }
            }
            ETHERTYPE_PPPOE_SESSION => return pppoe_session(data, enc, visit),
            ETHERTYPE_PBB => {
                // The 4-byte I-tag, then the customer's Ethernet header.
                if data.len() <= 18 {
                    return Err(SkipReason::BadEncapsulation);
                }
                (ethertype, data) = ethernet_header(data.get(4..).unwrap_or(&[]))?;
            }
            ETHERTYPE_VNTAG => {
                let inner = be16(data, 4).ok_or(SkipReason::BadEncapsulation)?;
                (ethertype, data) = type_or_length(inner, data.get(6..).unwrap_or(&[]))?;
            }
            ETHERTYPE_TRANSPARENT_BRIDGING => {
                (ethertype, data) = ethernet_header(data)?;
            }
            _ => return Err(SkipReason::NonIp),
        }
    }
    Err(SkipReason::TooManyEncapsulations)
}

/// Skips MPLS label stack entries up to and including the bottom-of-stack one.
fn mpls_labels(data: &[u8]) -> Result<&[u8], SkipReason> {
    let mut data = data;
    for _ in 0..MAX_LINK_HEADERS {
        let entry = u32_bytes(data).ok_or(SkipReason::BadEncapsulation)?;
        data = data.get(4..).unwrap_or(&[]);
        if entry[2] & 0x01 != 0 {
            return Ok(data);
        }
    }
    Err(SkipReason::TooManyEncapsulations)
}

/// An 802.11 frame: data frames (plain and QoS, A-MSDU aggregates) carry LLC/SNAP and an
/// ethertype; management, control and null-data frames carry no IP.
pub(super) fn ieee802_11<'a, V>(
    frame: &'a [u8],
    enc: Encap,
    visit: &mut V,
) -> Result<(), SkipReason>
where
    V: Sink<'a>,
{
    let (fc0, fc1) = match frame {
        [fc0, fc1, ..] => (*fc0, *fc1),
        _ => return Err(SkipReason::TruncatedLinkHeader),
    };
    let frame_type = (fc0 >> 2) & 0x03;
    let subtype = fc0 >> 4;
    // Type 2 is data; subtypes with bit 2 set (null, QoS null...) have no body.
    if frame_type != 2 || subtype & 0x04 != 0 {
        return Err(SkipReason::NonIp);
    }
    let mut header_len = 24;
    if fc1 & 0x03 == 0x03 {
        header_len += 6; // a fourth address (to and from the distribution system)
    }
    let mut amsdu = false;
    if subtype & 0x08 != 0 {
        let qos = *frame
            .get(header_len)
            .ok_or(SkipReason::TruncatedLinkHeader)?;
        amsdu = qos & 0x80 != 0;
        header_len += 2;
        if fc1 & 0x80 != 0 {
            header_len += 4; // HT control field
        }
    }
    if fc1 & 0x40 != 0 {
        return Err(SkipReason::ProtectedWifi);
    }
    let body = frame
        .get(header_len..)
        .filter(|b| !b.is_empty())
        .ok_or(SkipReason::TruncatedLinkHeader)?;
    if !amsdu {
        let (ethertype, payload) = llc_snap(body)?;
        return ethertype_payload(ethertype, payload, enc, visit);
    }
    // A-MSDU: subframes of destination, source, length and an LLC/SNAP payload, each but
    // the last padded to a multiple of 4 bytes.
    let mut rest = body;
    while !rest.is_empty() {
        let len = usize::from(be16(rest, 12).ok_or(SkipReason::BadEncapsulation)?);
        let end = ETHERNET_HEADER_LEN + len;
        let subframe = rest
            .get(ETHERNET_HEADER_LEN..end)
            .ok_or(SkipReason::BadEncapsulation)?;
        let (ethertype, payload) = llc_snap(subframe)?;
        ethertype_payload(ethertype, payload, enc, visit)?;
        let padded = end + (4 - end % 4) % 4;
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Ok(())
}
