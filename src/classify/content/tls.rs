//! TLS over TCP: detects a handshake record (or, for a session captured mid-stream, another
//! record type with a TLS version and a possible length), reads the ClientHello (SNI, ALPN, offered
//! versions, JA4) and the ServerHello (chosen version) with rusticata's `tls-parser`.
//!
//! Owns reassembling the first handshake message of a direction from its records (it may span
//! several) and the JA4 client fingerprint, which QUIC's parser shares. Promise: a handshake
//! message longer than the prefix cap is not read; nothing here panics on any bytes.

use super::{
    ContentInfo, Detect, PREFIX_CAP, Ports, Progress, Protocol, TEXT_CAP, capped_text, text,
};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;
use tls_parser::{
    TlsExtension, TlsVersion, parse_tls_extensions, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello,
};

const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;
/// Longest TLS record fragment a peer may send (2^14 plus expansion room).
const MAX_RECORD: usize = 16384 + 2048;

/// A TLS record carrying a ClientHello or ServerHello (or an SSLv2 ClientHello).
pub(super) fn detect(view: &[u8], _from_orig: bool, _ports: Ports) -> Detect {
    let Some(&first) = view.first() else {
        return Detect::NeedMore;
    };
    if first == RECORD_HANDSHAKE {
        for (i, ok) in [
            (1, &(|b: u8| b == 3) as &dyn Fn(u8) -> bool),
            (2, &|b: u8| b <= 4),
            (5, &|b: u8| {
                b == HANDSHAKE_CLIENT_HELLO || b == HANDSHAKE_SERVER_HELLO
            }),
        ] {
            match view.get(i) {
                None => return Detect::NeedMore,
                Some(&b) if !ok(b) => return Detect::No,
                Some(_) => {}
            }
        }
        return Detect::Yes(Protocol::Tls);
    }
    // Mid-stream (the handshake was not captured): an application data, alert or
    // change-cipher-spec record header with a TLS version and a possible length.
    if matches!(first, 20 | 21 | 23) {
        let Some(header) = view.get(..5) else {
            return if view.get(1).is_some_and(|b| *b != 3) {
                Detect::No
            } else {
                Detect::NeedMore
            };
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        return if header[1] == 3 && header[2] <= 4 && len > 0 && len <= MAX_RECORD {
            Detect::Yes(Protocol::Tls)
        } else {
            Detect::No
        };
    }
    // SSLv2-framed ClientHello: 2-byte length with the top bit set, message type 1, then a
    // version of SSL 2 (0x0002) or SSL 3 / TLS (0x03xx).
    if first & 0x80 != 0 {
        return match (view.get(2), view.get(3), view.get(4)) {
            (Some(1), Some(0), Some(2)) | (Some(1), Some(3), Some(0..=3)) => {
                Detect::Yes(Protocol::Tls)
            }
            (None, _, _) | (_, None, _) | (_, _, None) => Detect::NeedMore,
            _ => Detect::No,
        };
    }
    Detect::No
}

/// The first handshake message of a direction, reassembled from its records.
enum Handshake<'a> {
    Incomplete,
    Invalid,
    /// Message type, then the body (after the 4-byte handshake header).
    Message(u8, Cow<'a, [u8]>),
}

fn first_handshake(view: &[u8]) -> Handshake<'_> {
    let mut pos = 0usize;
    let mut joined: Option<Vec<u8>> = None;
    let mut single: &[u8] = &[];
    loop {
        let Some(header) = view.get(pos..pos.saturating_add(5)) else {
            return Handshake::Incomplete;
        };
        let (content_type, major, len) = match header {
            [t, major, _, hi, lo] => (*t, *major, usize::from(u16::from_be_bytes([*hi, *lo]))),
            _ => return Handshake::Invalid,
        };
        if content_type != RECORD_HANDSHAKE || major != 3 || len == 0 || len > MAX_RECORD {
            return Handshake::Invalid;
        }
        let start = pos + 5;
        let Some(fragment) = view.get(start..start.saturating_add(len)) else {
            return Handshake::Incomplete;
        };
        pos = start + len;
        let collected: &[u8] = match joined.as_mut() {
            Some(buf) => {
                buf.extend_from_slice(fragment);
                buf
            }
            None if single.is_empty() => {
                single = fragment;
                single
            }
            None => {
                let mut buf = Vec::with_capacity(single.len() + fragment.len());
                buf.extend_from_slice(single);
                buf.extend_from_slice(fragment);
                joined.insert(buf)
            }
        };
        if let [msg_type, a, b, c, ..] = *collected {
            let need = 4 + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
            if need > PREFIX_CAP {
                return Handshake::Invalid;
            }
            if collected.len() >= need {
                let body = match joined {
                    Some(mut buf) => {
                        buf.truncate(need);
                        buf.drain(..4);
                        Cow::Owned(buf)
                    }
                    None => Cow::Borrowed(single.get(4..need).unwrap_or_default()),
                };
                return Handshake::Message(msg_type, body);
            }
        }
    }
}

/// Reads the direction's first handshake message into `info`.
pub(super) fn parse_stream(view: &[u8], info: &mut ContentInfo) -> Progress {
    if view.first().is_some_and(|b| b & 0x80 != 0) {
        // SSLv2 framing: nothing more is read from it.
        info.tls_version.get_or_insert("SSLv2");
        return Progress::Done;
    }
    match first_handshake(view) {
        Handshake::Incomplete => Progress::NeedMore,
        Handshake::Invalid => Progress::Done,
        Handshake::Message(HANDSHAKE_CLIENT_HELLO, body) => {
            read_client_hello(&body, 't', info);
            Progress::Done
        }
        Handshake::Message(HANDSHAKE_SERVER_HELLO, body) => {
            read_server_hello(&body, info);
            Progress::Done
        }
        Handshake::Message(..) => Progress::Done,
    }
}

/// Zeek's name for a TLS protocol version.
pub(super) fn version_name(version: u16) -> Option<&'static str> {
    Some(match version {
        0x0304 => "TLSv13",
        0x0303 => "TLSv12",
        0x0302 => "TLSv11",
        0x0301 => "TLSv10",
        0x0300 => "SSLv3",
        0x0002 => "SSLv2",
        0xfeff => "DTLSv10",
        0xfefd => "DTLSv12",
        0xfefc => "DTLSv13",
        // TLS 1.3 drafts (0x7fxx) are reported as TLS 1.3.
        v if v & 0xff00 == 0x7f00 => "TLSv13",
        _ => return None,
    })
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub(super) fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// Reads a ClientHello body (after the handshake header). `transport` is JA4's first
/// character: `t` for TLS over TCP, `q` for QUIC.
pub(super) fn read_client_hello(body: &[u8], transport: char, info: &mut ContentInfo) {
    let Ok((_, hello)) = parse_tls_handshake_client_hello(body) else {
        return;
    };
    let raw_ext = hello.ext.unwrap_or_default();
    let mut sni = None;
    let mut alpn: &[&[u8]] = &[];
    let mut versions: &[TlsVersion] = &[];
    let mut signature_algorithms: &[u16] = &[];
    let extensions = parse_tls_extensions(raw_ext)
        .map(|(_, list)| list)
        .unwrap_or_default();
    for extension in &extensions {
        match extension {
            TlsExtension::SNI(names) => {
                sni = names.iter().find(|(kind, _)| kind.0 == 0).map(|(_, n)| *n);
            }
            TlsExtension::ALPN(protocols) => alpn = protocols,
            TlsExtension::SupportedVersions(list) => versions = list,
            TlsExtension::SignatureAlgorithms(list) => signature_algorithms = list,
            _ => {}
        }
    }
    let offered = versions
        .iter()
        .map(|v| v.0)
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(hello.version.0);
    if info.tls_version.is_none() {
        // JA4 takes the numerically highest value; the column names the highest real version
        // (QUIC clients may also list TLS 1.3 drafts, 0x7fxx).
        info.tls_version = versions
            .iter()
            .map(|v| v.0)
            .filter(|v| !is_grease(*v) && v & 0xff00 != 0x7f00)
            .max()
            .and_then(version_name)
            .or_else(|| version_name(offered));
    }
    if let Some(name) = sni {
        info.server_name = Some(text(name, TEXT_CAP));
    }
    if !alpn.is_empty() {
        let mut joined = String::with_capacity(alpn.iter().map(|p| p.len() + 1).sum());
        for (i, protocol) in alpn.iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(&String::from_utf8_lossy(protocol));
        }
        info.tls_alpn = Some(capped_text(joined, TEXT_CAP));
    }
    let has_sni = ExtensionTypes(raw_ext).any(|t| t == EXT_SERVER_NAME);
    info.ja4 = Some(ja4(
        transport,
        offered,
        has_sni,
        hello.ciphers.iter().map(|c| c.0),
        ExtensionTypes(raw_ext),
        alpn.first().copied(),
        signature_algorithms.iter().copied(),
    ));
}

/// Extension type numbers in the order sent (the raw block is walked so unknown ones count).
#[derive(Clone)]
struct ExtensionTypes<'a>(&'a [u8]);

impl Iterator for ExtensionTypes<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let [a, b, c, d, rest @ ..] = self.0 else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*c, *d]));
        self.0 = rest.get(len..).unwrap_or_default();
        Some(u16::from_be_bytes([*a, *b]))
    }
}

fn read_server_hello(body: &[u8], info: &mut ContentInfo) {
    let Ok((_, hello)) = parse_tls_handshake_server_hello(body) else {
        return;
    };
    let mut version = hello.version.0;
    if let Some(raw) = hello.ext
        && let Ok((_, extensions)) = parse_tls_extensions(raw)
    {
        for extension in extensions {
            if let TlsExtension::SupportedVersions(list) = extension
                && let Some(chosen) = list.first()
            {
                version = chosen.0;
            }
        }
    }
    if let Some(name) = version_name(version) {
        info.tls_version = Some(name);
    }
}

/// JA4 (FoxIO, "JA4: TLS Client Fingerprint"): `a_b_c` where a = transport, version, SNI
/// present (`d`) or not (`i`), cipher and extension counts, first and last character of the
/// first ALPN value; b = truncated SHA-256 of the sorted cipher list; c = truncated SHA-256 of
/// the sorted extension list (without SNI and ALPN) and the signature algorithms in order.
/// GREASE values are left out everywhere. Built in one string: the lists are sorted in a stack
/// buffer (in a heap one only past [`SORT_BUFFER`] values) and hashed as they are written.
pub(super) fn ja4(
    transport: char,
    version: u16,
    has_sni: bool,
    ciphers: impl Iterator<Item = u16> + Clone,
    extensions: impl Iterator<Item = u16> + Clone,
    first_alpn: Option<&[u8]>,
    signature_algorithms: impl Iterator<Item = u16> + Clone,
) -> String {
    let version = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let ciphers = ciphers.filter(|c| !is_grease(*c));
    let extensions = extensions.filter(|e| !is_grease(*e));
    let [alpn_first, alpn_last] = alpn_chars(first_alpn);
    let mut out = String::with_capacity(36);
    let _ = write!(
        out,
        "{transport}{version}{}{:02}{:02}{}{}_",
        if has_sni { 'd' } else { 'i' },
        ciphers.clone().count().min(99),
        extensions.clone().count().min(99),
        char::from(alpn_first),
        char::from(alpn_last),
    );
    with_sorted(ciphers, |sorted| {
        let mut hasher = Sha256::new();
        hash_hex_list(&mut hasher, sorted.iter().copied());
        push_truncated_hash(&mut out, (!sorted.is_empty()).then_some(hasher));
    });
    out.push('_');
    let hashed = extensions.filter(|e| *e != EXT_SERVER_NAME && *e != EXT_ALPN);
    let algorithms = signature_algorithms.filter(|a| !is_grease(*a));
    with_sorted(hashed, |sorted| {
        let mut hasher = Sha256::new();
        hash_hex_list(&mut hasher, sorted.iter().copied());
        let has_algorithms = algorithms.clone().next().is_some();
        if has_algorithms {
            hasher.update(b"_");
            hash_hex_list(&mut hasher, algorithms);
        }
        push_truncated_hash(
            &mut out,
            (!sorted.is_empty() || has_algorithms).then_some(hasher),
        );
    });
    out
}

/// Values sorted in a stack buffer this long; longer lists (never seen from real clients) take
/// a heap one.
const SORT_BUFFER: usize = 128;

/// Calls `f` with `values` sorted.
fn with_sorted(values: impl Iterator<Item = u16> + Clone, f: impl FnOnce(&[u16])) {
    let mut stack = [0u16; SORT_BUFFER];
    let mut n = 0;
    for (slot, value) in stack.iter_mut().zip(values.clone()) {
        *slot = value;
        n += 1;
    }
    if n < SORT_BUFFER || values.clone().nth(SORT_BUFFER).is_none() {
        let sorted = stack.get_mut(..n).unwrap_or_default();
        sorted.sort_unstable();
        f(sorted);
    } else {
        let mut heap: Vec<u16> = values.collect();
        heap.sort_unstable();
        f(&heap);
    }
}

/// Hashes `values` as comma-separated four-digit lowercase hex.
fn hash_hex_list(hasher: &mut Sha256, values: impl Iterator<Item = u16>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        let digits = v.to_be_bytes();
        hasher.update([
            HEX[usize::from(digits[0] >> 4)],
            HEX[usize::from(digits[0] & 0x0f)],
            HEX[usize::from(digits[1] >> 4)],
            HEX[usize::from(digits[1] & 0x0f)],
        ]);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// JA4's first and last character of the first ALPN value: the characters themselves when
/// both are alphanumeric, else the first byte's high and the last byte's low hex digit; `00`
/// without ALPN.
fn alpn_chars(first_alpn: Option<&[u8]>) -> [u8; 2] {
    let Some((first, last)) = first_alpn.and_then(|v| Some((*v.first()?, *v.last()?))) else {
        return *b"00";
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        [first, last]
    } else {
        [HEX[usize::from(first >> 4)], HEX[usize::from(last & 0x0f)]]
    }
}

/// Appends the first 12 hex digits of the hash, or twelve zeros for an empty list (`None`).
fn push_truncated_hash(out: &mut String, hasher: Option<Sha256>) {
    let Some(hasher) = hasher else {
        out.push_str("000000000000");
        return;
    };
    let digest = hasher.finalize();
    for byte in digest.iter().take(6) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    /// A TLS 1.3 ClientHello record made by `openssl s_client -connect 127.0.0.1:8443
    /// -servername example.test -alpn h2,http/1.1` (OpenSSL 3.0, Debian 12), captured with
    /// tcpdump. tshark 4.0 reads it as: SNI example.test, ALPN h2,http/1.1, supported versions
    /// TLS 1.3 and 1.2, JA3 given below.
    pub const CLIENT_HELLO_HEX: &str = include_str!("testdata/openssl-client-hello.hex");
    /// The matching ServerHello record (`openssl s_server`, TLS 1.3 chosen).
    pub const SERVER_HELLO_HEX: &str = include_str!("testdata/openssl-server-hello.hex");

    pub fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ja4_hash_parts_match_the_spec_example() {
        // The JA4 specification's worked example lists these ciphers, extensions and
        // signature algorithms with hashes 8daaf6152771 and e5627efa2ab1.
        let ciphers = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let extensions = [
            0x0000, 0x0005, 0x000a, 0x000b, 0x000d, 0x0010, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023,
            0x002b, 0x002d, 0x0033, 0x4469, 0xff01,
        ];
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let fp = ja4(
            't',
            0x0304,
            true,
            ciphers.iter().copied(),
            extensions.iter().copied(),
            Some(b"h2"),
            sigs.iter().copied(),
        );
        assert_eq!(fp, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn mid_stream_application_data_is_tls_without_details() {
        let mut c = ContentClassifier::new(Proto::Tcp, 443, 50677);
        c.on_stream(true, &[23, 3, 3, 0, 19, 1, 2, 3]);
        c.on_stream(false, &[23, 3, 3, 0, 40, 9, 9]);
        assert!(!c.wants_more());
        let info = c.finish().unwrap().into_info();
        assert_eq!(info.service, "ssl");
        assert_eq!((info.server_name, info.ja4), (None, None));
        assert_eq!(
            detect(&[23, 3, 3, 0x50, 0], true, Ports { orig: 1, resp: 2 }),
            Detect::No
        );
    }

    #[test]
    fn grease_values_are_recognised() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn alpn_non_alphanumeric_uses_hex() {
        assert_eq!(&alpn_chars(Some(b"h2")), b"h2");
        assert_eq!(&alpn_chars(Some(b"http/1.1")), b"h1");
        assert_eq!(&alpn_chars(Some(&[0xab, 0xcd])), b"ad");
        assert_eq!(&alpn_chars(None), b"00");
    }

    fn feed_in_chunks(chunk: usize) -> ContentInfo {
        let client = unhex(CLIENT_HELLO_HEX);
        let server = unhex(SERVER_HELLO_HEX);
        let mut c = ContentClassifier::new(Proto::Tcp, 50000, 8443);
        for part in client.chunks(chunk) {
            c.on_stream(true, part);
        }
        assert!(c.wants_more(), "still waiting for the ServerHello");
        for part in server.chunks(chunk) {
            c.on_stream(false, part);
        }
        assert!(!c.wants_more());
        c.finish().unwrap().into_info()
    }

    #[test]
    fn openssl_handshake_gives_sni_alpn_version_and_ja4() {
        for chunk in [1, 7, 100, 100_000] {
            let info = feed_in_chunks(chunk);
            assert_eq!(info.service, "ssl");
            assert_eq!(info.server_name.as_deref(), Some("example.test"));
            assert_eq!(info.tls_alpn.as_deref(), Some("h2,http/1.1"));
            assert_eq!(info.tls_version, Some("TLSv13"));
            assert_eq!(
                info.ja4.as_deref(),
                Some(include_str!("testdata/openssl-client-hello.ja4").trim())
            );
        }
    }

    #[test]
    fn truncated_and_garbage_records_do_not_panic() {
        let client = unhex(CLIENT_HELLO_HEX);
        for cut in 0..client.len() {
            let mut info = ContentInfo::default();
            let _ = parse_stream(&client[..cut], &mut info);
        }
        let mut info = ContentInfo::default();
        let mut bad = client.clone();
        bad[9] = 0xff; // huge handshake length
        assert_eq!(parse_stream(&bad, &mut info), Progress::Done);
    }
}
