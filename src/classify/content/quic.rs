//! QUIC: detects long-header packets of known versions (IETF QUIC v1 and v2, drafts, Google
//! QUIC) on any port, records the version, and reads the TLS ClientHello carried in the
//! client's Initial packets to get the SNI, ALPN and JA4 (`q` prefix).
//!
//! Initial packets are protected with keys anyone can derive from the client's first
//! Destination Connection ID (RFC 9001 section 5.2, RFC 9369 for v2): HKDF-SHA256 with the
//! version's salt, AES-128-GCM for the payload and AES-128-ECB for header protection
//! (RustCrypto's hkdf, sha2, aes-gcm, aes). The ClientHello may span several Initial packets
//! and CRYPTO frames, in any order; they are put back together in a buffer of at most
//! [`CRYPTO_CAP`] bytes. Google QUIC before Q050 sends its CHLO in the clear: its `SNI` tag is
//! read directly. Promise: no panic on any bytes; allocation bounded by the datagram and the cap.

use super::{ContentInfo, TEXT_CAP, text, tls};
use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::{AeadInOut, Aes128Gcm};
use hkdf::Hkdf;
use sha2::Sha256;

/// Most ClientHello bytes reassembled from CRYPTO frames.
pub const CRYPTO_CAP: usize = 8 * 1024;
/// Most distinct CRYPTO ranges remembered.
const MAX_RANGES: usize = 32;
const MAX_CID: usize = 20;
const TAG_LEN: usize = 16;
const SAMPLE_LEN: usize = 16;

const VERSION_1: u32 = 0x0000_0001;
const VERSION_2: u32 = 0x6b33_43cf;
const SALT_V1: [u8; 20] = hex20(b"38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
const SALT_V2: [u8; 20] = hex20(b"0dede3def700a6db819381be6e269dcbf9bd2ed9");
const SALT_DRAFT_29: [u8; 20] = hex20(b"afbfec289993d24c9e9786f19c6111e04390a899");
const SALT_DRAFT_23: [u8; 20] = hex20(b"c3eef712c72ebb5a11a7d2432bb46365bef9f502");

const fn hex20(s: &[u8; 40]) -> [u8; 20] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        }
    }
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// IETF QUIC with Initial protection: salt, label prefix, Initial packet type.
    Ietf { salt: [u8; 20], v2: bool },
    /// IETF-style version we cannot decrypt (unknown salt).
    IetfOpaque,
    /// Google QUIC (`Q0xx`, `T0xx`).
    Google,
}

fn family(version: u32) -> Option<Family> {
    let bytes = version.to_be_bytes();
    Some(match version {
        VERSION_1 => Family::Ietf {
            salt: SALT_V1,
            v2: false,
        },
        VERSION_2 => Family::Ietf {
            salt: SALT_V2,
            v2: true,
        },
        0xff00_001d..=0xff00_0020 => Family::Ietf {
            salt: SALT_DRAFT_29,
            v2: false,
        },
        0xff00_0017..=0xff00_001c => Family::Ietf {
            salt: SALT_DRAFT_23,
            v2: false,
        },
        0xff00_0001..=0xff00_0016 | 0xface_b001..=0xface_b00f => Family::IetfOpaque,
        _ if matches!(bytes[0], b'Q' | b'T')
            && bytes[1] == b'0'
            && bytes[2].is_ascii_digit()
            && bytes[3].is_ascii_digit() =>
        {
            Family::Google
        }
        _ => return None,
    })
}

fn version_name(version: u32) -> String {
    let bytes = version.to_be_bytes();
    match version {
        VERSION_1 => "1".to_string(),
        VERSION_2 => "2".to_string(),
        0xff00_0001..=0xff00_00ff => format!("draft-{}", version & 0xff),
        _ if family(version) == Some(Family::Google) => text(&bytes, 4),
        _ => format!("{version:08x}"),
    }
}

/// Google QUIC's public header (Q043 and earlier): flags with the version bit, an 8-byte
/// connection ID, then the version tag.
fn google_public_header_version(payload: &[u8]) -> Option<u32> {
    let flags = *payload.first()?;
    if flags & 0x01 == 0 || flags & 0x08 == 0 || flags & 0x80 != 0 {
        return None;
    }
    let v = payload.get(9..13)?;
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    (family(version) == Some(Family::Google)).then_some(version)
}

pub(super) fn detect(payload: &[u8]) -> bool {
    if google_public_header_version(payload).is_some() {
        return true;
    }
    let Some(header) = LongHeader::parse(payload) else {
        return false;
    };
    family(header.version).is_some()
}

/// Reads a QUIC variable-length integer (RFC 9000 section 16).
fn varint(input: &[u8]) -> Option<(u64, &[u8])> {
    let first = *input.first()?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(..len)?;
    let mut value = u64::from(first & 0x3f);
    for b in bytes.get(1..)? {
        value = value << 8 | u64::from(*b);
    }
    Some((value, input.get(len..)?))
}

struct LongHeader<'a> {
    first: u8,
    version: u32,
    dcid: &'a [u8],
    /// Bytes after the source connection ID.
    rest: &'a [u8],
}

impl<'a> LongHeader<'a> {
    fn parse(payload: &'a [u8]) -> Option<Self> {
        let first = *payload.first()?;
        if first & 0x80 == 0 {
            return None;
        }
        let v = payload.get(1..5)?;
        let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        let dcid_len = usize::from(*payload.get(5)?);
        if dcid_len > MAX_CID {
            return None;
        }
        let dcid = payload.get(6..6 + dcid_len)?;
        let scid_len = usize::from(*payload.get(6 + dcid_len)?);
        if scid_len > MAX_CID {
            return None;
        }
        let rest = payload.get(7 + dcid_len + scid_len..)?;
        Some(LongHeader {
            first,
            version,
            dcid,
            rest,
        })
    }
}

#[derive(Debug, Clone)]
struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
fn expand_label(hkdf: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?;
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend_from_slice(&len.to_be_bytes());
    info.push(u8::try_from(6 + label.len()).ok()?);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    hkdf.expand(&info, out).ok()
}

fn client_initial_keys(salt: &[u8], v2: bool, dcid: &[u8]) -> Option<Keys> {
    let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
    let mut client_secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut client_secret)?;
    let client = Hkdf::<Sha256>::from_prk(&client_secret).ok()?;
    let (key_label, iv_label, hp_label): (&[u8], &[u8], &[u8]) = if v2 {
        (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
    } else {
        (b"quic key", b"quic iv", b"quic hp")
    };
    let mut keys = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, key_label, &mut keys.key)?;
    expand_label(&client, iv_label, &mut keys.iv)?;
    expand_label(&client, hp_label, &mut keys.hp)?;
    Some(keys)
}

/// Per-session QUIC state: the client's Initial keys and the CRYPTO stream so far.
#[derive(Debug, Default)]
pub struct QuicState {
    /// Which side sent the first Initial (the client).
    client_is_orig: Option<bool>,
    keys: Option<Keys>,
    crypto: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    hello_read: bool,
}

impl QuicState {
    fn add_crypto(&mut self, offset: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= CRYPTO_CAP || self.ranges.len() >= MAX_RANGES {
            return;
        }
        let end = start.saturating_add(data.len()).min(CRYPTO_CAP);
        if self.crypto.len() < end {
            self.crypto.resize(end, 0);
        }
        if let (Some(dst), Some(src)) = (self.crypto.get_mut(start..end), data.get(..end - start)) {
            dst.copy_from_slice(src);
            self.ranges.push((start, end));
        }
    }

    /// Bytes available from offset 0 without a hole.
    fn contiguous(&mut self) -> usize {
        self.ranges.sort_unstable();
        let mut reach = 0;
        for (start, end) in &self.ranges {
            if *start > reach {
                break;
            }
            reach = reach.max(*end);
        }
        reach
    }
}

/// Reads one datagram. Returns true when nothing more will be recorded.
pub(super) fn parse_datagram(
    state: &mut QuicState,
    payload: &[u8],
    from_orig: bool,
    info: &mut ContentInfo,
) -> bool {
    if let Some(version) = google_public_header_version(payload) {
        info.more
            .get_mut()
            .quic_version
            .get_or_insert_with(|| version_name(version));
        return read_google_chlo(payload, info);
    }
    let mut rest = payload;
    // Coalesced packets: at most a few per datagram.
    for _ in 0..4 {
        let Some(header) = LongHeader::parse(rest) else {
            break;
        };
        if header.version == 0 {
            // Version negotiation: lists versions, carries nothing more.
            break;
        }
        info.more
            .get_mut()
            .quic_version
            .get_or_insert_with(|| version_name(header.version));
        let Some(fam) = family(header.version) else {
            break;
        };
        match fam {
            Family::Google => return read_google_chlo(payload, info),
            Family::IetfOpaque => return true,
            Family::Ietf { salt, v2 } => {
                let packet_type = (header.first >> 4) & 0x03;
                let initial_type = if v2 { 1 } else { 0 };
                let retry_type = if v2 { 0 } else { 3 };
                if packet_type == retry_type {
                    break;
                }
                let mut after = header.rest;
                if packet_type == initial_type {
                    let Some((token_len, r)) = varint(after) else {
                        break;
                    };
                    let Some(r) = usize::try_from(token_len).ok().and_then(|n| r.get(n..)) else {
                        break;
                    };
                    after = r;
                }
                let Some((length, pn_and_payload)) = varint(after) else {
                    break;
                };
                let Ok(length) = usize::try_from(length) else {
                    break;
                };
                let header_len = rest.len() - pn_and_payload.len();
                let Some(packet) = rest.get(..header_len.saturating_add(length)) else {
                    break;
                };
                if packet_type == initial_type {
                    let client = *state.client_is_orig.get_or_insert(from_orig);
                    if client == from_orig && !state.hello_read {
                        if state.keys.is_none() {
                            state.keys = client_initial_keys(&salt, v2, header.dcid);
                        }
                        if let Some(keys) = state.keys.clone() {
                            decrypt_initial(state, &keys, packet, header_len);
                        }
                    }
                }
                rest = rest.get(packet.len()..).unwrap_or_default();
            }
        }
    }
    if !state.hello_read {
        let reach = state.contiguous();
        if let Some(hello) = state.crypto.get(..reach)
            && let [1, a, b, c, body @ ..] = hello
        {
            let need = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
            if need > CRYPTO_CAP - 4 {
                state.hello_read = true;
            } else if let Some(body) = body.get(..need) {
                tls::read_client_hello(body, 'q', info);
                state.hello_read = true;
            }
        }
    }
    if state.hello_read {
        state.crypto = Vec::new();
        state.ranges = Vec::new();
    }
    state.hello_read
}

/// Removes header protection, decrypts one client Initial packet and collects its CRYPTO
/// frames. `pn_offset` is where the packet number starts.
fn decrypt_initial(state: &mut QuicState, keys: &Keys, packet: &[u8], pn_offset: usize) {
    let Some(sample) = packet.get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN) else {
        return;
    };
    let Ok(hp) = Aes128::new_from_slice(&keys.hp) else {
        return;
    };
    let mut mask = [0u8; 16];
    mask.copy_from_slice(sample);
    let mut block = mask.into();
    hp.encrypt_block(&mut block);
    let mask: [u8; 16] = block.into();

    let mut buf = packet.to_vec();
    let Some(first) = buf.first_mut() else {
        return;
    };
    *first ^= mask[0] & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    let mut pn: u64 = 0;
    for i in 0..pn_len {
        let Some(byte) = buf.get_mut(pn_offset + i) else {
            return;
        };
        *byte ^= mask[1 + i];
        pn = pn << 8 | u64::from(*byte);
    }
    let payload_at = pn_offset + pn_len;
    if buf.len() < payload_at + TAG_LEN {
        return;
    }
    let mut nonce = keys.iv;
    for (i, b) in pn.to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= b;
    }
    let (aad, body) = buf.split_at_mut(payload_at);
    let (ciphertext, tag) = body.split_at_mut(body.len() - TAG_LEN);
    let Ok(cipher) = Aes128Gcm::new_from_slice(&keys.key) else {
        return;
    };
    let Ok(tag) = <&[u8; TAG_LEN]>::try_from(&*tag) else {
        return;
    };
    if cipher
        .decrypt_inout_detached(&nonce.into(), aad, ciphertext.into(), &(*tag).into())
        .is_err()
    {
        return;
    }
    read_frames(state, ciphertext);
}

fn read_frames(state: &mut QuicState, mut frames: &[u8]) {
    while let Some((&frame_type, rest)) = frames.split_first() {
        frames = match frame_type {
            0x00 | 0x01 => rest,
            0x02 | 0x03 => {
                let Some(r) = skip_ack(rest, frame_type == 0x03) else {
                    return;
                };
                r
            }
            0x06 => {
                let Some((offset, r)) = varint(rest) else {
                    return;
                };
                let Some((len, r)) = varint(r) else {
                    return;
                };
                let Some(data) = usize::try_from(len).ok().and_then(|n| r.get(..n)) else {
                    return;
                };
                state.add_crypto(offset, data);
                r.get(data.len()..).unwrap_or_default()
            }
            _ => return,
        };
    }
}

fn skip_ack(mut input: &[u8], ecn: bool) -> Option<&[u8]> {
    let mut fields = [0u64; 4];
    for field in &mut fields {
        let (v, r) = varint(input)?;
        *field = v;
        input = r;
    }
    let ranges = fields[2];
    if ranges > 256 {
        return None;
    }
    for _ in 0..ranges * 2 + if ecn { 3 } else { 0 } {
        input = varint(input)?.1;
    }
    Some(input)
}

/// Google QUIC's cleartext client hello: a `CHLO` tag, a count of tags, then (tag, end offset)
/// pairs and the values. Reads the `SNI` tag.
fn read_google_chlo(payload: &[u8], info: &mut ContentInfo) -> bool {
    let Some(at) = payload.windows(4).position(|w| w == b"CHLO") else {
        return false;
    };
    let Some(msg) = payload.get(at..) else {
        return false;
    };
    let Some(count) = msg
        .get(4..6)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
    else {
        return false;
    };
    if count > 128 {
        return true;
    }
    let values_at = 8 + count * 8;
    let Some(values) = msg.get(values_at..) else {
        return true;
    };
    let mut previous_end = 0usize;
    for i in 0..count {
        let Some(entry) = msg.get(8 + i * 8..16 + i * 8) else {
            return true;
        };
        let end = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
        if &entry[..4] == b"SNI\0"
            && let Some(value) = values.get(previous_end..end)
        {
            info.server_name = Some(text(value, TEXT_CAP));
        }
        previous_end = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::content::ContentClassifier;
    use crate::classify::content::tls::tests::unhex;
    use crate::session::Proto;

    #[test]
    fn rfc9001_appendix_a_client_initial_keys() {
        // RFC 9001 A.1: DCID 0x8394c8f03e515708.
        let keys = client_initial_keys(&SALT_V1, false, &unhex("8394c8f03e515708")).unwrap();
        assert_eq!(keys.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(keys.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(keys.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn rfc9369_appendix_a_v2_client_initial_keys() {
        let keys = client_initial_keys(&SALT_V2, true, &unhex("8394c8f03e515708")).unwrap();
        assert_eq!(keys.key.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(keys.iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
        assert_eq!(keys.hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn rfc9001_appendix_a2_client_initial_gives_sni() {
        // RFC 9001 A.2: the protected client Initial (1200 bytes) carrying a ClientHello for
        // "example.com" (server_name extension in A.2's unprotected payload).
        let packet = unhex(include_str!("testdata/rfc9001-client-initial.hex"));
        assert_eq!(packet.len(), 1200);
        let mut c = ContentClassifier::new(Proto::Udp, 50000, 443);
        c.on_datagram(true, &packet);
        assert!(!c.wants_more());
        let info = c.finish().unwrap().into_info();
        assert_eq!(info.service, "quic");
        assert_eq!(info.more.quic_version.as_deref(), Some("1"));
        assert_eq!(info.server_name.as_deref(), Some("example.com"));
        assert!(info.ja4.unwrap().starts_with("q13d"));
    }

    #[test]
    fn varints_from_rfc9000_appendix_a1() {
        assert_eq!(
            varint(&unhex("c2197c5eff14e88c")).unwrap().0,
            151_288_809_941_952_652
        );
        assert_eq!(varint(&unhex("9d7f3e7d")).unwrap().0, 494_878_333);
        assert_eq!(varint(&unhex("7bbd")).unwrap().0, 15_293);
        assert_eq!(varint(&unhex("25")).unwrap().0, 37);
        assert!(varint(&unhex("c2")).is_none());
    }

    #[test]
    fn cut_packets_do_not_panic() {
        let packet = unhex(include_str!("testdata/rfc9001-client-initial.hex"));
        for cut in 0..packet.len() {
            let mut state = QuicState::default();
            let mut info = ContentInfo::default();
            let _ = parse_datagram(&mut state, &packet[..cut], true, &mut info);
        }
    }
}
