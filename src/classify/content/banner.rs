//! Line-based protocols where the server speaks first: SMTP, FTP (`220` greetings), POP3
//! (`+OK`), IMAP (`* OK`, `* PREAUTH`, `* BYE`). Records the greeting's first line, then follows
//! the command/reply dialogue for an upgrade to TLS (SMTP and IMAP `STARTTLS`, POP3 `STLS`, FTP
//! `AUTH TLS`/`AUTH SSL`): once the server accepts, both directions are read as TLS and the
//! service becomes Zeek's `smtp,ssl` style name.
//!
//! A `220` greeting is SMTP or FTP: its text decides when it names one (`ESMTP`, `FTP`),
//! otherwise the client's first command (`EHLO`/`HELO` vs `USER`/`AUTH`/`FEAT`...), otherwise the
//! port (21 FTP, 25/465/587/2525 SMTP); SMTP when nothing tells. Hand-written: these are short
//! text lines. Promise: no panic on any bytes; the dialogue is followed for at most
//! [`MAX_CLIENT_LINES`] client lines and [`MAX_SERVER_LINES`] server lines.

use super::{ContentInfo, Detect, Ports, Progress, Protocol, TEXT_CAP, text, tls};

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

/// Client commands looked at for an upgrade request before giving up.
const MAX_CLIENT_LINES: u8 = 16;
/// Server reply lines looked at (SMTP's EHLO reply is one line per extension).
const MAX_SERVER_LINES: u8 = 64;

/// Where a mail or FTP session's dialogue stands. A few bytes, kept in the session's work area.
#[derive(Debug, Default)]
pub(super) struct Dialogue {
    /// The client asked to upgrade to TLS and the server has not answered yet.
    asked: bool,
    /// The server accepted: both directions now carry TLS records.
    tls: bool,
    client_lines: u8,
    server_lines: u8,
    /// Per direction (orig, resp): bytes at the start of the pending view already read (the
    /// caller keeps a view whose last line is incomplete and shows it again, extended).
    read: [usize; 2],
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn contains_word(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The `n`th space-separated word of `line`, upper-cased into `out` (at most 8 bytes).
fn word_upper(line: &[u8], n: usize, out: &mut [u8; 8]) -> usize {
    let word = line.split(|b| *b == b' ').nth(n).unwrap_or_default();
    let mut len = 0;
    for (slot, byte) in out.iter_mut().zip(word) {
        *slot = byte.to_ascii_uppercase();
        len += 1;
    }
    if word.len() > out.len() { 0 } else { len }
}

/// True when a client line asks for TLS in this protocol.
fn asks_for_tls(protocol: Protocol, line: &[u8]) -> bool {
    let mut first = [0u8; 8];
    let n = word_upper(line, 0, &mut first);
    let first = first.get(..n).unwrap_or_default();
    match protocol {
        Protocol::Smtp | Protocol::MailOrFtp => first == b"STARTTLS",
        Protocol::Pop3 => first == b"STLS",
        Protocol::Ftp => {
            let mut second = [0u8; 8];
            let m = word_upper(line, 1, &mut second);
            first == b"AUTH" && matches!(second.get(..m), Some(b"TLS" | b"SSL" | b"TLS-C"))
        }
        Protocol::Imap => {
            // `<tag> STARTTLS`
            let mut second = [0u8; 8];
            let m = word_upper(line, 1, &mut second);
            second.get(..m) == Some(b"STARTTLS")
        }
        _ => false,
    }
}

/// The server's answer to an upgrade request: `Some(accepted)` on its final line, `None` for a
/// line that does not answer yet (IMAP untagged data, SMTP continuation lines).
fn upgrade_answer(protocol: Protocol, line: &[u8]) -> Option<bool> {
    match protocol {
        Protocol::Imap => {
            if line.starts_with(b"* ") || line.starts_with(b"+ ") {
                return None;
            }
            let mut status = [0u8; 8];
            let n = word_upper(line, 1, &mut status);
            Some(status.get(..n) == Some(b"OK"))
        }
        Protocol::Pop3 => Some(line.starts_with(b"+OK")),
        _ => {
            // Three digits, then `-` on every line but the last.
            if line.get(3) == Some(&b'-') {
                return None;
            }
            Some(match protocol {
                Protocol::Ftp => line.starts_with(b"234"),
                _ => line.starts_with(b"220"),
            })
        }
    }
}

/// Zeek's service name for a session upgraded to TLS.
pub(super) fn upgraded_service(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Imap => "imap,ssl",
        Protocol::Pop3 => "pop3,ssl",
        Protocol::Ftp => "ftp,ssl",
        _ => "smtp,ssl",
    }
}

/// Reads a greeting (server side) or the first command (client side) from one line. Returns
/// the protocol as it now stands.
fn first_line(
    protocol: Protocol,
    line: &[u8],
    from_orig: bool,
    ports: Ports,
    info: &mut ContentInfo,
) -> Protocol {
    let is_greeting =
        line.starts_with(b"220") || line.starts_with(b"+OK") || line.starts_with(b"* ");
    if !from_orig && is_greeting && info.more.banner.is_none() {
        info.more.get_mut().banner = Some(text(line, TEXT_CAP));
        return if protocol != Protocol::MailOrFtp {
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
    }
    if protocol == Protocol::MailOrFtp && from_orig {
        let mut command = [0u8; 8];
        let n = word_upper(line, 0, &mut command);
        return match command.get(..n).unwrap_or_default() {
            b"EHLO" | b"HELO" | b"MAIL" | b"STARTTLS" => Protocol::Smtp,
            b"USER" | b"AUTH" | b"FEAT" | b"SYST" | b"OPTS" | b"PASV" | b"PORT" | b"PWD"
            | b"TYPE" | b"EPSV" | b"CWD" => Protocol::Ftp,
            _ => Protocol::MailOrFtp,
        };
    }
    protocol
}

/// What one call on a direction's bytes ended with.
pub(super) struct Step {
    pub progress: Progress,
    pub protocol: Protocol,
    /// The dialogue is over (given up, refused, or both TLS hellos read): stop both directions.
    pub finished: bool,
}

/// Follows the dialogue on one direction's bytes (`view` starts where the caller's pending
/// bytes start; what was read of it before is skipped).
pub(super) fn parse_stream(
    dialogue: &mut Dialogue,
    mut protocol: Protocol,
    view: &[u8],
    from_orig: bool,
    ports: Ports,
    info: &mut ContentInfo,
) -> Step {
    let side = usize::from(!from_orig);
    let already = dialogue.read.get(side).copied().unwrap_or(0);
    let mut pos = already;
    let step = |progress, protocol, finished| Step {
        progress,
        protocol,
        finished,
    };
    if dialogue.tls {
        let rest = view.get(pos..).unwrap_or_default();
        let progress = tls::parse_stream(rest, info);
        if progress != Progress::NeedMore
            && let Some(read) = dialogue.read.get_mut(side)
        {
            *read = 0;
        }
        return step(progress, protocol, false);
    }
    loop {
        let rest = view.get(pos..).unwrap_or_default();
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            let progress = if rest.is_empty() {
                pos = 0;
                Progress::Continue
            } else if rest.len() > TEXT_CAP * 4 {
                // A "line" this long is not this dialogue.
                return step(Progress::Done, protocol, true);
            } else {
                Progress::NeedMore
            };
            if let Some(read) = dialogue.read.get_mut(side) {
                *read = pos;
            }
            return step(progress, protocol, false);
        };
        let line = strip_cr(rest.get(..end).unwrap_or_default());
        pos += end + 1;
        let first = if from_orig {
            dialogue.client_lines == 0
        } else {
            dialogue.server_lines == 0
        };
        if first {
            protocol = first_line(protocol, line, from_orig, ports, info);
            info.service = protocol.service();
        }
        if from_orig {
            dialogue.client_lines = dialogue.client_lines.saturating_add(1);
            if asks_for_tls(protocol, line) {
                dialogue.asked = true;
            } else if dialogue.client_lines > MAX_CLIENT_LINES {
                return step(Progress::Done, protocol, true);
            }
            continue;
        }
        dialogue.server_lines = dialogue.server_lines.saturating_add(1);
        if dialogue.asked && !first {
            match upgrade_answer(protocol, line) {
                None => {}
                Some(false) => return step(Progress::Done, protocol, true),
                Some(true) => {
                    if protocol == Protocol::MailOrFtp {
                        protocol = Protocol::Smtp;
                    }
                    dialogue.tls = true;
                    dialogue.asked = false;
                    info.service = upgraded_service(protocol);
                    // Whatever follows the answer in this view is already TLS.
                    let rest = view.get(pos..).unwrap_or_default();
                    if rest.is_empty() {
                        if let Some(read) = dialogue.read.get_mut(side) {
                            *read = 0;
                        }
                        return step(Progress::Continue, protocol, false);
                    }
                    if let Some(read) = dialogue.read.get_mut(side) {
                        *read = pos;
                    }
                    let progress = tls::parse_stream(rest, info);
                    if progress != Progress::NeedMore
                        && let Some(read) = dialogue.read.get_mut(side)
                    {
                        *read = 0;
                    }
                    return step(progress, protocol, false);
                }
            }
        }
        if dialogue.server_lines > MAX_SERVER_LINES {
            return step(Progress::Done, protocol, true);
        }
    }
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
        let info = c.finish().unwrap().into_info();
        (info.service.to_string(), info.more.banner.clone(), done)
    }

    #[test]
    fn greetings_name_the_protocol() {
        // Greetings as Postfix, vsftpd, Dovecot POP3 and Dovecot IMAP send them.
        let (s, b, done) = classify(
            25,
            b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n",
            b"",
        );
        // Still watching the dialogue for a STARTTLS.
        assert_eq!((s.as_str(), done), ("smtp", false));
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

    /// A TLS 1.2 ClientHello record with SNI `mail.example.test` (RFC 8446 layout, no other
    /// extension).
    fn client_hello() -> Vec<u8> {
        let name = b"mail.example.test";
        let mut sni = vec![0x00, 0x00];
        let list_len = 3 + name.len();
        sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
        sni.extend_from_slice(&(list_len as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        body.extend_from_slice(&sni);
        let mut handshake = vec![0x01, 0x00];
        handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    /// Feeds a dialogue (server and client turns in order), then the ClientHello split in two.
    fn upgrade(port: u16, turns: &[(bool, &[u8])]) -> crate::classify::content::ContentInfo {
        let mut c = ContentClassifier::new(Proto::Tcp, 40000, port);
        for (from_orig, bytes) in turns {
            c.on_stream(*from_orig, bytes);
        }
        let hello = client_hello();
        let (a, b) = hello.split_at(20);
        c.on_stream(true, a);
        c.on_stream(true, b);
        c.finish().unwrap().into_info()
    }

    #[test]
    fn starttls_upgrades_each_protocol_to_tls() {
        // Dialogues laid out as RFC 3207 (SMTP), RFC 2595 (IMAP, POP3) and RFC 4217 (FTP) show.
        let smtp = upgrade(
            25,
            &[
                (false, b"220 mail.example.test ESMTP\r\n"),
                (true, b"EHLO client.example.test\r\n"),
                (false, b"250-mail.example.test\r\n250-PIPELINING\r\n"),
                (false, b"250 STARTTLS\r\n"),
                (true, b"STARTTLS\r\n"),
                (false, b"220 Go ahead\r\n"),
            ],
        );
        let imap = upgrade(
            143,
            &[
                (false, b"* OK IMAP4rev1 Service Ready\r\n"),
                (true, b"a001 CAPABILITY\r\n"),
                (
                    false,
                    b"* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK done\r\n",
                ),
                (true, b"a002 STARTTLS\r\n"),
                (false, b"a002 OK Begin TLS negotiation now\r\n"),
            ],
        );
        let pop3 = upgrade(
            110,
            &[
                (false, b"+OK POP3 server ready\r\n"),
                (true, b"STLS\r\n"),
                (false, b"+OK Begin TLS negotiation\r\n"),
            ],
        );
        let ftp = upgrade(
            21,
            &[
                (false, b"220 FTP server ready\r\n"),
                (true, b"AUTH TLS\r\n"),
                (false, b"234 AUTH command ok\r\n"),
            ],
        );
        for (info, service) in [
            (&smtp, "smtp,ssl"),
            (&imap, "imap,ssl"),
            (&pop3, "pop3,ssl"),
            (&ftp, "ftp,ssl"),
        ] {
            assert_eq!(info.service, service);
            assert_eq!(info.server_name.as_deref(), Some("mail.example.test"));
            assert_eq!(info.tls_version, Some("TLSv12"));
            assert!(
                info.ja4
                    .as_deref()
                    .is_some_and(|j| j.starts_with("t12d0101"))
            );
        }
        assert_eq!(
            smtp.more.banner.as_deref(),
            Some("220 mail.example.test ESMTP")
        );
    }

    #[test]
    fn refused_or_absent_starttls_stays_plain() {
        let refused = upgrade(
            143,
            &[
                (false, b"* OK ready\r\n"),
                (true, b"a1 STARTTLS\r\n"),
                (false, b"a1 NO not now\r\n"),
            ],
        );
        assert_eq!(refused.service, "imap");
        assert_eq!(refused.server_name, None);
        // A command split across chunks, then no upgrade at all: after enough commands the
        // classifier stops.
        let mut c = ContentClassifier::new(Proto::Tcp, 40000, 110);
        c.on_stream(false, b"+OK ready\r\n");
        c.on_stream(true, b"US");
        c.on_stream(true, b"ER a\r\n");
        for _ in 0..20 {
            c.on_stream(true, b"NOOP\r\n");
        }
        assert!(!c.wants_more());
        assert_eq!(c.finish().unwrap().service, "pop3");
    }
}
