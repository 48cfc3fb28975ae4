//! IPv4, IPv6 (with extension headers) and the TCP, UDP and ICMP headers on top.

/// TCP flag bits as they appear in the header's flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// The transport layer of an [`super::IpPacket`].
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        /// Payload length from the IP header's lengths (not cut by the snaplen).
        payload_len: u32,
        /// The payload bytes that were captured (a prefix of `payload_len` bytes).
        payload: &'a [u8],
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        /// Payload length from the IP header's lengths (not cut by the snaplen).
        payload_len: u32,
        payload: &'a [u8],
    },
    Icmp {
        /// true for ICMPv6.
        v6: bool,
        icmp_type: u8,
        code: u8,
        /// Bytes 4..8 of the ICMP header (identifier and sequence for echo).
        rest: [u8; 4],
        /// Payload length from the IP header's lengths (after the 8-byte ICMP header).
        payload_len: u32,
        /// For errors: the quoted original datagram (its IP header and first bytes).
        payload: &'a [u8],
    },
    /// A non-first fragment, or a protocol sessionscope does not look inside.
    Other { payload_len: u32 },
}
