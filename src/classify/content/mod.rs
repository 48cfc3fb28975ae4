//! Content classification: names a session's application protocol from its payload bytes and
//! records the details users filter on (TLS SNI and JA4, HTTP Host and URI, DNS names, SSH and
//! mail/FTP banners, QUIC SNI, DHCP host names...).
//!
//! Owns one [`ContentClassifier`] per session, fed the session's in-order TCP bytes per
//! direction ([`ContentClassifier::on_stream`], in chunks of any size) or its UDP payloads
//! ([`ContentClassifier::on_datagram`]); [`ContentClassifier::finish`] yields a [`ContentInfo`].
//! Each protocol has its own file with a detector and a parser; maintained crates parse where
//! they exist (tls-parser, httparse, simple-dns), the rest is hand-written.
//!
//! Promises: bytes are attacker-controlled, so nothing here panics, loops without bound or
//! allocates without bound. An idle classifier is a few bytes; the first payload allocates one
//! work area holding a per-direction prefix buffer of at most [`PREFIX_CAP`] bytes, kept only
//! until the protocol's header has been read (a chunk that holds a whole header is parsed in
//! place, without copying). [`ContentClassifier::wants_more`] turns false as soon as everything
//! that will be recorded is known (or the protocol is unknown), so callers stop feeding.
//! Ports only choose which detector is tried first and settle ambiguous cases (a `220` greeting
//! is SMTP or FTP); TLS, HTTP, SSH, QUIC, DHCP, SSDP and the mail banners are found on any port.

mod banner;
mod dhcp;
mod dns;
mod http;
mod netbios;
mod ntp;
mod quic;
mod ssdp;
mod ssh;
mod tls;

#[cfg(test)]
mod corpus_check;
#[cfg(test)]
mod sample_captures;

use crate::session::Proto;
use std::borrow::Cow;

/// Most bytes kept per direction while a header is incomplete (a TLS ClientHello with
/// post-quantum key shares is about 2 KiB; HTTP request headers rarely pass 8 KiB).
pub const PREFIX_CAP: usize = 16 * 1024;
/// Stream chunks per direction looked at before deciding a direction holds no known protocol
/// (interactive sessions can deliver a byte at a time).
const UNDECIDED_CHUNKS: u8 = 32;
/// Datagrams looked at before giving up on an unknown UDP session.
const UNDECIDED_DATAGRAMS: u8 = 6;
/// Datagrams looked at after the protocol is known, while details are still missing.
const DETAIL_DATAGRAMS: u8 = 8;
/// Longest text kept in one detail field (bytes, before lossy UTF-8 conversion).
pub const TEXT_CAP: usize = 256;
/// Longest URI kept.
pub const URI_CAP: usize = 1024;
/// Most DNS answers kept.
pub const MAX_DNS_ANSWERS: usize = 8;

/// What the payload showed. Text comes from packets: it is length-capped and invalid UTF-8 is
/// replaced, but otherwise raw (writers quote or escape it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentInfo {
    /// Service name, Zeek's where Zeek has one: `ssl`, `http`, `dns`, `ssh`, `smtp`, `imap`,
    /// `pop3`, `ftp`, `quic`, `ntp`, `dhcp`, `smb`; and `mdns`, `llmnr`, `netbios-ns` (Zeek's
    /// DNS analyser reads these and says `dns`), `netbios-dgm`, `netbios-ssn` and `ssdp` (IANA's
    /// names; Zeek has no analyser for them).
    pub service: &'static str,
    /// The name the client asked for: TLS or QUIC SNI, HTTP Host (without a port), DNS query name.
    pub server_name: Option<String>,
    /// Content showed the originator acting as the server (it sent the first DNS response,
    /// an NTP server reply, a TLS ServerHello or an HTTP response before any request).
    pub orig_is_server: bool,

    /// `TLSv13`, `TLSv12`, `TLSv11`, `TLSv10`, `SSLv3`, `SSLv2` (Zeek's names): the version the
    /// server chose, or without a ServerHello the highest the client offered.
    pub tls_version: Option<&'static str>,
    /// ALPN protocols the client offered, in its order, joined by `,`.
    pub tls_alpn: Option<String>,
    /// JA4 TLS client fingerprint (FoxIO's JA4, hashed form), also for QUIC (`q` prefix).
    pub ja4: Option<String>,

    pub http_method: Option<Cow<'static, str>>,
    /// The Host header as sent (with any port).
    pub http_host: Option<String>,
    pub http_uri: Option<String>,
    pub http_user_agent: Option<String>,
    pub http_status: Option<u16>,

    /// First question's name (also in `server_name`).
    pub dns_query: Option<String>,
    /// Query type mnemonic (`A`, `AAAA`, `PTR`, ... or `TYPE<n>`).
    pub dns_qtype: Option<Cow<'static, str>>,
    /// Response code mnemonic (`NOERROR`, `NXDOMAIN`, ...).
    pub dns_rcode: Option<&'static str>,
    /// Up to [`MAX_DNS_ANSWERS`] answers of the first response: addresses, names, or the type.
    pub dns_answers: Vec<String>,
    /// The addresses among those answers (A and AAAA records), for the hidden-session
    /// analysis, which would otherwise parse them back out of the text.
    pub dns_answer_addresses: Vec<std::net::IpAddr>,

    /// The rarer protocols' fields, apart (see [`More`]).
    pub more: More,
}

/// The fields of the rarer protocols (NetBIOS, SSH, mail and FTP greetings, QUIC, DHCP, NTP,
/// SSDP), read through [`More`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoreInfo {
    /// The decoded NetBIOS name with its `<xx>` suffix: the name asked (name service), a
    /// datagram's source name, a session request's called name.
    pub netbios_name: Option<String>,

    /// SSH identification strings (`SSH-2.0-OpenSSH_9.6`), client and server.
    pub ssh_client: Option<String>,
    pub ssh_server: Option<String>,

    /// First line of an SMTP, IMAP, POP3 or FTP server greeting.
    pub banner: Option<String>,

    /// QUIC version: `1`, `2`, `draft-29`, `Q046`, ... (or hex for unknown ones).
    pub quic_version: Option<String>,

    /// DHCP option 12 and option 60 from the client.
    pub dhcp_hostname: Option<String>,
    pub dhcp_vendor_class: Option<String>,

    /// NTP version (1-4) and mode name (`client`, `server`, `symmetric active`, ...).
    pub ntp_version: Option<u8>,
    pub ntp_mode: Option<&'static str>,

    /// SSDP search target (`ST`) or notification type (`NT`).
    pub ssdp_target: Option<String>,
}

/// [`MoreInfo`] boxed when a session has any of it. Nearly every session has none (DNS, HTTP
/// and TLS make the benchmark's), and every classified session's findings are allocated and
/// written whole: ~210 bytes of empty fields inline cost one thread 2-4% on the 1 GiB
/// benchmark capture (docs/performance.md, "thirteenth session"). Reads see the empty
/// [`MoreInfo`] when there is no box.
#[derive(Debug, Clone, Default)]
pub struct More(Option<Box<MoreInfo>>);

/// What a session without any of the rarer fields reads.
static NO_MORE: MoreInfo = MoreInfo {
    netbios_name: None,
    ssh_client: None,
    ssh_server: None,
    banner: None,
    quic_version: None,
    dhcp_hostname: None,
    dhcp_vendor_class: None,
    ntp_version: None,
    ntp_mode: None,
    ssdp_target: None,
};

impl More {
    /// The fields, to be written (boxed now if they were not).
    pub fn get_mut(&mut self) -> &mut MoreInfo {
        self.0.get_or_insert_with(Box::default)
    }
}

impl std::ops::Deref for More {
    type Target = MoreInfo;

    fn deref(&self) -> &MoreInfo {
        self.0.as_deref().unwrap_or(&NO_MORE)
    }
}

/// Equal when the fields are, boxed or not.
impl PartialEq for More {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for More {}

/// Copies packet text for a detail field: at most `cap` bytes, invalid UTF-8 replaced.
pub(crate) fn text(bytes: &[u8], cap: usize) -> String {
    let cut = bytes.get(..cap).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// A request method's text: borrowed for the methods HTTP and SSDP define (nearly every
/// request's), a [`text`] copy for any other.
pub(crate) fn method_text(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 11] = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE", "M-SEARCH",
        "NOTIFY",
    ];
    match KNOWN.iter().find(|known| **known == method) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(text(method.as_bytes(), TEXT_CAP)),
    }
}

/// [`text`] of a string already made: the string itself when it fits in `cap`.
pub(crate) fn capped_text(s: String, cap: usize) -> String {
    if s.len() <= cap {
        s
    } else {
        text(s.as_bytes(), cap)
    }
}

/// The protocols this module recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tls,
    Http,
    Ssh,
    DnsTcp,
    /// A `220` greeting that is SMTP or FTP; settled by its text, the client's first command or
    /// the port.
    MailOrFtp,
    Smtp,
    Ftp,
    Pop3,
    Imap,
    Dns,
    Mdns,
    Llmnr,
    NetbiosNs,
    NetbiosDgm,
    NetbiosSsn,
    Smb,
    Quic,
    Ntp,
    Dhcp,
    Ssdp,
}

impl Protocol {
    fn service(self) -> &'static str {
        match self {
            Protocol::Tls => "ssl",
            Protocol::Http => "http",
            Protocol::Ssh => "ssh",
            Protocol::DnsTcp | Protocol::Dns => "dns",
            Protocol::MailOrFtp | Protocol::Smtp => "smtp",
            Protocol::Ftp => "ftp",
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
            // Zeek reads these with its DNS analyser and names them `dns`; the port columns and
            // the DNS details tell them apart.
            Protocol::Mdns | Protocol::Llmnr | Protocol::NetbiosNs => "dns",
            Protocol::NetbiosDgm => "netbios-dgm",
            Protocol::NetbiosSsn => "netbios-ssn",
            Protocol::Smb => "smb",
            Protocol::Quic => "quic",
            Protocol::Ntp => "ntp",
            Protocol::Dhcp => "dhcp",
            Protocol::Ssdp => "ssdp",
        }
    }
}

/// A detector's verdict on the first bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detect {
    Yes(Protocol),
    No,
    NeedMore,
}

/// A stream parser's progress on one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Everything this direction will give has been recorded (or it cannot be parsed).
    Done,
    /// The header is not complete yet: keep these bytes and show them again, extended.
    NeedMore,
    /// Everything shown was read; more bytes of this direction are wanted.
    Continue,
}

/// Session ports, as told at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ports {
    pub orig: u16,
    pub resp: u16,
}

impl Ports {
    pub fn either(self, port: u16) -> bool {
        self.orig == port || self.resp == port
    }
}

#[derive(Debug, Default)]
struct Direction {
    /// Bytes kept while the header is incomplete (empty when the last chunk was parsed in place).
    prefix: Vec<u8>,
    /// This direction will not be looked at again.
    done: bool,
    /// No detector matched this direction's first bytes.
    no_match: bool,
    chunks: u8,
}

impl Direction {
    /// Remembers `data` for the next chunk (the header is split), up to [`PREFIX_CAP`]. Returns
    /// false when the cap is reached: the header is too long to be read.
    fn keep(&mut self, data: &[u8], already_in_prefix: bool) -> bool {
        if !already_in_prefix {
            let room = PREFIX_CAP.saturating_sub(self.prefix.len());
            let take = data.get(..room).unwrap_or(data);
            self.prefix.extend_from_slice(take);
        }
        self.prefix.len() < PREFIX_CAP
    }

    fn release(&mut self) {
        self.prefix = Vec::new();
    }
}

/// What the classifier found in a finished session: a [`ContentInfo`] that stays in the
/// allocation the classifier worked in, so that ending a session neither copies its findings
/// (328 bytes) nor allocates for them.
#[derive(Debug)]
pub struct Findings(Box<Work>);

impl std::ops::Deref for Findings {
    type Target = ContentInfo;

    fn deref(&self) -> &ContentInfo {
        &self.0.info
    }
}

impl std::ops::DerefMut for Findings {
    fn deref_mut(&mut self) -> &mut ContentInfo {
        &mut self.0.info
    }
}

impl Findings {
    /// The findings, moved out of the classifier's allocation.
    pub fn into_info(self) -> ContentInfo {
        self.0.info
    }
}

impl From<ContentInfo> for Findings {
    fn from(info: ContentInfo) -> Self {
        Findings(Box::new(Work {
            info,
            ..Work::default()
        }))
    }
}

impl Clone for Findings {
    fn clone(&self) -> Self {
        Findings::from(self.0.info.clone())
    }
}

#[derive(Debug, Default)]
struct Work {
    orig: Direction,
    resp: Direction,
    protocol: Option<Protocol>,
    info: ContentInfo,
    datagrams: u8,
    quic: Option<Box<quic::QuicState>>,
    /// Mail and FTP sessions: the command/reply dialogue, watched for a STARTTLS upgrade.
    dialogue: banner::Dialogue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Looking,
    /// Nothing more to learn: either done or no protocol found.
    Finished,
}

/// Per-session content classifier (see the module doc).
#[derive(Debug)]
pub struct ContentClassifier {
    proto: Proto,
    ports: Ports,
    status: Status,
    work: Option<Box<Work>>,
}

impl ContentClassifier {
    /// A classifier for one session. `orig_port`/`resp_port` only order the detectors.
    pub fn new(proto: Proto, orig_port: u16, resp_port: u16) -> Self {
        let status = match proto {
            Proto::Tcp | Proto::Udp => Status::Looking,
            _ => Status::Finished,
        };
        ContentClassifier {
            proto,
            ports: Ports {
                orig: orig_port,
                resp: resp_port,
            },
            status,
            work: None,
        }
    }

    /// False once everything that will be recorded is known (or nothing will be).
    pub fn wants_more(&self) -> bool {
        self.status == Status::Looking
    }

    /// What was found so far.
    pub fn info(&self) -> Option<&ContentInfo> {
        let work = self.work.as_deref()?;
        work.protocol.map(|_| &work.info)
    }

    /// Whether content showed the originator answering as the server: the session's first
    /// datagram a DNS response, or an NTP server reply (see [`ContentInfo::orig_is_server`]).
    pub fn orig_is_server(&self) -> bool {
        self.info().is_some_and(|info| info.orig_is_server)
    }

    /// The session's roles were swapped (see [`Self::orig_is_server`]): what this classifier
    /// knew of the originator is the responder's from here on.
    pub fn flip_roles(&mut self) {
        std::mem::swap(&mut self.ports.orig, &mut self.ports.resp);
        if let Some(work) = self.work.as_deref_mut() {
            std::mem::swap(&mut work.orig, &mut work.resp);
            work.info.orig_is_server = false;
        }
    }

    /// Asks the CPU to start loading what [`Self::finish`] reads (see [`crate::prefetch`]).
    pub fn prefetch(&self) {
        if let Some(work) = &self.work {
            crate::prefetch::prefetch(&**work);
        }
    }

    /// Asks the CPU to start loading the text the session's row will be written from (its
    /// findings' strings, allocated when they were parsed and long cold): call after
    /// [`Self::prefetch`] had time to bring the findings themselves.
    pub fn prefetch_text(&self) {
        let Some(work) = &self.work else {
            return;
        };
        let info = &work.info;
        for text in [
            &info.server_name,
            &info.dns_query,
            &info.http_host,
            &info.http_uri,
            &info.http_user_agent,
            &info.ja4,
        ]
        .into_iter()
        .flatten()
        {
            crate::prefetch::prefetch_bytes(text.as_bytes());
        }
        // The answers' list (its strings' headers; their bytes are a load further).
        crate::prefetch::prefetch_slice(info.dns_answers.as_slice());
    }

    /// What was found; `None` when no protocol was recognised.
    pub fn finish(self) -> Option<Findings> {
        let mut work = self.work?;
        work.protocol?;
        // The working state goes; the findings stay where they were found, with no copy.
        work.orig.release();
        work.resp.release();
        work.quic = None;
        Some(Findings(work))
    }

    fn work(&mut self) -> &mut Work {
        self.work.get_or_insert_with(Box::default)
    }

    /// In-order reassembled TCP bytes of one direction.
    pub fn on_stream(&mut self, from_orig: bool, data: &[u8]) {
        if self.status != Status::Looking || data.is_empty() || self.proto != Proto::Tcp {
            return;
        }
        let ports = self.ports;
        let work = self.work();
        let (dir, _) = work.directions(from_orig);
        if dir.done || dir.no_match {
            return;
        }
        dir.chunks = dir.chunks.saturating_add(1);
        // Parse in place when nothing is pending; otherwise append and parse the prefix.
        let in_prefix = !dir.prefix.is_empty();
        if in_prefix {
            let _ = dir.keep(data, false);
        }
        let prefix = std::mem::take(&mut dir.prefix);
        let view: &[u8] = if in_prefix { &prefix } else { data };

        let mut keep_view = false;
        // The DNS detector records the message it parsed: nothing is left to read from it.
        let mut read_by_detector = false;
        if work.protocol.is_none() {
            match detect_stream(view, from_orig, ports, &mut work.info) {
                Detect::Yes(protocol) => {
                    work.protocol = Some(protocol);
                    work.info.service = protocol.service();
                    read_by_detector = protocol == Protocol::DnsTcp;
                }
                Detect::No => {
                    let (dir, _) = work.directions(from_orig);
                    dir.no_match = true;
                }
                Detect::NeedMore => keep_view = true,
            }
        }
        if let Some(protocol) = work.protocol {
            let progress = if read_by_detector {
                Progress::Done
            } else {
                work.parse_stream(protocol, view, from_orig, ports)
            };
            keep_view = progress == Progress::NeedMore;
            if progress == Progress::Done {
                let (dir, _) = work.directions(from_orig);
                dir.done = true;
            }
        }
        let undecided = work.protocol.is_none();
        let (dir, _) = work.directions(from_orig);
        dir.prefix = prefix;
        if !keep_view && !dir.done {
            // Everything pending was read (`Continue`): nothing to show again.
            dir.release();
        }
        if keep_view && !dir.done {
            let under_cap = dir.keep(data, in_prefix);
            if !under_cap {
                dir.done = true;
            }
            if undecided && (!under_cap || dir.chunks >= UNDECIDED_CHUNKS) {
                dir.no_match = true;
            }
        }
        let (dir, _) = work.directions(from_orig);
        if dir.done || dir.no_match {
            dir.release();
        }
        // A direction that matched nothing before the protocol was known is not read again.
        let finished = match work.protocol {
            Some(_) => {
                (work.orig.done || work.orig.no_match) && (work.resp.done || work.resp.no_match)
            }
            None => work.orig.no_match && work.resp.no_match,
        };
        if finished {
            work.orig.release();
            work.resp.release();
            work.quic = None;
            self.status = Status::Finished;
        }
    }

    /// One UDP payload.
    pub fn on_datagram(&mut self, from_orig: bool, payload: &[u8]) {
        if self.status != Status::Looking || self.proto != Proto::Udp {
            return;
        }
        let ports = self.ports;
        let work = self.work();
        work.datagrams = work.datagrams.saturating_add(1);
        if work.protocol.is_none() {
            if let Some(protocol) = detect_datagram(payload, ports) {
                work.protocol = Some(protocol);
                work.info.service = protocol.service();
                work.datagrams = 1;
            } else if work.datagrams >= UNDECIDED_DATAGRAMS {
                self.status = Status::Finished;
                return;
            } else {
                return;
            }
        }
        if let Some(protocol) = work.protocol {
            work.parse_datagram(protocol, payload, from_orig, ports);
        }
        if (work.orig.done && work.resp.done) || work.datagrams >= DETAIL_DATAGRAMS {
            work.quic = None;
            self.status = Status::Finished;
        }
    }
}

impl Work {
    /// (this direction, the other direction)
    fn directions(&mut self, from_orig: bool) -> (&mut Direction, &mut Direction) {
        if from_orig {
            (&mut self.orig, &mut self.resp)
        } else {
            (&mut self.resp, &mut self.orig)
        }
    }

    fn parse_stream(
        &mut self,
        protocol: Protocol,
        view: &[u8],
        from_orig: bool,
        ports: Ports,
    ) -> Progress {
        match protocol {
            Protocol::Tls => tls::parse_stream(view, &mut self.info),
            Protocol::Http => http::parse_stream(view, from_orig, &mut self.info),
            Protocol::Ssh => ssh::parse_stream(view, from_orig, &mut self.info),
            Protocol::DnsTcp => dns::parse_stream(view, from_orig, &mut self.info),
            Protocol::NetbiosSsn | Protocol::Smb => {
                // Nothing more is read from either side.
                self.orig.done = true;
                self.resp.done = true;
                netbios::parse_stream(view, &mut self.info)
            }
            Protocol::MailOrFtp
            | Protocol::Smtp
            | Protocol::Ftp
            | Protocol::Pop3
            | Protocol::Imap => {
                let step = banner::parse_stream(
                    &mut self.dialogue,
                    protocol,
                    view,
                    from_orig,
                    ports,
                    &mut self.info,
                );
                self.protocol = Some(step.protocol);
                if step.finished {
                    self.orig.done = true;
                    self.resp.done = true;
                }
                step.progress
            }
            // Datagram protocols never reach here on TCP.
            _ => Progress::Done,
        }
    }

    fn parse_datagram(
        &mut self,
        protocol: Protocol,
        payload: &[u8],
        from_orig: bool,
        ports: Ports,
    ) {
        match protocol {
            Protocol::Dns | Protocol::Mdns | Protocol::Llmnr => {
                if dns::parse_datagram(payload, from_orig, self.datagrams, &mut self.info) {
                    self.orig.done = true;
                    self.resp.done = true;
                }
            }
            Protocol::NetbiosDgm => {
                netbios::parse_datagram(payload, &mut self.info);
                self.orig.done = true;
                self.resp.done = true;
            }
            Protocol::NetbiosNs => {
                dns::parse_netbios(payload, &mut self.info);
                self.orig.done = true;
                self.resp.done = true;
            }
            Protocol::Quic => {
                let state = self.quic.get_or_insert_with(Box::default);
                if quic::parse_datagram(state, payload, from_orig, &mut self.info) {
                    self.orig.done = true;
                    self.resp.done = true;
                }
            }
            Protocol::Ntp => {
                ntp::parse_datagram(payload, from_orig, self.datagrams, &mut self.info);
                self.orig.done = true;
                self.resp.done = true;
            }
            Protocol::Dhcp => {
                if dhcp::parse_datagram(payload, &mut self.info) {
                    self.orig.done = true;
                    self.resp.done = true;
                }
            }
            Protocol::Ssdp => {
                ssdp::parse_datagram(payload, ports, &mut self.info);
                self.orig.done = true;
                self.resp.done = true;
            }
            _ => {
                self.orig.done = true;
                self.resp.done = true;
            }
        }
    }
}

/// Runs the stream detectors on the first bytes of one direction. `Yes` from any wins; `No`
/// only when every detector says no. DNS, tried last, records its message into `info` when it
/// says `Yes` (see [`dns::detect_and_read_stream`]).
fn detect_stream(view: &[u8], from_orig: bool, ports: Ports, info: &mut ContentInfo) -> Detect {
    type Detector = fn(&[u8], bool, Ports) -> Detect;
    const DETECTORS: [Detector; 5] = [
        tls::detect,
        http::detect,
        ssh::detect,
        banner::detect,
        netbios::detect_stream,
    ];
    let mut need_more = false;
    for detector in DETECTORS {
        match detector(view, from_orig, ports) {
            Detect::Yes(protocol) => return Detect::Yes(protocol),
            Detect::NeedMore => need_more = true,
            Detect::No => {}
        }
    }
    match dns::detect_and_read_stream(view, from_orig, ports, info) {
        Detect::Yes(protocol) => return Detect::Yes(protocol),
        Detect::NeedMore => need_more = true,
        Detect::No => {}
    }
    if need_more {
        Detect::NeedMore
    } else {
        Detect::No
    }
}

/// Runs the datagram detectors on one UDP payload. Strong signatures (DHCP's magic cookie,
/// QUIC's long header, SSDP's request line) are checked on any port; DNS-shaped protocols and
/// NTP need their port on either side, since their headers are too plain to tell from noise.
fn detect_datagram(payload: &[u8], ports: Ports) -> Option<Protocol> {
    if dhcp::detect(payload) {
        return Some(Protocol::Dhcp);
    }
    if ports.either(137) && dns::detect_netbios(payload) {
        return Some(Protocol::NetbiosNs);
    }
    if netbios::detect_datagram(payload, ports) {
        return Some(Protocol::NetbiosDgm);
    }
    if ports.either(123) && ntp::detect(payload) {
        return Some(Protocol::Ntp);
    }
    if let Some(protocol) = dns::detect_datagram(payload, ports) {
        return Some(protocol);
    }
    if ssdp::detect(payload, ports) {
        return Some(Protocol::Ssdp);
    }
    if quic::detect(payload) {
        return Some(Protocol::Quic);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_written_as_sent_whether_known_or_not() {
        assert!(matches!(method_text("GET"), Cow::Borrowed("GET")));
        assert!(matches!(method_text("M-SEARCH"), Cow::Borrowed("M-SEARCH")));
        // Methods are case-sensitive: a lower-case one is another method, kept as sent.
        assert_eq!(method_text("get"), "get");
        assert_eq!(method_text("PROPFIND"), "PROPFIND");
        let long = "X".repeat(TEXT_CAP + 10);
        assert_eq!(method_text(&long).len(), TEXT_CAP);
    }

    #[test]
    fn the_rarer_fields_read_empty_until_written_and_compare_by_value() {
        let mut info = ContentInfo::default();
        assert_eq!(info.more.ssh_client, None);
        assert_eq!(info.more.ntp_mode, None);
        // Boxed but empty equals never boxed: equality is the fields'.
        info.more.get_mut();
        assert_eq!(info, ContentInfo::default());
        info.more.get_mut().ssh_client = Some("SSH-2.0-x".to_string());
        assert_eq!(info.more.ssh_client.as_deref(), Some("SSH-2.0-x"));
        assert_ne!(info, ContentInfo::default());
        assert_eq!(info.clone(), info);
    }

    #[test]
    fn idle_classifier_is_small() {
        assert!(std::mem::size_of::<ContentClassifier>() <= 24);
    }

    #[test]
    fn icmp_wants_nothing() {
        let c = ContentClassifier::new(Proto::Icmp, 8, 0);
        assert!(!c.wants_more());
    }

    #[test]
    fn unknown_stream_gives_up_after_both_directions_fail() {
        let mut c = ContentClassifier::new(Proto::Tcp, 40000, 9999);
        c.on_stream(true, b"\x00\x01binary junk that matches nothing\r\n");
        assert!(c.wants_more());
        c.on_stream(false, b"\xffmore junk\r\n");
        assert!(!c.wants_more());
        assert!(c.finish().is_none());
    }

    #[test]
    fn unknown_datagrams_give_up() {
        let mut c = ContentClassifier::new(Proto::Udp, 40000, 9999);
        for _ in 0..UNDECIDED_DATAGRAMS {
            c.on_datagram(true, b"\x01\x02\x03 nothing known");
        }
        assert!(!c.wants_more());
        assert!(c.finish().is_none());
    }

    /// Random bytes behind each protocol's signature, in random chunk sizes and directions, on
    /// each protocol's port: no panic.
    #[test]
    fn random_bytes_after_signatures_do_not_panic() {
        let prefixes: [&[u8]; 14] = [
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x17\x03\x03\x00\x10",
            b"GET / HTTP/1.1\r\nHost: ",
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-",
            b"220 ",
            b"+OK ",
            b"* OK ",
            b"\x00\x20\x12\x34\x01\x00\x00\x01",
            b"\x81\x00\x00\x44\x20",
            b"\x00\x00\x00\x40\xfeSMB",
            b"\xc3\x00\x00\x00\x01\x08\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00",
            b"\x09\x01\x02\x03\x04\x05\x06\x07\x08Q043",
            b"",
        ];
        let ports = [
            443, 80, 22, 25, 110, 143, 53, 139, 445, 123, 67, 137, 138, 5353, 1900,
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let prefix = prefixes[round % prefixes.len()];
            let port = ports[(next() as usize) % ports.len()];
            let mut bytes = prefix.to_vec();
            let len = (next() % 3000) as usize;
            bytes.extend((0..len).map(|_| next() as u8));
            let proto = if round % 2 == 0 {
                Proto::Tcp
            } else {
                Proto::Udp
            };
            let mut c = ContentClassifier::new(proto, 40000, port);
            let mut rest = bytes.as_slice();
            let mut from_orig = true;
            while !rest.is_empty() {
                let take = ((next() % 700) as usize + 1).min(rest.len());
                let (chunk, tail) = rest.split_at(take);
                if proto == Proto::Tcp {
                    c.on_stream(from_orig, chunk);
                } else {
                    c.on_datagram(from_orig, chunk);
                }
                from_orig = next() % 3 != 0;
                rest = tail;
            }
            let _ = c.finish();
        }
    }

    #[test]
    fn text_caps_and_replaces_invalid_utf8() {
        assert_eq!(text(b"ab\xffcd", 3), "ab\u{fffd}");
        assert_eq!(text(b"abc", 10), "abc");
    }
}
