//! SSH: detects and records the identification strings (RFC 4253 section 4.2) both sides send
//! first, `SSH-protoversion-softwareversion [comments]`.
//!
//! Owns only the banner lines. A server may send other lines before its identification
//! string; those are skipped (within the prefix cap). Hand-written: no maintained crate parses
//! just the banner. Promise: no panic on any bytes.

use super::{ContentInfo, Detect, Ports, Progress, Protocol, TEXT_CAP, text};

pub(super) fn detect(view: &[u8], _from_orig: bool, _ports: Ports) -> Detect {
    let n = view.len().min(4);
    if view.get(..n) != b"SSH-".get(..n) {
        return Detect::No;
    }
    if n < 4 {
        Detect::NeedMore
    } else {
        Detect::Yes(Protocol::Ssh)
    }
}

pub(super) fn parse_stream(view: &[u8], from_orig: bool, info: &mut ContentInfo) -> Progress {
    let mut rest = view;
    loop {
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Progress::NeedMore;
        };
        let line = rest.get(..end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"SSH-") {
            let banner = Some(text(line, TEXT_CAP));
            if from_orig {
                info.more.get_mut().ssh_client = banner;
            } else {
                info.more.get_mut().ssh_server = banner;
            }
            return Progress::Done;
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    #[test]
    fn banners_of_both_sides_on_any_port() {
        // Identification strings as OpenSSH 9.2 (Debian 12) sends them.
        let mut c = ContentClassifier::new(Proto::Tcp, 51000, 443);
        c.on_stream(false, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        c.on_stream(true, b"SSH-2.0-Open");
        c.on_stream(true, b"SSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x05\xdc");
        assert!(!c.wants_more());
        let info = c.finish().unwrap();
        assert_eq!(info.service, "ssh");
        assert_eq!(
            info.more.ssh_server.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
        );
        assert_eq!(
            info.more.ssh_client.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
        );
    }

    #[test]
    fn lines_before_the_server_banner_are_skipped() {
        let mut info = Default::default();
        let progress = super::parse_stream(b"hello\r\nSSH-2.0-x\r\n", false, &mut info);
        assert_eq!(progress, super::Progress::Done);
        assert_eq!(info.more.ssh_server.as_deref(), Some("SSH-2.0-x"));
    }
}
