//! Line-based protocols where the server speaks first: SMTP, FTP (`220` greetings), POP3
//! (`+OK`), IMAP (`* OK`, `* PREAUTH`, `* BYE`). Records the greeting's first line.
//!
//! A `220` greeting is SMTP or FTP: its text decides when it names one (`ESMTP`, `FTP`),
//! otherwise the client's first command (`EHLO`/`HELO` vs `USER`/`AUTH`/`FEAT`...), otherwise the
//! port (21 FTP, 25/465/587/2525 SMTP); SMTP when nothing tells. Hand-written: these greetings
//! are one line. Promise: no panic on any bytes.

use super::{ContentInfo, Detect, Ports, Progress, Protocol, TEXT_CAP, text};

const SMTP_PORTS: [u16; 4] = [25, 465, 587, 2525];
const FTP_PORTS: [u16; 2] = [21, 990];

pub(super) fn detect(view: &[u8], from_orig: bool, _ports: Ports) -> Detect {
    let greetings: [(&[u8], Protocol); 7] = [
        (b"220 ", Protocol::MailOrFtp),
        (b"220-", Protocol::MailOrFtp),
        (b"+OK", Protocol::Pop3),
        (b"* OK", Protocol::Imap),
        (b"* PREAUTH", Protocol::Imap),
        (b"* BYE", Protocol::Imap),
        // A client seen first (capture started after the greeting).
        (b"EHLO ", Protocol::Smtp),
    ];
    let mut need_more = false;
    for (pattern, protocol) in greetings {
        // Client commands only count from the originator, greetings from either side.
        if protocol == Protocol::Smtp && !from_orig {
            continue;
        }
        let n = view.len().min(pattern.len());
        if view.get(..n) == pattern.get(..n) {
            if n == pattern.len() {
                return Detect::Yes(protocol);
            }
            need_more = true;
        }
    }
    if need_more {
        Detect::NeedMore
    } else {
        Detect::No
    }
}

/// First line of `view`, without its line ending; `None` until a line ends.
fn first_line(view: &[u8]) -> Option<&[u8]> {
    let end = view.iter().position(|b| *b == b'\n')?;
    let line = view.get(..end)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

fn contains_word(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Reads a greeting (server side) or the first command (client side). Returns the progress and
/// the protocol as it now stands.
pub(super) fn parse_stream(
    protocol: Protocol,
    view: &[u8],
    from_orig: bool,
    ports: Ports,
    info: &mut ContentInfo,
) -> (Progress, Protocol) {
    let Some(line) = first_line(view) else {
        // A greeting line longer than the cap is cut by the caller; nothing else to wait for.
        return (Progress::NeedMore, protocol);
    };
    let is_greeting =
        line.starts_with(b"220") || line.starts_with(b"+OK") || line.starts_with(b"* ");
    if is_greeting && info.banner.is_none() {
        info.banner = Some(text(line, TEXT_CAP));
        let settled = if protocol != Protocol::MailOrFtp {
            protocol
        } else if contains_word(line, b"FTP") {
            Protocol::Ftp
        } else if contains_word(line, b"SMTP") || contains_word(line, b"mail") {
            Protocol::Smtp
        } else if FTP_PORTS.iter().any(|p| ports.either(*p)) {
            Protocol::Ftp
        } else if SMTP_PORTS.iter().any(|p| ports.either(*p)) {
            Protocol::Smtp
        } else {
            Protocol::MailOrFtp
        };
        return (Progress::Done, settled);
    }
    if protocol == Protocol::MailOrFtp && from_orig {
        let command: Vec<u8> = line
            .iter()
            .take_while(|b| **b != b' ')
            .take(8)
            .map(u8::to_ascii_uppercase)
            .collect();
        let settled = match command.as_slice() {
            b"EHLO" | b"HELO" | b"MAIL" | b"STARTTLS" => Protocol::Smtp,
            b"USER" | b"AUTH" | b"FEAT" | b"SYST" | b"OPTS" | b"PASV" | b"PORT" | b"PWD"
            | b"TYPE" | b"EPSV" | b"CWD" => Protocol::Ftp,
            _ => Protocol::MailOrFtp,
        };
        return (Progress::Done, settled);
    }
    (Progress::Done, protocol)
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    fn classify(port: u16, server: &[u8], client: &[u8]) -> (String, Option<String>, bool) {
        let mut c = ContentClassifier::new(Proto::Tcp, 40000, port);
        c.on_stream(false, server);
        if c.wants_more() {
            c.on_stream(true, client);
        }
        let done = !c.wants_more();
        let info = c.finish().unwrap();
        (info.service.to_string(), info.banner, done)
    }

    #[test]
    fn greetings_name_the_protocol() {
        // Greetings as Postfix, vsftpd, Dovecot POP3 and Dovecot IMAP send them.
        let (s, b, done) = classify(
            25,
            b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n",
            b"",
        );
        assert_eq!((s.as_str(), done), ("smtp", true));
        assert_eq!(
            b.as_deref(),
            Some("220 mail.example.test ESMTP Postfix (Debian/GNU)")
        );
        assert_eq!(classify(2121, b"220 (vsFTPd 3.0.3)\r\n", b"").0, "ftp");
        assert_eq!(
            classify(110, b"+OK Dovecot (Debian) ready.\r\n", b"").0,
            "pop3"
        );
        assert_eq!(
            classify(
                143,
                b"* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot (Debian) ready.\r\n",
                b""
            )
            .0,
            "imap"
        );
    }

    #[test]
    fn plain_220_is_settled_by_the_client_command_then_the_port() {
        assert_eq!(
            classify(3000, b"220 welcome\r\n", b"USER anonymous\r\n").0,
            "ftp"
        );
        assert_eq!(
            classify(3000, b"220 welcome\r\n", b"EHLO client\r\n").0,
            "smtp"
        );
        assert_eq!(classify(21, b"220 welcome\r\n", b"").0, "ftp");
    }
}
