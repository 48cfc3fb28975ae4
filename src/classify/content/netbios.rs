//! NetBIOS over TCP/IP beside the name service (which `dns.rs` reads): the datagram service
//! (UDP 138, RFC 1002 section 4.4) and the session service (TCP 139, section 4.3), including
//! SMB carried in session messages (also on 445, where Zeek and IANA call it `smb`).
//! Records the datagram's source name or the session request's called name. Hand-written: the
//! headers are a few fixed fields. Only tried when a NetBIOS port is on either side, except
//! SMB, whose 4-byte magic is found on any port. Promise: no panic on any bytes.

use super::{ContentInfo, Detect, Ports, Progress, Protocol, TEXT_CAP, text};

const DATAGRAM_PORT: u16 = 138;
const SESSION_PORT: u16 = 139;
/// Length byte of an encoded NetBIOS name (32 letters).
const ENCODED_NAME_LEN: u8 = 32;

/// Decodes an RFC 1002 first-level encoded name (32 letters `A`-`P`) starting at its length
/// byte: the name without padding, then the service suffix as `<xx>`.
pub(super) fn decode_name(at: &[u8]) -> Option<String> {
    if at.first() != Some(&ENCODED_NAME_LEN) {
        return None;
    }
    let encoded = at.get(1..33)?;
    let mut name = Vec::with_capacity(16);
    for pair in encoded.chunks_exact(2) {
        let (hi, lo) = (
            pair.first()?.wrapping_sub(b'A'),
            pair.get(1)?.wrapping_sub(b'A'),
        );
        if hi > 15 || lo > 15 {
            return None;
        }
        name.push(hi << 4 | lo);
    }
    let suffix = name.pop()?;
    // Padding is spaces (NULs for the `*` wildcard of node status queries).
    let end = name
        .iter()
        .rposition(|b| *b != b' ' && *b != 0)
        .map_or(0, |i| i + 1);
    let mut out = text(name.get(..end).unwrap_or_default(), TEXT_CAP);
    out.push_str(&format!("<{suffix:02x}>"));
    Some(out)
}

/// Datagram service: message types 0x10-0x16; data messages carry the source name at 14.
pub(super) fn detect_datagram(payload: &[u8], ports: Ports) -> bool {
    if !ports.either(DATAGRAM_PORT) {
        return false;
    }
    match payload.first() {
        Some(0x10..=0x12) => decode_name(payload.get(14..).unwrap_or_default()).is_some(),
        Some(0x13..=0x16) => payload.len() >= 10,
        _ => false,
    }
}

pub(super) fn parse_datagram(payload: &[u8], info: &mut ContentInfo) {
    if matches!(payload.first(), Some(0x10..=0x12)) {
        info.more.get_mut().netbios_name = decode_name(payload.get(14..).unwrap_or_default());
    }
}

/// Session service: a session request (0x81) with an encoded called name on a NetBIOS port,
/// or a session message (0x00) holding SMB (`\xffSMB` or `\xfeSMB`) on any port.
pub(super) fn detect_stream(view: &[u8], _from_orig: bool, ports: Ports) -> Detect {
    match view.first() {
        None => Detect::NeedMore,
        Some(0x81) if ports.either(SESSION_PORT) => match view.get(4) {
            None => Detect::NeedMore,
            Some(&ENCODED_NAME_LEN) => Detect::Yes(Protocol::NetbiosSsn),
            Some(_) => Detect::No,
        },
        Some(0x00) => match view.get(4..8) {
            None if view.len() < 8 && view.get(1).is_none_or(|f| *f <= 1) => Detect::NeedMore,
            Some([0xff | 0xfe, b'S', b'M', b'B']) => Detect::Yes(Protocol::Smb),
            _ => Detect::No,
        },
        Some(_) => Detect::No,
    }
}

pub(super) fn parse_stream(view: &[u8], info: &mut ContentInfo) -> Progress {
    if view.first() == Some(&0x81) {
        info.more.get_mut().netbios_name = decode_name(view.get(4..).unwrap_or_default());
    }
    Progress::Done
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    /// RFC 1002 section 4.1.1: "FRED" padded with spaces, suffix 0x00.
    const FRED: &[u8] = b"EGFCEFEECACACACACACACACACACACAAA";

    #[test]
    fn session_request_gives_the_called_name() {
        let mut request = vec![0x81, 0, 0, 68, 32];
        request.extend_from_slice(FRED);
        request.push(0);
        request.push(32);
        request.extend_from_slice(FRED);
        request.push(0);
        let mut c = ContentClassifier::new(Proto::Tcp, 50000, 139);
        c.on_stream(true, &request);
        let info = c.finish().unwrap();
        assert_eq!(info.service, "netbios-ssn");
        assert_eq!(info.more.netbios_name.as_deref(), Some("FRED<00>"));
    }

    #[test]
    fn smb_in_a_session_message_is_smb() {
        // SMB2 NEGOTIATE header start (MS-SMB2 2.2.1): protocol id 0xFE 'S' 'M' 'B'.
        let msg = [0, 0, 0, 0x40, 0xfe, b'S', b'M', b'B', 64, 0];
        let mut c = ContentClassifier::new(Proto::Tcp, 50000, 445);
        c.on_stream(true, &msg);
        assert_eq!(c.finish().unwrap().service, "smb");
    }

    #[test]
    fn wildcard_name_loses_its_nul_padding() {
        // "*" (0x2a) then fifteen NULs: "CK" then "AA" x 15 (RFC 1002 4.1.1 encoding).
        let mut encoded = vec![32u8];
        encoded.extend_from_slice(b"CK");
        encoded.extend_from_slice(&b"AA".repeat(15));
        assert_eq!(super::decode_name(&encoded).as_deref(), Some("*<00>"));
    }

    #[test]
    fn datagram_service_gives_the_source_name() {
        let mut dgm = vec![0x11, 0x02, 0, 1, 10, 0, 5, 9, 0, 138, 0, 100, 0, 0, 32];
        dgm.extend_from_slice(FRED);
        dgm.push(0);
        let mut c = ContentClassifier::new(Proto::Udp, 138, 138);
        c.on_datagram(true, &dgm);
        let info = c.finish().unwrap();
        assert_eq!(info.service, "netbios-dgm");
        assert_eq!(info.more.netbios_name.as_deref(), Some("FRED<00>"));
    }
}
