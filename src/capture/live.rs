//! Live capture from a network interface through libpcap (cargo feature `live`).
//!
//! Owns opening an interface (snaplen, promiscuous mode, kernel buffer, BPF filter), reading
//! frames as a [`PacketSource`] so the analysis after it is the one used for files, the
//! kernel's drop counters, and the user-facing errors: no permission (with how to get it),
//! unknown interface (with the real ones), bad filter (libpcap's message with the filter).
//! Promises: a read timeout so a quiet interface still returns to the caller (see
//! [`PacketSource::waiting`]); a progress call at least every [`PROGRESS_EVERY_CAPTURE_NANOS`] of
//! capture time under traffic, decided from packet timestamps (no clock reads per packet);
//! no panic on anything libpcap hands over.

use super::{LinkType, PacketSource, RawPacket, Timestamp};
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

/// How often, in capture time, a busy source asks for the progress callback.
pub const PROGRESS_EVERY_CAPTURE_NANOS: i64 = 250_000_000;

/// How to open an interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name (`any` captures on every interface, with Linux cooked headers).
    pub interface: String,
    /// BPF filter in pcap-filter(7) syntax; empty means every packet.
    pub filter: String,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Put the interface into promiscuous mode (not supported on `any`).
    pub promisc: bool,
    /// Kernel buffer in bytes; `None` keeps libpcap's default (2 MB on Linux).
    pub buffer_size: Option<u32>,
    /// Longest wait for packets before the source returns without one.
    pub read_timeout_ms: u32,
    /// Stop after this many packets (`None`: no limit).
    pub max_packets: Option<u64>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            interface: String::new(),
            filter: String::new(),
            snaplen: 262_144,
            promisc: false,
            buffer_size: None,
            read_timeout_ms: 250,
            max_packets: None,
        }
    }
}

/// Why an interface could not be captured on.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "{interface}: no permission to capture ({message}); run as root, or give the binary the \
         capabilities once: sudo setcap cap_net_raw,cap_net_admin=eip \"$(command -v sessionscope)\""
    )]
    NoPermission { interface: String, message: String },
    #[error("{interface}: no such interface; available: {}", available.join(", "))]
    UnknownInterface {
        interface: String,
        available: Vec<String>,
    },
    #[error("bad capture filter `{filter}`: {message}")]
    BadFilter { filter: String, message: String },
    #[error("{interface}: {message}")]
    Other { interface: String, message: String },
}

/// One interface libpcap can capture on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    /// Its addresses, as text.
    pub addresses: Vec<String>,
    pub up: bool,
    pub loopback: bool,
}

impl fmt::Display for InterfaceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        let mut notes = Vec::new();
        if !self.up {
            notes.push("down".to_string());
        }
        if self.loopback {
            notes.push("loopback".to_string());
        }
        notes.extend(self.addresses.iter().cloned());
        if let Some(description) = &self.description {
            notes.push(description.clone());
        }
        if !notes.is_empty() {
            write!(f, "  ({})", notes.join(", "))?;
        }
        Ok(())
    }
}

/// Every interface libpcap can open, in libpcap's order.
pub fn list_interfaces() -> Result<Vec<InterfaceInfo>, LiveError> {
    let devices = pcap::Device::list().map_err(|e| LiveError::Other {
        interface: "interfaces".into(),
        message: pcap_message(&e),
    })?;
    Ok(devices
        .into_iter()
        .map(|d| InterfaceInfo {
            up: d.flags.is_up(),
            loopback: d.flags.is_loopback(),
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            description: d.desc,
            name: d.name,
        })
        .collect())
}

/// Packets counted by the kernel for this capture (libpcap's `pcap_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets that passed the filter (including dropped ones, on Linux).
    pub received: u64,
    /// Dropped because the capture buffer was full (we read too slowly).
    pub dropped: u64,
    /// Dropped by the interface or its driver (not always known).
    pub if_dropped: u64,
}

/// A live interface as a packet source.
pub struct LiveSource {
    capture: pcap::Capture<pcap::Active>,
    /// The capture's descriptor, polled for readiness.
    fd: std::os::fd::RawFd,
    wait_ms: i32,
    name: String,
    link: LinkType,
    packets: u64,
    bytes: u64,
    max_packets: Option<u64>,
    waiting: bool,
    next_progress: Option<i64>,
    progress_due: bool,
    /// The kernel's counters, refreshed when progress is due or a read times out.
    kernel: Rc<Cell<Option<KernelStats>>>,
    refresh_kernel: bool,
}

impl LiveSource {
    pub fn open(options: &LiveOptions) -> Result<Self, LiveError> {
        let interface = options.interface.clone();
        let other = |e: pcap::Error| LiveError::Other {
            interface: interface.clone(),
            message: pcap_message(&e),
        };
        // libpcap's own message for a missing interface does not say which ones exist.
        if let Ok(known) = list_interfaces()
            && !known.iter().any(|i| i.name == interface)
        {
            return Err(LiveError::UnknownInterface {
                interface,
                available: known.into_iter().map(|i| i.name).collect(),
            });
        }
        let snaplen = i32::try_from(options.snaplen).unwrap_or(i32::MAX).max(64);
        let timeout = i32::try_from(options.read_timeout_ms)
            .unwrap_or(i32::MAX)
            .max(1);
        let mut inactive = pcap::Capture::from_device(interface.as_str())
            .map_err(other)?
            .snaplen(snaplen)
            .timeout(timeout)
            // "any" cannot be promiscuous; libpcap's warning would fail the activation.
            .promisc(options.promisc && interface != "any");
        if let Some(size) = options.buffer_size {
            inactive = inactive.buffer_size(i32::try_from(size).unwrap_or(i32::MAX));
        }
        let mut capture = inactive.open().map_err(|e| open_error(&interface, &e))?;
        if !options.filter.trim().is_empty() {
            capture
                .filter(&options.filter, true)
                .map_err(|e| LiveError::BadFilter {
                    filter: options.filter.clone(),
                    message: pcap_message(&e),
                })?;
        }
        // Non-blocking, with our own poll: libpcap's TPACKET_V3 blocking read ignores the read
        // timeout while no packet arrives, and resumes its wait after a signal.
        let capture = capture.setnonblock().map_err(other)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&capture);
        let link = LinkType(u32::try_from(capture.get_datalink().0).unwrap_or(u32::MAX));
        Ok(LiveSource {
            capture,
            fd,
            wait_ms: timeout,
            name: interface,
            link,
            packets: 0,
            bytes: 0,
            max_packets: options.max_packets,
            waiting: false,
            next_progress: None,
            progress_due: false,
            kernel: Rc::new(Cell::new(None)),
            refresh_kernel: false,
        })
    }

    /// The interface's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Packets handed to the analysis so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The kernel's counters for this capture so far (`None` when libpcap cannot say).
    pub fn kernel_stats(&mut self) -> Option<KernelStats> {
        let stats = self.capture.stats().ok().map(|s| KernelStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        });
        self.kernel.set(stats);
        stats
    }

    /// The kernel's counters as last read (about every 250 ms while the source is read), for a
    /// status line drawn while the source is borrowed by the analysis.
    pub fn kernel_stats_handle(&self) -> Rc<Cell<Option<KernelStats>>> {
        Rc::clone(&self.kernel)
    }
}

impl PacketSource for LiveSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_packet(
        &mut self,
    ) -> Result<Option<RawPacket<'_>>, Box<dyn std::error::Error + Send + Sync>> {
        self.waiting = false;
        // Not while a packet borrows the capture: on the call after the one that asked for it.
        if std::mem::take(&mut self.refresh_kernel) {
            self.kernel_stats();
        }
        if self.max_packets.is_some_and(|max| self.packets >= max) {
            return Ok(None);
        }
        match self.capture.next_packet() {
            Ok(packet) => {
                let header = packet.header;
                let ts = Timestamp::from_secs_nanos(
                    header.ts.tv_sec,
                    u32::try_from(header.ts.tv_usec)
                        .unwrap_or(0)
                        .saturating_mul(1_000),
                );
                self.packets += 1;
                self.bytes = self.bytes.saturating_add(u64::from(header.caplen));
                match self.next_progress {
                    Some(due) if ts.0 < due => {}
                    Some(_) => {
                        self.progress_due = true;
                        self.refresh_kernel = true;
                        self.next_progress =
                            Some(ts.0.saturating_add(PROGRESS_EVERY_CAPTURE_NANOS));
                    }
                    None => {
                        self.next_progress =
                            Some(ts.0.saturating_add(PROGRESS_EVERY_CAPTURE_NANOS));
                    }
                }
                Ok(Some(RawPacket {
                    number: self.packets,
                    ts,
                    link: self.link,
                    data: packet.data,
                    wire_len: header.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing buffered: wait for the kernel (or a signal), then let the caller in.
                wait_readable(self.fd, self.wait_ms);
                self.waiting = true;
                self.refresh_kernel = true;
                Ok(None)
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(format!("{}: capture failed: {}", self.name, pcap_message(&e)).into()),
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn waiting(&self) -> bool {
        self.waiting
    }

    fn progress_due(&mut self) -> bool {
        std::mem::take(&mut self.progress_due)
    }
}

/// This machine's host name (the live `sensor` column's default), `None` when the system does
/// not say.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length for the duration of the call;
    // gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(buf.get(..len).unwrap_or(&[])).into_owned();
    (!name.is_empty()).then_some(name)
}

/// Waits until `fd` is readable, `timeout_ms` passed, or a signal arrived.
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) {
    let mut poll_fd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the descriptor belongs to the open
    // capture. Errors (EINTR from a signal) and timeouts both just return to the caller.
    unsafe {
        libc::poll(&mut poll_fd, 1, timeout_ms);
    }
}

/// libpcap's own text, without the crate's "libpcap error: " prefix.
fn pcap_message(error: &pcap::Error) -> String {
    match error {
        pcap::Error::PcapError(message) => message.clone(),
        other => other.to_string(),
    }
}

fn open_error(interface: &str, error: &pcap::Error) -> LiveError {
    let message = pcap_message(error);
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::NoPermission {
            interface: interface.to_string(),
            message,
        }
    } else if lower.contains("no such device") {
        LiveError::UnknownInterface {
            interface: interface.to_string(),
            available: list_interfaces()
                .map(|l| l.into_iter().map(|i| i.name).collect())
                .unwrap_or_default(),
        }
    } else {
        LiveError::Other {
            interface: interface.to_string(),
            message,
        }
    }
}
