//! The service catalogue: traffic that technology starts by its nature, recognised from the
//! destination alone (address, protocol, port) or from the server name a session was made for.
//!
//! Promises: pure functions over small constant tables, no allocation; a name matches an entry
//! when it equals it or ends with `.` + entry (so `ocsp.digicert.com` matches `digicert.com`
//! entries only through the rules written for it, never by accident of substring).

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

const fn hit(kind: CatalogueKind, service: &'static str, reason: &'static str) -> CatalogueHit {
    CatalogueHit {
        kind,
        service,
        reason,
    }
}

/// (IP protocol, responder port) entries: 17 UDP, 6 TCP.
const PORTS: &[(u8, u16, CatalogueHit)] = &[
    (
        17,
        53,
        hit(
            CatalogueKind::NameLookup,
            "dns",
            "DNS lookup made by the resolver",
        ),
    ),
    (
        6,
        53,
        hit(
            CatalogueKind::NameLookup,
            "dns",
            "DNS lookup made by the resolver (TCP)",
        ),
    ),
    (
        6,
        853,
        hit(
            CatalogueKind::NameLookup,
            "dns",
            "DNS over TLS lookup made by the resolver",
        ),
    ),
    (
        17,
        853,
        hit(
            CatalogueKind::NameLookup,
            "dns",
            "DNS over QUIC lookup made by the resolver",
        ),
    ),
    (
        17,
        5353,
        hit(
            CatalogueKind::Discovery,
            "mdns",
            "multicast discovery (mDNS)",
        ),
    ),
    (
        17,
        5355,
        hit(CatalogueKind::NameLookup, "llmnr", "LLMNR name lookup"),
    ),
    (
        17,
        137,
        hit(
            CatalogueKind::NameLookup,
            "netbios-ns",
            "NetBIOS name lookup",
        ),
    ),
    (
        17,
        138,
        hit(
            CatalogueKind::Discovery,
            "netbios-dgm",
            "NetBIOS browser announcement",
        ),
    ),
    (
        17,
        123,
        hit(CatalogueKind::TimeSync, "ntp", "NTP time sync"),
    ),
    (
        6,
        37,
        hit(CatalogueKind::TimeSync, "time", "time protocol sync"),
    ),
    (
        17,
        67,
        hit(
            CatalogueKind::AddressConfig,
            "dhcp",
            "DHCP address configuration",
        ),
    ),
    (
        17,
        68,
        hit(
            CatalogueKind::AddressConfig,
            "dhcp",
            "DHCP address configuration",
        ),
    ),
    (
        17,
        547,
        hit(
            CatalogueKind::AddressConfig,
            "dhcpv6",
            "DHCPv6 address configuration",
        ),
    ),
    (
        17,
        546,
        hit(
            CatalogueKind::AddressConfig,
            "dhcpv6",
            "DHCPv6 address configuration",
        ),
    ),
    (
        17,
        1900,
        hit(
            CatalogueKind::Discovery,
            "ssdp",
            "multicast discovery (SSDP)",
        ),
    ),
    (
        17,
        3702,
        hit(
            CatalogueKind::Discovery,
            "ws-discovery",
            "WS-Discovery probe",
        ),
    ),
    (
        17,
        5678,
        hit(
            CatalogueKind::Discovery,
            "mndp",
            "MikroTik neighbour discovery",
        ),
    ),
    (
        17,
        161,
        hit(
            CatalogueKind::Infrastructure,
            "snmp",
            "SNMP management poll",
        ),
    ),
    (
        17,
        162,
        hit(CatalogueKind::Infrastructure, "snmp-trap", "SNMP trap"),
    ),
    (
        17,
        514,
        hit(CatalogueKind::Infrastructure, "syslog", "syslog message"),
    ),
    (
        17,
        520,
        hit(CatalogueKind::Infrastructure, "rip", "RIP routing update"),
    ),
    (
        17,
        521,
        hit(
            CatalogueKind::Infrastructure,
            "ripng",
            "RIPng routing update",
        ),
    ),
    (
        17,
        1985,
        hit(
            CatalogueKind::Infrastructure,
            "hsrp",
            "HSRP router redundancy",
        ),
    ),
    (
        6,
        179,
        hit(CatalogueKind::Infrastructure, "bgp", "BGP routing session"),
    ),
    (
        17,
        3478,
        hit(
            CatalogueKind::Infrastructure,
            "stun",
            "STUN address discovery",
        ),
    ),
    (
        17,
        1194,
        hit(CatalogueKind::Infrastructure, "openvpn", "VPN tunnel"),
    ),
    (
        17,
        51820,
        hit(
            CatalogueKind::Infrastructure,
            "wireguard",
            "VPN tunnel (WireGuard)",
        ),
    ),
    (
        6,
        5223,
        hit(
            CatalogueKind::BackgroundSync,
            "push",
            "push notification channel",
        ),
    ),
    (
        6,
        5228,
        hit(
            CatalogueKind::BackgroundSync,
            "push",
            "push notification channel",
        ),
    ),
    (
        6,
        8883,
        hit(CatalogueKind::BackgroundSync, "mqtt", "MQTT device channel"),
    ),
    (
        6,
        1883,
        hit(CatalogueKind::BackgroundSync, "mqtt", "MQTT device channel"),
    ),
];

/// IP protocols that only infrastructure speaks.
const IP_PROTOCOLS: &[(u8, CatalogueHit)] = &[
    (
        2,
        hit(
            CatalogueKind::Infrastructure,
            "igmp",
            "IGMP multicast membership",
        ),
    ),
    (
        89,
        hit(CatalogueKind::Infrastructure, "ospf", "OSPF routing"),
    ),
    (
        112,
        hit(
            CatalogueKind::Infrastructure,
            "vrrp",
            "VRRP router redundancy",
        ),
    ),
    (
        103,
        hit(
            CatalogueKind::Infrastructure,
            "pim",
            "PIM multicast routing",
        ),
    ),
];

/// Server names (exact or parent domain) of technology-started services.
const NAMES: &[(&str, CatalogueHit)] = &[
    (
        "connectivitycheck.gstatic.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Android/Chrome)",
        ),
    ),
    (
        "connectivitycheck.android.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Android)",
        ),
    ),
    (
        "clients3.google.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Google)",
        ),
    ),
    (
        "captive.apple.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Apple)",
        ),
    ),
    (
        "msftconnecttest.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Windows NCSI)",
        ),
    ),
    (
        "msftncsi.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Windows NCSI)",
        ),
    ),
    (
        "detectportal.firefox.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Firefox)",
        ),
    ),
    (
        "nmcheck.gnome.org",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (NetworkManager)",
        ),
    ),
    (
        "connectivity-check.ubuntu.com",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Ubuntu)",
        ),
    ),
    (
        "network-test.debian.org",
        hit(
            CatalogueKind::ConnectivityCheck,
            "connectivity-check",
            "connectivity check (Debian)",
        ),
    ),
    (
        "ocsp.digicert.com",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "ocsp.pki.goog",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "ocsp.sectigo.com",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "r3.o.lencr.org",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "o.lencr.org",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "ocsp.apple.com",
        hit(
            CatalogueKind::CertificateCheck,
            "ocsp",
            "certificate status check (OCSP)",
        ),
    ),
    (
        "crl.microsoft.com",
        hit(
            CatalogueKind::CertificateCheck,
            "crl",
            "certificate revocation list download",
        ),
    ),
    (
        "crl.pki.goog",
        hit(
            CatalogueKind::CertificateCheck,
            "crl",
            "certificate revocation list download",
        ),
    ),
    (
        "time.windows.com",
        hit(CatalogueKind::TimeSync, "ntp", "time sync server"),
    ),
    (
        "time.apple.com",
        hit(CatalogueKind::TimeSync, "ntp", "time sync server"),
    ),
    (
        "pool.ntp.org",
        hit(CatalogueKind::TimeSync, "ntp", "time sync server"),
    ),
    (
        "windowsupdate.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update (Windows Update)",
        ),
    ),
    (
        "update.microsoft.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update (Windows Update)",
        ),
    ),
    (
        "delivery.mp.microsoft.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update (Windows delivery)",
        ),
    ),
    (
        "swscan.apple.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update check (Apple)",
        ),
    ),
    (
        "mesu.apple.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update check (Apple)",
        ),
    ),
    (
        "update.googleapis.com",
        hit(
            CatalogueKind::Update,
            "update",
            "software update check (Google)",
        ),
    ),
    (
        "aus5.mozilla.org",
        hit(
            CatalogueKind::Update,
            "update",
            "software update check (Mozilla)",
        ),
    ),
    (
        "archive.ubuntu.com",
        hit(CatalogueKind::Update, "update", "package update (Ubuntu)"),
    ),
    (
        "security.ubuntu.com",
        hit(CatalogueKind::Update, "update", "package update (Ubuntu)"),
    ),
    (
        "deb.debian.org",
        hit(CatalogueKind::Update, "update", "package update (Debian)"),
    ),
    (
        "security.debian.org",
        hit(CatalogueKind::Update, "update", "package update (Debian)"),
    ),
    (
        "telemetry.mozilla.org",
        hit(CatalogueKind::Telemetry, "telemetry", "telemetry (Mozilla)"),
    ),
    (
        "events.data.microsoft.com",
        hit(CatalogueKind::Telemetry, "telemetry", "telemetry (Windows)"),
    ),
    (
        "vortex.data.microsoft.com",
        hit(CatalogueKind::Telemetry, "telemetry", "telemetry (Windows)"),
    ),
    (
        "metrics.icloud.com",
        hit(CatalogueKind::Telemetry, "telemetry", "telemetry (Apple)"),
    ),
    (
        "crashlytics.com",
        hit(CatalogueKind::Telemetry, "telemetry", "crash reporting"),
    ),
    (
        "sentry.io",
        hit(CatalogueKind::Telemetry, "telemetry", "crash reporting"),
    ),
    (
        "push.apple.com",
        hit(
            CatalogueKind::BackgroundSync,
            "push",
            "push notification channel (Apple)",
        ),
    ),
    (
        "mtalk.google.com",
        hit(
            CatalogueKind::BackgroundSync,
            "push",
            "push notification channel (Google)",
        ),
    ),
    (
        "push.services.mozilla.com",
        hit(
            CatalogueKind::BackgroundSync,
            "push",
            "push notification channel (Mozilla)",
        ),
    ),
];

/// What the destination's protocol and port say.
pub fn by_port(ip_proto: u8, resp_port: u16) -> Option<CatalogueHit> {
    if let Some((_, h)) = IP_PROTOCOLS.iter().find(|(p, _)| *p == ip_proto) {
        return Some(*h);
    }
    PORTS
        .iter()
        .find(|(p, port, _)| *p == ip_proto && *port == resp_port)
        .map(|(_, _, h)| *h)
}

/// What the server name says (case-insensitive, trailing dot ignored).
pub fn by_name(name: &str) -> Option<CatalogueHit> {
    let name = name.strip_suffix('.').unwrap_or(name);
    NAMES
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
    let first = name.split('.').next().unwrap_or("").to_ascii_lowercase();
    name.contains('.')
        && (first == "ocsp"
            || first
                .strip_prefix("crl")
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit())))
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
    ip_proto == 6 && matches!(resp_port, 22 | 23 | 3389 | 5900 | 5901)
}

/// Ports of web traffic, where a page's assets follow the page.
pub fn is_web_port(ip_proto: u8, resp_port: u16) -> bool {
    matches!(
        (ip_proto, resp_port),
        (6, 80) | (6, 443) | (6, 8080) | (6, 8000) | (6, 8443) | (17, 443)
    )
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
