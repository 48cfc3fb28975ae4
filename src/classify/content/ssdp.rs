//! SSDP (UPnP discovery, HTTP-over-UDP): `M-SEARCH *` and `NOTIFY *` requests on any port,
//! and `HTTP/1.1` replies when either port is 1900. Records the search target (`ST`) or
//! notification type (`NT`). Hand-written: httparse reads the header lines.
//!
//! Promise: no panic on any bytes.

use super::{ContentInfo, Ports, TEXT_CAP, method_text, text};

const SSDP_PORT: u16 = 1900;
const MAX_HEADERS: usize = 32;

pub(super) fn detect(payload: &[u8], ports: Ports) -> bool {
    payload.starts_with(b"M-SEARCH * HTTP/1.")
        || payload.starts_with(b"NOTIFY * HTTP/1.")
        || (ports.either(SSDP_PORT) && payload.starts_with(b"HTTP/1."))
}

pub(super) fn parse_datagram(payload: &[u8], _ports: Ports, info: &mut ContentInfo) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed: &[httparse::Header<'_>] = if payload.starts_with(b"HTTP/") {
        let mut response = httparse::Response::new(&mut headers);
        if response.parse(payload).is_err() {
            return;
        }
        info.http_status = response.code;
        response.headers
    } else {
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(payload).is_err() {
            return;
        }
        info.http_method = request.method.map(method_text);
        request.headers
    };
    for header in parsed {
        if header.name.eq_ignore_ascii_case("ST") || header.name.eq_ignore_ascii_case("NT") {
            info.more.get_mut().ssdp_target = Some(text(header.value, TEXT_CAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    #[test]
    fn m_search_gives_the_search_target() {
        // UPnP Device Architecture 2.0, section 1.3.2's M-SEARCH example.
        let msg = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n";
        let mut c = ContentClassifier::new(Proto::Udp, 50000, 1900);
        c.on_datagram(true, msg);
        let info = c.finish().unwrap();
        assert_eq!(info.service, "ssdp");
        assert_eq!(info.http_method.as_deref(), Some("M-SEARCH"));
        assert_eq!(info.more.ssdp_target.as_deref(), Some("ssdp:all"));
    }
}
