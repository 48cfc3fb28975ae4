//! NTP (RFC 5905, and the mode 6/7 control messages of ntpq/ntpdc): version and mode from the
//! first byte. Hand-written: one byte carries what is recorded. Only tried when either port is
//! 123, since the header is too plain to tell from noise on other ports.
//!
//! Promise: no panic on any bytes.

use super::ContentInfo;

/// Length of an NTP time packet without extensions or MAC.
const TIME_PACKET_LEN: usize = 48;

fn mode_name(mode: u8) -> Option<&'static str> {
    Some(match mode {
        1 => "symmetric active",
        2 => "symmetric passive",
        3 => "client",
        4 => "server",
        5 => "broadcast",
        6 => "control",
        7 => "private",
        _ => return None,
    })
}

pub(super) fn detect(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (version, mode) = ((first >> 3) & 7, first & 7);
    match mode {
        1..=5 => (1..=4).contains(&version) && payload.len() >= TIME_PACKET_LEN,
        // Control (12-byte header) and private (8-byte header) messages.
        6 => (1..=4).contains(&version) && payload.len() >= 12,
        7 => (1..=4).contains(&version) && payload.len() >= 8,
        _ => false,
    }
}

pub(super) fn parse_datagram(
    payload: &[u8],
    from_orig: bool,
    datagrams: u8,
    info: &mut ContentInfo,
) {
    let Some(&first) = payload.first() else {
        return;
    };
    let mode = first & 7;
    let more = info.more.get_mut();
    more.ntp_version = Some((first >> 3) & 7);
    more.ntp_mode = mode_name(mode);
    // A server reply (mode 4) as the session's first packet: the roles are reversed.
    if datagrams == 1 && from_orig && mode == 4 {
        info.orig_is_server = true;
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::content::ContentClassifier;
    use crate::session::Proto;

    #[test]
    fn client_request_gives_version_and_mode() {
        // RFC 5905 header: LI 0, VN 4, Mode 3 -> first byte 0x23; 48 bytes.
        let mut packet = [0u8; 48];
        packet[0] = 0x23;
        let mut c = ContentClassifier::new(Proto::Udp, 40000, 123);
        c.on_datagram(true, &packet);
        assert!(!c.wants_more());
        let info = c.finish().unwrap();
        assert_eq!(info.service, "ntp");
        assert_eq!(info.more.ntp_version, Some(4));
        assert_eq!(info.more.ntp_mode, Some("client"));
    }

    #[test]
    fn server_reply_first_means_reversed_roles() {
        let mut packet = [0u8; 48];
        packet[0] = 0x1c; // VN 3, mode 4
        let mut c = ContentClassifier::new(Proto::Udp, 123, 40000);
        c.on_datagram(true, &packet);
        let info = c.finish().unwrap();
        assert_eq!(info.more.ntp_mode, Some("server"));
        assert!(info.orig_is_server);
    }

    #[test]
    fn ntp_needs_its_port() {
        let mut packet = [0u8; 48];
        packet[0] = 0x23;
        let mut c = ContentClassifier::new(Proto::Udp, 40000, 9999);
        c.on_datagram(true, &packet);
        assert!(c.info().is_none());
    }
}
