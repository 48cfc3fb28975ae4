//! Text the per-row outputs write many times: IP addresses exactly as `Display` writes them,
//! without `fmt` (sessions.csv writes two per row, the initiator labels one). Promise: the same
//! bytes as `IpAddr`'s `Display`, no panic, no allocation beyond `out`'s growth.

use std::net::IpAddr;

/// The address as `IpAddr`'s `Display` writes it.
pub fn push_ip(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => push_ipv4(out, v4),
        IpAddr::V6(v6) => push_ipv6(out, v6),
    }
}

/// The dotted quad.
pub fn push_ipv4(out: &mut Vec<u8>, v4: std::net::Ipv4Addr) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(digits.format(octet).as_bytes());
    }
}

/// The address as `Ipv6Addr`'s `Display` writes it (RFC 5952): IPv4-mapped addresses as
/// `::ffff:a.b.c.d`; otherwise groups in lowercase hex without leading zeros, the longest run
/// of two or more zero groups (the first of equal runs) written `::`.
pub fn push_ipv6(out: &mut Vec<u8>, v6: std::net::Ipv6Addr) {
    if let Some(v4) = v6.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        push_ipv4(out, v4);
        return;
    }
    let groups = v6.segments();
    let (mut zeros_at, mut zeros_len, mut run_at, mut run_len) = (0, 0, 0, 0);
    for (i, &group) in groups.iter().enumerate() {
        if group == 0 {
            if run_len == 0 {
                run_at = i;
            }
            run_len += 1;
            if run_len > zeros_len {
                (zeros_at, zeros_len) = (run_at, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    if zeros_len > 1 {
        push_hex_groups(out, groups.get(..zeros_at).unwrap_or_default());
        out.extend_from_slice(b"::");
        push_hex_groups(out, groups.get(zeros_at + zeros_len..).unwrap_or_default());
    } else {
        push_hex_groups(out, &groups);
    }
}

/// Groups in lowercase hex without leading zeros, separated by `:`.
fn push_hex_groups(out: &mut Vec<u8>, groups: &[u16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &group) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        let digits = (16 - group.leading_zeros() as usize).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            let digit = usize::from((group >> (4 * shift)) & 0xf);
            out.push(HEX.get(digit).copied().unwrap_or(b'0'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_are_written_as_display_writes_them() {
        for a in [
            0u32,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0001,
            0xc0a8_0a64,
            u32::MAX,
        ] {
            let v4 = std::net::Ipv4Addr::from(a);
            let mut out = Vec::new();
            push_ip(&mut out, IpAddr::V4(v4));
            assert_eq!(String::from_utf8(out).unwrap(), v4.to_string());
        }
    }

    #[test]
    fn ipv6_addresses_are_written_as_display_writes_them() {
        // Every pattern of zero groups (which decides where `::` goes), with non-zero groups of
        // one to four hex digits, and the IPv4-mapped and IPv4-compatible forms.
        let mut addresses: Vec<std::net::Ipv6Addr> = vec![
            "::ffff:192.0.2.1".parse().unwrap(),
            "::192.0.2.1".parse().unwrap(),
            "::ffff:0:0".parse().unwrap(),
            "64:ff9b::c000:201".parse().unwrap(),
        ];
        let values = [0x1u16, 0xab, 0xa00, 0xffff, 0x0f0f, 0x2001];
        for zeros in 0u32..256 {
            let mut groups = [0u16; 8];
            for (i, group) in groups.iter_mut().enumerate() {
                if zeros & (1 << i) == 0 {
                    *group = values[(i + zeros as usize) % values.len()];
                }
            }
            addresses.push(std::net::Ipv6Addr::from(groups));
        }
        for v6 in addresses {
            let mut out = Vec::new();
            push_ip(&mut out, std::net::IpAddr::V6(v6));
            assert_eq!(String::from_utf8(out).unwrap(), v6.to_string());
        }
    }
}
