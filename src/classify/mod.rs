//! Service classification: names each finished session's service from its ports.
//!
//! Owns the choice of a session's `service` and `service_evidence`. Names come from IANA's
//! Service Name and Transport Protocol Port Number Registry (compiled in, see [`ports`]),
//! except where Zeek has a name for the same protocol: then Zeek's name is used (`dns` for
//! IANA's `domain`, `ssl` for `https` on TCP, `quic` for `https` on UDP, `dhcp` for
//! `bootps`/`bootpc`, `smb` for `microsoft-ds`, `krb`/`krb_tcp` for `kerberos`,
//! `rdp`/`rdpeudp` for `ms-wbt-server`, ...; the full list is [`ZEEK_NAMES`]), so sessions.csv
//! compares directly with Zeek's conn.log. Protocols Zeek only reads with another protocol's
//! analyser keep their IANA name (`mdns`, `netbios-ns`, `llmnr` rather than Zeek's `dns`), and
//! TLS-wrapped services other than HTTPS keep theirs (`imaps`, `pop3s`, ...), which says more
//! than `ssl`.
//!
//! Which port: the responder's, as Zeek's `likely_server_ports` logic would. When the
//! responder port has no named assignment but the originator port is a system port (< 1024)
//! that has one, the originator's is used: that is a session whose direction was misjudged
//! (e.g. only the server's replies were captured), and a system port is rarely an ephemeral
//! client port. Registered ports (>= 1024) of the originator are not used, since client
//! ephemeral ports land on them all the time. Both cases set `ServiceEvidence::Port`.
//!
//! Promise: no allocation and O(log n) per session; ICMP and other protocols get no service;
//! a service already set (by content evidence) is left alone.

pub mod content;
mod ports;

pub use content::{ContentClassifier, ContentInfo, Findings, More, MoreInfo};
pub use ports::{ZEEK_NAMES, iana_name_for_port, service_for_port};

use crate::session::{Proto, ServiceEvidence, SessionRecord};

/// Originator ports below this may name the service when the responder port does not.
const ORIG_PORT_FALLBACK_BELOW: u16 = 1024;

/// Fills `record.service` and `record.service_evidence` from the ports (see the module doc).
pub fn classify(record: &mut SessionRecord) {
    if let Some(service) = record.content.as_ref().map(|c| c.service) {
        // What the bytes say wins over what the port suggests.
        record.service = Some(service);
        record.service_evidence = ServiceEvidence::Content;
        return;
    }
    if record.service.is_some() || !matches!(record.proto, Proto::Tcp | Proto::Udp) {
        return;
    }
    let by_resp = service_for_port(record.proto, record.resp.port);
    let service = by_resp.or_else(|| {
        (record.orig.port < ORIG_PORT_FALLBACK_BELOW)
            .then(|| service_for_port(record.proto, record.orig.port))
            .flatten()
    });
    if let Some(service) = service {
        record.service = Some(service);
        record.service_evidence = ServiceEvidence::Port;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::session::{
        ConnState, DirectionStats, EndReason, Endpoint, History, SessionRecord, Uid,
    };
    use std::net::{IpAddr, Ipv4Addr};

    fn session(proto: Proto, orig_port: u16, resp_port: u16) -> SessionRecord {
        let endpoint = |last_octet, port| Endpoint {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last_octet)),
            port,
        };
        SessionRecord {
            uid: Uid::default(),
            start: Timestamp::default(),
            last: Timestamp::default(),
            orig: endpoint(1, orig_port),
            resp: endpoint(2, resp_port),
            proto,
            ip_proto: match proto {
                Proto::Tcp => 6,
                Proto::Udp => 17,
                Proto::Icmp => 1,
                Proto::Other(n) => n,
            },
            orig_stats: DirectionStats::default(),
            resp_stats: DirectionStats::default(),
            conn_state: ConnState::OTH,
            history: History::default(),
            missed_bytes: 0,
            service: None,
            service_evidence: ServiceEvidence::None,
            end_reason: EndReason::CaptureEnd,
            tunnel_depth: 0,
            related_uid: None,
            content: None,
            anomalies: Default::default(),
        }
    }

    fn classified(
        proto: Proto,
        orig_port: u16,
        resp_port: u16,
    ) -> (Option<&'static str>, ServiceEvidence) {
        let mut record = session(proto, orig_port, resp_port);
        classify(&mut record);
        (record.service, record.service_evidence)
    }

    #[test]
    fn responder_port_names_the_service() {
        assert_eq!(
            classified(Proto::Tcp, 51234, 22),
            (Some("ssh"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Tcp, 51234, 443),
            (Some("ssl"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Udp, 40000, 53),
            (Some("dns"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Udp, 123, 123),
            (Some("ntp"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Tcp, 49800, 3389),
            (Some("rdp"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Udp, 5353, 5353),
            (Some("mdns"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Udp, 68, 67),
            (Some("dhcp"), ServiceEvidence::Port)
        );
    }

    #[test]
    fn responder_port_wins_over_originator_port() {
        // A client bound to port 25 (smtp) talking to a web server is still http.
        assert_eq!(
            classified(Proto::Tcp, 25, 80),
            (Some("http"), ServiceEvidence::Port)
        );
        // A registered responder port wins even over a system originator port.
        assert_eq!(
            classified(Proto::Tcp, 53, 8080),
            (Some("http"), ServiceEvidence::Port)
        );
    }

    #[test]
    fn system_originator_port_names_a_reversed_session() {
        // Only the DNS server's reply seen: orig 53 -> resp 61000 (unassigned).
        assert_eq!(
            classified(Proto::Udp, 53, 61000),
            (Some("dns"), ServiceEvidence::Port)
        );
        assert_eq!(
            classified(Proto::Tcp, 22, 65000),
            (Some("ssh"), ServiceEvidence::Port)
        );
    }

    #[test]
    fn registered_originator_port_does_not_name_the_session() {
        // 3389 is >= 1024: could be a client's ephemeral port, so no guess.
        assert_eq!(
            classified(Proto::Tcp, 3389, 65000),
            (None, ServiceEvidence::None)
        );
    }

    #[test]
    fn unknown_ports_leave_no_service() {
        assert_eq!(
            classified(Proto::Tcp, 50000, 65000),
            (None, ServiceEvidence::None)
        );
        // Originator port 0 has no assignment either.
        assert_eq!(
            classified(Proto::Udp, 0, 65000),
            (None, ServiceEvidence::None)
        );
    }

    #[test]
    fn icmp_and_other_protocols_get_no_service() {
        // ICMP "ports" are type and code (echo request 8, code 0).
        assert_eq!(classified(Proto::Icmp, 8, 0), (None, ServiceEvidence::None));
        assert_eq!(
            classified(Proto::Icmp, 22, 22),
            (None, ServiceEvidence::None)
        );
        assert_eq!(
            classified(Proto::Other(132), 0, 22),
            (None, ServiceEvidence::None)
        );
    }

    #[test]
    fn a_service_already_named_is_kept() {
        let mut record = session(Proto::Tcp, 51234, 443);
        record.service = Some("http");
        record.service_evidence = ServiceEvidence::Content;
        classify(&mut record);
        assert_eq!(record.service, Some("http"));
        assert_eq!(record.service_evidence, ServiceEvidence::Content);
    }
}
