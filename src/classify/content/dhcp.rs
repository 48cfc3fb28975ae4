//! DHCP (RFC 2131/2132): BOOTP messages with the DHCP magic cookie, on any port. Records the
//! client's host name (option 12) and vendor class (option 60). Hand-written: a TLV walk.
//!
//! Promise: the option walk ends at the end of the datagram, the end option or a cut option;
//! no panic on any bytes.

use super::{ContentInfo, TEXT_CAP, text};

/// Fixed BOOTP header before the magic cookie.
const COOKIE_AT: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const OPTION_PAD: u8 = 0;
const OPTION_END: u8 = 255;
const OPTION_HOST_NAME: u8 = 12;
const OPTION_VENDOR_CLASS: u8 = 60;
const BOOTREQUEST: u8 = 1;

pub(super) fn detect(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(1 | 2))
        && payload.get(COOKIE_AT..COOKIE_AT + 4) == Some(&MAGIC_COOKIE[..])
}

/// Reads one message. Returns true once a client message was read (the details come from it).
pub(super) fn parse_datagram(payload: &[u8], info: &mut ContentInfo) -> bool {
    if !detect(payload) {
        return false;
    }
    let mut options = payload.get(COOKIE_AT + 4..).unwrap_or_default();
    while let [code, rest @ ..] = options {
        match *code {
            OPTION_PAD => {
                options = rest;
                continue;
            }
            OPTION_END => break,
            _ => {}
        }
        let Some((&len, rest)) = rest.split_first() else {
            break;
        };
        let Some(value) = rest.get(..usize::from(len)) else {
            break;
        };
        match *code {
            OPTION_HOST_NAME => info.more.get_mut().dhcp_hostname = Some(text(value, TEXT_CAP)),
            OPTION_VENDOR_CLASS => {
                info.more.get_mut().dhcp_vendor_class = Some(text(value, TEXT_CAP))
            }
            _ => {}
        }
        options = rest.get(usize::from(len)..).unwrap_or_default();
    }
    payload.first() == Some(&BOOTREQUEST)
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    /// A DHCPDISCOVER laid out as RFC 2131 section 2 and RFC 2132 describe: op 1, htype 1,
    /// hlen 6, cookie, option 53 (type 1), option 12 "laptop", option 60 "MSFT 5.0", end.
    fn discover() -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        p.extend_from_slice(&[53, 1, 1]);
        p.extend_from_slice(&[12, 6]);
        p.extend_from_slice(b"laptop");
        p.extend_from_slice(&[0, 60, 8]);
        p.extend_from_slice(b"MSFT 5.0");
        p.push(255);
        p
    }

    #[test]
    fn discover_gives_host_name_and_vendor_class() {
        let mut c = ContentClassifier::new(Proto::Udp, 68, 67);
        c.on_datagram(true, &discover());
        assert!(!c.wants_more());
        let info = c.finish().unwrap();
        assert_eq!(info.service, "dhcp");
        assert_eq!(info.more.dhcp_hostname.as_deref(), Some("laptop"));
        assert_eq!(info.more.dhcp_vendor_class.as_deref(), Some("MSFT 5.0"));
    }

    #[test]
    fn cut_options_do_not_panic() {
        let full = discover();
        for cut in 0..full.len() {
            let mut info = Default::default();
            let _ = super::parse_datagram(&full[..cut], &mut info);
        }
    }
}
