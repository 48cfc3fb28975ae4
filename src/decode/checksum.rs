//! Internet checksums (RFC 1071) of the IPv4 header and of TCP, UDP, ICMP and ICMPv6.
//!
//! sessionscope does not verify checksums unless asked (`--verify-checksums`): capturing hosts
//! with checksum offload record their own packets with wrong checksums, and dropping those
//! would hide real traffic. When asked, the rules are Zeek's default (without `-C`): only
//! packets captured whole are checked, and a UDP checksum of zero over IPv4 means "none".

use super::IpPacket;
use std::net::IpAddr;

/// What the checksums of one IP layer say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumVerdict {
    /// Every checksum that could be checked is right (or none could be).
    Valid,
    /// The IPv4 header checksum is wrong.
    BadIpHeader,
    /// The TCP, UDP or ICMP checksum is wrong.
    BadTransport,
}

/// Adds `bytes` as big-endian 16-bit words to a running one's-complement sum.
fn add_words(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn folds_to_all_ones(mut sum: u64) -> bool {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u64 {
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => add_words(add_words(0, &s.octets()), &d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => add_words(add_words(0, &s.octets()), &d.octets()),
        _ => 0,
    };
    sum += u64::from(protocol);
    sum += u64::from(len >> 16) + u64::from(len & 0xffff);
    sum
}

/// Checks the checksums of one IP layer the way Zeek does when it validates them.
pub fn verify_checksums(packet: &IpPacket<'_>) -> ChecksumVerdict {
    if !packet.ip_header.is_empty() && !folds_to_all_ones(add_words(0, packet.ip_header)) {
        return ChecksumVerdict::BadIpHeader;
    }
    // Only a transport segment captured whole (and not a fragment) can be checked.
    let complete = packet.l4.len() as u64 == u64::from(packet.l4_len) && packet.fragment.is_none();
    if !complete {
        return ChecksumVerdict::Valid;
    }
    let v6 = packet.src.is_ipv6();
    let with_pseudo =
        |sum: u64| pseudo_header_sum(packet.src, packet.dst, packet.protocol, packet.l4_len) + sum;
    let ok = match packet.protocol {
        6 => folds_to_all_ones(with_pseudo(add_words(0, packet.l4))),
        17 => {
            let stored = packet
                .l4
                .get(6..8)
                .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
            (stored == 0 && !v6) || folds_to_all_ones(with_pseudo(add_words(0, packet.l4)))
        }
        1 => folds_to_all_ones(add_words(0, packet.l4)),
        58 => folds_to_all_ones(with_pseudo(add_words(0, packet.l4))),
        _ => true,
    };
    if ok {
        ChecksumVerdict::Valid
    } else {
        ChecksumVerdict::BadTransport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let mut sum = add_words(0, &bytes);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xddf2);
        // With its complement appended the total folds to all ones.
        let mut with_checksum = bytes.to_vec();
        with_checksum.extend_from_slice(&(!0xddf2u16).to_be_bytes());
        assert!(folds_to_all_ones(add_words(0, &with_checksum)));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add_words(0, &[0x12]), 0x1200);
    }
}
