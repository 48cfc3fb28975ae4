//! HTTP/1.x over TCP: detects a request line or a status line and reads them with `httparse`.
//!
//! Owns the first request (method, URI, Host, User-Agent) and the first response's status.
//! Promise: at most [`MAX_HEADERS`] headers are looked at; header blocks longer than the prefix
//! cap are given up on; nothing here panics on any bytes.

use super::{ContentInfo, Detect, Ports, Progress, Protocol, TEXT_CAP, URI_CAP, method_text, text};

/// Headers read from one message (more makes httparse report an error, and the message is
/// then read only up to its request or status line).
const MAX_HEADERS: usize = 96;

/// Request methods recognised as the start of an HTTP request (RFC 9110, WebDAV, and the
/// few other extension methods seen in practice).
const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"PATCH",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
    b"BPROPFIND",
    b"POLL",
];

pub(super) fn detect(view: &[u8], _from_orig: bool, _ports: Ports) -> Detect {
    if starts_with_partial(view, b"HTTP/1.") {
        return if view.len() >= 7 {
            Detect::Yes(Protocol::Http)
        } else {
            Detect::NeedMore
        };
    }
    let mut need_more = false;
    for method in METHODS {
        let Some(after) = view.get(method.len()) else {
            need_more |= starts_with_partial(view, method);
            continue;
        };
        if view.starts_with(method) && *after == b' ' {
            // The request line must end in an HTTP/1.x version (rules out RTSP, SIP...). A
            // complete first line that does is a request whatever httparse says of the rest.
            if line_ends_with_http(view) {
                return Detect::Yes(Protocol::Http);
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            return match request.parse(view) {
                Ok(_) | Err(httparse::Error::TooManyHeaders) => {
                    if request.version.is_some() || line_ends_with_http(view) {
                        Detect::Yes(Protocol::Http)
                    } else {
                        Detect::NeedMore
                    }
                }
                Err(_) if line_ends_with_http(view) => Detect::Yes(Protocol::Http),
                Err(_) => Detect::No,
            };
        }
    }
    if need_more {
        Detect::NeedMore
    } else {
        Detect::No
    }
}

/// `view` is a prefix of `pattern` or starts with it.
fn starts_with_partial(view: &[u8], pattern: &[u8]) -> bool {
    let n = view.len().min(pattern.len());
    view.get(..n) == pattern.get(..n) && !view.is_empty()
}

/// The first line is complete and ends with ` HTTP/1.x`.
fn line_ends_with_http(view: &[u8]) -> bool {
    let Some(end) = view.iter().position(|b| *b == b'\n') else {
        return false;
    };
    let line = view.get(..end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() >= 9 && line.get(line.len() - 9..line.len() - 1) == Some(b" HTTP/1.")
}

pub(super) fn parse_stream(view: &[u8], from_orig: bool, info: &mut ContentInfo) -> Progress {
    if view.starts_with(b"HTTP/") {
        if from_orig && info.http_method.is_none() {
            info.orig_is_server = true;
        }
        return read_response(view, info);
    }
    read_request(view, info)
}

fn read_request(view: &[u8], info: &mut ContentInfo) -> Progress {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let complete = match request.parse(view) {
        Ok(httparse::Status::Complete(_)) => true,
        Ok(httparse::Status::Partial) => false,
        // Too many headers or a malformed one: keep what the request line gave.
        Err(_) => true,
    };
    if !complete {
        return Progress::NeedMore;
    }
    if let Some(method) = request.method {
        info.http_method = Some(method_text(method));
    }
    if let Some(path) = request.path {
        info.http_uri = Some(text(path.as_bytes(), URI_CAP));
    }
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("host") {
            let host = text(header.value, TEXT_CAP);
            info.server_name = Some(host_without_port(&host).to_string());
            info.http_host = Some(host);
        } else if header.name.eq_ignore_ascii_case("user-agent") {
            info.http_user_agent = Some(text(header.value, TEXT_CAP));
        }
    }
    Progress::Done
}

fn read_response(view: &[u8], info: &mut ContentInfo) -> Progress {
    // Only the status line is recorded: with no room for headers the parse stops after it.
    let mut response = httparse::Response::new(&mut []);
    match response.parse(view) {
        Ok(httparse::Status::Partial) if response.code.is_none() => Progress::NeedMore,
        _ => {
            if let Some(code) = response.code {
                info.http_status = Some(code);
            } else {
                info.http_status = status_from_line(view);
            }
            Progress::Done
        }
    }
}

/// The status code of a status line httparse rejected (a missing reason phrase, say).
fn status_from_line(view: &[u8]) -> Option<u16> {
    let digits = view.get(9..12)?;
    if view.get(8) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `example.com:8080` -> `example.com`; `[2001:db8::1]:80` -> `2001:db8::1`.
fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    // Bytes as curl 7.88.1 sent them to python3's http.server (sample-captures/http-*.pcap),
    // and the server's status line; tshark reads http.host 192.0.2.2:8080, http.request.uri
    // /a.txt, http.user_agent curl/7.88.1, http.response.code 200.
    const REQUEST: &[u8] =
        b"GET /a.txt HTTP/1.1\r\nHost: 192.0.2.2:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nContent-type: text/plain\r\nContent-Length: 100\r\n\r\n";

    #[test]
    fn request_and_response_split_anywhere() {
        for chunk in [1, 3, 17, 1000] {
            let mut c = ContentClassifier::new(Proto::Tcp, 40000, 8080);
            for part in REQUEST.chunks(chunk) {
                c.on_stream(true, part);
            }
            for part in RESPONSE.chunks(chunk) {
                c.on_stream(false, part);
            }
            assert!(!c.wants_more());
            let info = c.finish().unwrap();
            assert_eq!(info.service, "http");
            assert_eq!(info.http_method.as_deref(), Some("GET"));
            assert_eq!(info.http_uri.as_deref(), Some("/a.txt"));
            assert_eq!(info.http_host.as_deref(), Some("192.0.2.2:8080"));
            assert_eq!(info.server_name.as_deref(), Some("192.0.2.2"));
            assert_eq!(info.http_user_agent.as_deref(), Some("curl/7.88.1"));
            assert_eq!(info.http_status, Some(200));
        }
    }

    #[test]
    fn the_status_comes_from_the_status_line_whatever_follows_it() {
        let many_headers: Vec<u8> = (0..MAX_HEADERS + 10)
            .flat_map(|i| format!("X-Header-{i}: {i}\r\n").into_bytes())
            .collect();
        let cases: [(&[u8], Option<u16>); 5] = [
            (b"HTTP/1.1 404 Not Found\r\n", Some(404)),
            (
                b"HTTP/1.1 301 Moved\r\nLocation: /b\r\nBad Header\r\n\r\n",
                Some(301),
            ),
            (
                &[b"HTTP/1.1 204 No Content\r\n".as_slice(), &many_headers].concat(),
                Some(204),
            ),
            // A reason phrase left out: httparse refuses the line, the digits still count.
            (b"HTTP/1.1 500\r\n\r\n", Some(500)),
            (b"HTTP/1.1 20", None),
        ];
        for (response, status) in cases {
            let mut info = ContentInfo::default();
            let progress = read_response(response, &mut info);
            assert_eq!(
                info.http_status,
                status,
                "{:?}",
                String::from_utf8_lossy(response)
            );
            let done = matches!(progress, Progress::Done);
            assert_eq!(
                done,
                status.is_some(),
                "{:?}",
                String::from_utf8_lossy(response)
            );
        }
    }

    #[test]
    fn http_on_a_tls_port_is_still_http() {
        let mut c = ContentClassifier::new(Proto::Tcp, 40000, 443);
        c.on_stream(true, REQUEST);
        assert_eq!(c.info().unwrap().service, "http");
    }

    #[test]
    fn rtsp_and_sip_are_not_http() {
        assert_eq!(
            detect(
                b"OPTIONS rtsp://example.com/ RTSP/1.0\r\n",
                true,
                Ports { orig: 1, resp: 2 }
            ),
            Detect::No
        );
        assert_eq!(
            detect(b"GE", true, Ports { orig: 1, resp: 2 }),
            Detect::NeedMore
        );
        assert_eq!(
            detect(b"SSH-2.0", true, Ports { orig: 1, resp: 2 }),
            Detect::No
        );
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("[2001:db8::1]:80"), "2001:db8::1");
        assert_eq!(host_without_port("example.com"), "example.com");
    }
}
