//! Stable session uids in Zeek's shape: 'C' followed by base62 digits.
//!
//! Zeek draws uids at random; sessionscope derives them from what identifies a session (its
//! first packet's time, protocol, endpoints and tunnel depth) so that the same capture always
//! gives the same uids, whichever order or thread the sessions are processed in.

use super::{Endpoint, Proto};
use crate::capture::Timestamp;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// A session's uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Uid {
    text: [u8; 18],
    len: u8,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Uid {
    /// Derives the uid from the session's identity.
    pub fn derive(
        start: Timestamp,
        proto: Proto,
        orig: Endpoint,
        resp: Endpoint,
        depth: u8,
    ) -> Uid {
        let mut hasher = Sha1::new();
        hasher.update(start.0.to_be_bytes());
        let proto_number: u8 = match proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Other(n) => n,
        };
        hasher.update([proto_number, depth]);
        for endpoint in [orig, resp] {
            match endpoint.addr {
                IpAddr::V4(a) => hasher.update(a.octets()),
                IpAddr::V6(a) => hasher.update(a.octets()),
            }
            hasher.update(endpoint.port.to_be_bytes());
        }
        let digest = hasher.finalize();
        let mut value: u128 = 0;
        for &byte in digest.iter().take(12) {
            value = (value << 8) | u128::from(byte);
        }
        Uid::from_value(value)
    }

    /// `C` and the base62 digits of `value`, least significant first.
    fn from_value(value: u128) -> Uid {
        let mut text = [0u8; 18];
        text[0] = b'C';
        let mut len = 1usize;
        // The value as 32-bit limbs, most significant first, divided limb by limb by 62^5:
        // each round gives five digits, and a 64-bit division by a constant is a
        // multiplication, where dividing the u128 by 62 called the runtime's 128-bit division
        // twice per digit (1% of one thread's time).
        const FIVE_DIGITS: u64 = 62 * 62 * 62 * 62 * 62;
        let mut limbs = [96, 64, 32, 0].map(|shift| (value >> shift) as u32);
        // 96 bits need at most 17 base62 digits.
        while limbs != [0; 4] && len < text.len() {
            let mut remainder = 0u64;
            for limb in &mut limbs {
                let part = (remainder << 32) | u64::from(*limb);
                *limb = (part / FIVE_DIGITS) as u32;
                remainder = part % FIVE_DIGITS;
            }
            // Five digits, or in the last round those up to the last non-zero one: the digits
            // that dividing by 62 until nothing is left gives.
            let last = limbs == [0; 4];
            for _ in 0..5 {
                if len >= text.len() || (last && remainder == 0) {
                    break;
                }
                if let (Some(digit), Some(&symbol)) =
                    (text.get_mut(len), BASE62.get((remainder % 62) as usize))
                {
                    *digit = symbol;
                }
                remainder /= 62;
                len += 1;
            }
        }
        Uid {
            text,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The same text as bytes, without the UTF-8 check (for the row writer).
    pub fn as_bytes(&self) -> &[u8] {
        self.text.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// A hash of the uid's text that is the same in every run and on every machine (FNV-1a with
    /// a final mix): for choices that must not change between runs, such as the report's sample.
    pub fn fixed_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port,
        }
    }

    #[test]
    fn same_identity_same_uid_and_zeek_shape() {
        let a = Uid::derive(Timestamp(5), Proto::Tcp, ep(1, 1000), ep(2, 80), 0);
        let b = Uid::derive(Timestamp(5), Proto::Tcp, ep(1, 1000), ep(2, 80), 0);
        assert_eq!(a, b);
        assert!(a.as_str().starts_with('C'));
        assert!(a.as_str().len() >= 12 && a.as_str().len() <= 18);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    /// The digits as dividing the whole u128 gives them (the definition of the uid's text).
    fn by_u128_division(mut value: u128) -> String {
        let mut text = String::from("C");
        while value > 0 && text.len() < 18 {
            text.push(char::from(BASE62[(value % 62) as usize]));
            value /= 62;
        }
        text
    }

    #[test]
    fn digits_are_those_of_the_whole_value() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            0,
            1,
            61,
            62,
            63,
            u128::from(u32::MAX),
            1 << 32,
            (1 << 96) - 1,
        ];
        for _ in 0..10_000 {
            // xorshift: values of every size up to 96 bits
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bits = x % 97;
            values
                .push((u128::from(x) << 64 | u128::from(x.rotate_left(17))) >> (128 - bits.max(1)));
        }
        for value in values {
            assert_eq!(
                Uid::from_value(value).as_str(),
                by_u128_division(value),
                "{value}"
            );
        }
    }

    #[test]
    fn different_start_or_port_gives_different_uid() {
        let a = Uid::derive(Timestamp(5), Proto::Tcp, ep(1, 1000), ep(2, 80), 0);
        assert_ne!(
            a,
            Uid::derive(Timestamp(6), Proto::Tcp, ep(1, 1000), ep(2, 80), 0)
        );
        assert_ne!(
            a,
            Uid::derive(Timestamp(5), Proto::Tcp, ep(1, 1001), ep(2, 80), 0)
        );
        assert_ne!(
            a,
            Uid::derive(Timestamp(5), Proto::Udp, ep(1, 1000), ep(2, 80), 0)
        );
    }
}
