//! The service catalogue: traffic that technology starts by its nature, recognised from the
//! destination alone (address, protocol, port) or from the server name a session was made for.
//!
//! The tables are in `data/hidden-rules.tsv` (shared with the Spark job; see [`super::rules`]).
//! Promises: pure functions over small constant tables, no allocation; a name matches an entry
//! when it equals it or ends with `.` + entry (so `ocsp.digicert.com` matches `digicert.com`
//! entries only through the rules written for it, never by accident of substring).

use super::rules::rules;
use std::net::IpAddr;

/// Why the catalogue says technology started a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogueKind {
    /// Name resolution (DNS, LLMNR, NetBIOS name service).
    NameLookup,
    /// Time synchronisation.
    TimeSync,
    /// Address configuration (DHCP, DHCPv6).
    AddressConfig,
    /// Local discovery chatter (mDNS, SSDP, WS-Discovery, LLMNR, NetBIOS datagrams...).
    Discovery,
    /// Network management and infrastructure (SNMP, syslog, routing, IGMP/MLD...).
    Infrastructure,
    /// Connectivity / captive-portal checks.
    ConnectivityCheck,
    /// Certificate status (OCSP) and revocation lists (CRL).
    CertificateCheck,
    /// Software update checks and downloads.
    Update,
    /// Telemetry and crash reporting.
    Telemetry,
    /// Background sync and push channels.
    BackgroundSync,
}

impl CatalogueKind {
    pub const ALL: [CatalogueKind; 10] = [
        CatalogueKind::NameLookup,
        CatalogueKind::TimeSync,
        CatalogueKind::AddressConfig,
        CatalogueKind::Discovery,
        CatalogueKind::Infrastructure,
        CatalogueKind::ConnectivityCheck,
        CatalogueKind::CertificateCheck,
        CatalogueKind::Update,
        CatalogueKind::Telemetry,
        CatalogueKind::BackgroundSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CatalogueKind::NameLookup => "name lookup",
            CatalogueKind::TimeSync => "time sync",
            CatalogueKind::AddressConfig => "address configuration",
            CatalogueKind::Discovery => "discovery",
            CatalogueKind::Infrastructure => "infrastructure",
            CatalogueKind::ConnectivityCheck => "connectivity check",
            CatalogueKind::CertificateCheck => "certificate check",
            CatalogueKind::Update => "update check",
            CatalogueKind::Telemetry => "telemetry",
            CatalogueKind::BackgroundSync => "background sync",
        }
    }
}

/// A catalogue hit: what it is and the readable reason for the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueHit {
    pub kind: CatalogueKind,
    /// Short service name for hidden.csv (`dns`, `ntp`, `ssdp`, `ocsp`...).
    pub service: &'static str,
    /// The label's reason, e.g. "NTP time sync".
    pub reason: &'static str,
}

/// What the destination's protocol and port say.
pub fn by_port(ip_proto: u8, resp_port: u16) -> Option<CatalogueHit> {
    let rules = rules();
    if let Some((_, h)) = rules.ip_protocols.iter().find(|(p, _)| *p == ip_proto) {
        return Some(*h);
    }
    rules
        .ports
        .iter()
        .find(|(p, port, _)| *p == ip_proto && *port == resp_port)
        .map(|(_, _, h)| *h)
}

/// What the server name says (case-insensitive, trailing dot ignored).
pub fn by_name(name: &str) -> Option<CatalogueHit> {
    let name = name.strip_suffix('.').unwrap_or(name);
    rules()
        .names
        .iter()
        .find(|(entry, _)| name_matches(name, entry))
        .map(|(_, h)| *h)
}

fn name_matches(name: &str, entry: &str) -> bool {
    if name.len() < entry.len() {
        return false;
    }
    let split = name.len() - entry.len();
    let (head, tail) = match (name.get(..split), name.get(split..)) {
        (Some(h), Some(t)) => (h, t),
        _ => return false,
    };
    tail.eq_ignore_ascii_case(entry) && (head.is_empty() || head.ends_with('.'))
}

/// A name that looks like a certificate-status or revocation host (`ocsp.*`, `crl.*`, `crl3.*`).
pub fn looks_like_certificate_check(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or("");
    let crl_digits = match (first.get(..3), first.get(3..)) {
        (Some(crl), Some(rest)) => {
            crl.eq_ignore_ascii_case("crl") && rest.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    name.contains('.') && (first.eq_ignore_ascii_case("ocsp") || crl_digits)
}

/// Where a multicast or broadcast destination sends a session: technology by nature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDestination {
    Multicast,
    Broadcast,
}

/// Multicast (224/4, ff00::/8) and limited broadcast; `directed_broadcast` adds the broadcast
/// addresses of the local networks (known from `--local-net`).
pub fn group_destination(addr: IpAddr, directed_broadcast: &[IpAddr]) -> Option<GroupDestination> {
    if addr.is_multicast() {
        return Some(GroupDestination::Multicast);
    }
    match addr {
        IpAddr::V4(v4) if v4.is_broadcast() => Some(GroupDestination::Broadcast),
        _ if directed_broadcast.contains(&addr) => Some(GroupDestination::Broadcast),
        _ => None,
    }
}

/// Ports of services a person drives by hand (remote shells and desktops): never a keep-alive
/// by themselves, whatever the rhythm of their packets.
pub fn is_interactive_port(ip_proto: u8, resp_port: u16) -> bool {
    rules().interactive_ports.contains(&(ip_proto, resp_port))
}

/// Ports of web traffic, where a page's assets follow the page.
pub fn is_web_port(ip_proto: u8, resp_port: u16) -> bool {
    rules().web_ports.contains(&(ip_proto, resp_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_name_the_infrastructure_services() {
        assert_eq!(by_port(17, 123).unwrap().reason, "NTP time sync");
        assert_eq!(by_port(17, 53).unwrap().kind, CatalogueKind::NameLookup);
        assert_eq!(by_port(17, 1900).unwrap().service, "ssdp");
        assert_eq!(by_port(17, 67).unwrap().kind, CatalogueKind::AddressConfig);
        assert_eq!(by_port(2, 0).unwrap().service, "igmp");
        // TCP 123 is not NTP; web is not in the catalogue.
        assert_eq!(by_port(6, 123), None);
        assert_eq!(by_port(6, 443), None);
    }

    #[test]
    fn names_match_whole_labels_only() {
        assert_eq!(
            by_name("ctldl.windowsupdate.com").unwrap().kind,
            CatalogueKind::Update
        );
        assert_eq!(
            by_name("WINDOWSUPDATE.COM.").unwrap().kind,
            CatalogueKind::Update
        );
        assert_eq!(
            by_name("captive.apple.com").unwrap().kind,
            CatalogueKind::ConnectivityCheck
        );
        // A look-alike that only shares a suffix of characters is not a match.
        assert_eq!(by_name("evilwindowsupdate.com"), None);
        assert_eq!(by_name("www.example.com"), None);
        assert!(looks_like_certificate_check("ocsp.example.net"));
        assert!(looks_like_certificate_check("crl3.digicert.com"));
        assert!(!looks_like_certificate_check("crlf.example.net"));
        assert!(!looks_like_certificate_check("ocsp"));
    }

    #[test]
    fn multicast_and_broadcast_destinations() {
        let ssdp: IpAddr = "239.255.255.250".parse().unwrap();
        let mdns6: IpAddr = "ff02::fb".parse().unwrap();
        let bcast: IpAddr = "255.255.255.255".parse().unwrap();
        let directed: IpAddr = "192.168.1.255".parse().unwrap();
        let unicast: IpAddr = "192.168.1.7".parse().unwrap();
        assert_eq!(
            group_destination(ssdp, &[]),
            Some(GroupDestination::Multicast)
        );
        assert_eq!(
            group_destination(mdns6, &[]),
            Some(GroupDestination::Multicast)
        );
        assert_eq!(
            group_destination(bcast, &[]),
            Some(GroupDestination::Broadcast)
        );
        assert_eq!(group_destination(directed, &[]), None);
        assert_eq!(
            group_destination(directed, &[directed]),
            Some(GroupDestination::Broadcast)
        );
        assert_eq!(group_destination(unicast, &[directed]), None);
    }
}
