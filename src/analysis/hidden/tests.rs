//! Each signal on its own, with hand-built sessions whose expected labels follow from how they
//! were built.

use super::*;
use crate::session::{
    ConnState, DirectionStats, EndReason, Endpoint, History, Proto, ServiceEvidence, Uid,
};

const T0: i64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn record(start_s: f64, orig: &str, resp: &str, port: u16, proto: Proto) -> SessionRecord {
    let start = Timestamp(((T0 as f64 + start_s) * 1e9) as i64);
    SessionRecord {
        uid: Uid::default(),
        start,
        last: start.add_nanos(50_000_000),
        orig: Endpoint {
            addr: ip(orig),
            port: 40000,
        },
        resp: Endpoint {
            addr: ip(resp),
            port,
        },
        proto,
        ip_proto: match proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Other(n) => n,
        },
        orig_stats: DirectionStats {
            pkts: 4,
            ip_bytes: 300,
            bytes: 100,
        },
        resp_stats: DirectionStats {
            pkts: 4,
            ip_bytes: 500,
            bytes: 300,
        },
        conn_state: ConnState::SF,
        history: History::default(),
        missed_bytes: 0,
        service: None,
        service_evidence: ServiceEvidence::None,
        end_reason: EndReason::Closed,
        tunnel_depth: 0,
        related_uid: None,
        content: None,
        anomalies: Default::default(),
    }
}

/// Observes `facts` in the order given and labels them in start order, as the CSV writer does.
fn run(
    options: HiddenOptions,
    facts: &[SessionFacts<'_>],
) -> (HiddenReport, Vec<(Timestamp, Label)>) {
    let mut analyzer = HiddenAnalyzer::new(options);
    let mut tags = Vec::new();
    for f in facts {
        let mut tag = Vec::new();
        analyzer.observe(f, &mut tag);
        tags.push((f.record.start, tag));
    }
    let report = analyzer.finish();
    tags.sort_by_key(|(start, _)| *start);
    let mut labeller = report.labeller();
    let labels = tags
        .iter()
        .map(|(start, tag)| (*start, labeller.label(tag)))
        .collect();
    drop(labeller);
    (report, labels)
}

fn labels_of(records: &[SessionRecord]) -> (HiddenReport, Vec<Label>) {
    let facts: Vec<SessionFacts> = records.iter().map(SessionFacts::from_record).collect();
    let (report, labels) = run(HiddenOptions::default(), &facts);
    (report, labels.into_iter().map(|(_, l)| l).collect())
}

#[test]
fn catalogue_ports_label_infrastructure() {
    let records = [
        record(0.0, "192.0.2.1", "192.0.2.2", 53, Proto::Udp),
        record(1.0, "192.0.2.1", "192.0.2.92", 123, Proto::Udp),
        record(2.0, "192.0.2.1", "255.255.255.255", 67, Proto::Udp),
        record(3.0, "192.0.2.1", "239.255.255.250", 1900, Proto::Udp),
        record(4.0, "192.0.2.1", "224.0.0.22", 0, Proto::Other(2)),
    ];
    let (report, labels) = labels_of(&records);
    let reasons: Vec<&str> = labels.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        labels.iter().all(|l| l.initiator == Initiator::Technology),
        "{labels:?}"
    );
    assert_eq!(reasons[0], "DNS lookup made by the resolver");
    assert_eq!(reasons[1], "NTP time sync");
    assert_eq!(
        reasons[2],
        "DHCP address configuration to broadcast 255.255.255.255"
    );
    assert_eq!(
        reasons[3],
        "multicast discovery (SSDP) to multicast group 239.255.255.250"
    );
    assert_eq!(
        reasons[4],
        "IGMP multicast membership to multicast group 224.0.0.22"
    );
    assert_eq!(report.patterns.len(), 5);
}

#[test]
fn periodic_beacon_is_found_with_period_and_jitter() {
    // Every 30 s with a deterministic +-1.5 s wobble; identical sizes.
    let mut records: Vec<SessionRecord> = (0..41)
        .map(|i| {
            let wobble = [0.0, 1.5, -1.0, 0.5, -1.5][i % 5];
            record(
                i as f64 * 30.0 + wobble,
                "10.0.0.5",
                "203.0.113.9",
                8443,
                Proto::Tcp,
            )
        })
        .collect();
    // Sessions end (and reach the analysis) out of start order.
    records.reverse();
    let (report, labels) = labels_of(&records);
    assert!(
        labels.iter().all(|l| l.initiator == Initiator::Technology),
        "{labels:?}"
    );
    assert!(
        labels[0]
            .reason
            .starts_with("periodic: 41 sessions every 30.0 s, jitter"),
        "{}",
        labels[0].reason
    );
    let p = &report.patterns[0];
    assert_eq!(p.kind, PatternKind::Beacon);
    assert_eq!(p.sessions, 41);
    assert!((p.period_s.unwrap() - 30.0).abs() < 0.5);
    assert!(p.jitter.unwrap() < 0.1);
    assert_eq!((p.orig_bytes, p.resp_bytes), (41 * 100, 41 * 300));
}

#[test]
fn person_with_think_times_stays_user() {
    // Irregular visits to one web server: gaps from a fixed, clearly irregular list.
    let gaps = [3.0, 41.0, 7.5, 95.0, 12.0, 2.2, 60.0, 19.0, 140.0, 5.0];
    let mut t = 0.0;
    let records: Vec<SessionRecord> = gaps
        .iter()
        .map(|g| {
            t += g;
            record(t, "10.0.0.5", "198.51.100.80", 443, Proto::Tcp)
        })
        .collect();
    let (report, labels) = labels_of(&records);
    assert!(
        labels.iter().all(|l| l.initiator == Initiator::User),
        "{labels:?}"
    );
    assert!(report.patterns.is_empty(), "{:?}", report.patterns);
}

#[test]
fn page_assets_are_user_and_their_lookups_technology() {
    let records = [
        record(10.000, "10.0.0.5", "10.0.0.53", 53, Proto::Udp),
        record(10.010, "10.0.0.5", "198.51.100.80", 80, Proto::Tcp),
        record(10.200, "10.0.0.5", "10.0.0.53", 53, Proto::Udp),
        record(10.400, "10.0.0.5", "198.51.100.81", 80, Proto::Tcp),
        record(10.410, "10.0.0.5", "198.51.100.81", 80, Proto::Tcp),
    ];
    let (_, labels) = labels_of(&records);
    let who: Vec<Initiator> = labels.iter().map(|l| l.initiator).collect();
    use Initiator::*;
    assert_eq!(who, [Technology, User, Technology, User, User]);
    assert_eq!(labels[1].reason, "page or request to 198.51.100.80");
    assert_eq!(
        labels[3].reason,
        "part of the page load of 198.51.100.80 started 0.39 s earlier"
    );
}

#[test]
fn keep_alive_connection() {
    let mut r = record(0.0, "10.0.0.5", "198.51.100.9", 7000, Proto::Tcp);
    r.last = r.start.add_nanos(180_000_000_000);
    r.orig_stats = DirectionStats {
        pkts: 27,
        ip_bytes: 27 * 57,
        bytes: 18 * 5,
    };
    r.resp_stats = DirectionStats {
        pkts: 27,
        ip_bytes: 27 * 57,
        bytes: 18 * 5,
    };
    // The same shape on the ssh port is a person at a terminal.
    let mut ssh = r.clone();
    ssh.resp.port = 22;
    let (report, labels) = labels_of(&[r, ssh]);
    assert_eq!(labels[0].initiator, Initiator::Technology);
    assert!(
        labels[0]
            .reason
            .starts_with("long-lived connection (180 s) kept up by small messages"),
        "{}",
        labels[0].reason
    );
    assert_eq!(labels[1].initiator, Initiator::User);
    assert_eq!(labels[1].reason, "interactive session (port 22)");
    assert_eq!(report.patterns.len(), 1);
    assert_eq!(report.patterns[0].kind, PatternKind::KeepAlive);
}

#[test]
fn dns_causality_names_connections_and_merges_cdn_addresses() {
    // A beacon to c2.example.net every 60 s; the name's address changes every 4 beats (a CDN),
    // so by address no series is long enough, by name it is one series.
    let addrs = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"];
    let answers: Vec<[IpAddr; 1]> = addrs.iter().map(|a| [ip(a)]).collect();
    let mut lookups = Vec::new();
    let mut conns = Vec::new();
    for i in 0..16 {
        let t = i as f64 * 60.0;
        lookups.push(record(t, "10.0.0.5", "10.0.0.53", 53, Proto::Udp));
        conns.push(record(t + 0.05, "10.0.0.5", addrs[i / 4], 443, Proto::Tcp));
    }
    let mut facts = Vec::new();
    for i in 0..16 {
        facts.push(SessionFacts {
            record: &lookups[i],
            server_name: None,
            dns_query: Some("c2.example.net"),
            dns_answers: &answers[i / 4],
        });
        facts.push(SessionFacts::from_record(&conns[i]));
    }
    let (report, labels) = run(HiddenOptions::default(), &facts);
    let conn_labels: Vec<&Label> = labels
        .iter()
        .filter(|(_, l)| !l.reason.starts_with("DNS"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(conn_labels.len(), 16);
    for l in &conn_labels {
        assert_eq!(l.initiator, Initiator::Technology, "{l:?}");
        assert!(
            l.reason.contains("every 60.0 s") && l.reason.contains("c2.example.net at 4 addresses"),
            "{}",
            l.reason
        );
    }
    let beacon: Vec<&HiddenPattern> = report
        .patterns
        .iter()
        .filter(|p| p.kind == PatternKind::Beacon)
        .collect();
    assert_eq!(beacon.len(), 1, "{:?}", report.patterns);
    assert_eq!(beacon[0].sessions, 16);
    assert_eq!(beacon[0].dest_addresses, 4);
    assert_eq!(beacon[0].name.as_deref(), Some("c2.example.net"));
    assert!((beacon[0].period_s.unwrap() - 60.0).abs() < 0.01);
}

#[test]
fn names_from_content_hit_the_catalogue() {
    let r = record(0.0, "10.0.0.5", "198.51.100.7", 80, Proto::Tcp);
    let facts = [SessionFacts {
        record: &r,
        server_name: Some("ocsp.digicert.com"),
        dns_query: None,
        dns_answers: &[],
    }];
    let (report, labels) = run(HiddenOptions::default(), &facts);
    assert_eq!(labels[0].1.initiator, Initiator::Technology);
    assert_eq!(
        labels[0].1.reason,
        "certificate status check (OCSP) (ocsp.digicert.com)"
    );
    assert_eq!(report.patterns[0].service, "ocsp");
}

#[test]
fn idle_repeats_are_technology() {
    // The person browses at t=0; then the host keeps calling one server at irregular times
    // long after the person left.
    let mut records = vec![record(0.0, "10.0.0.5", "198.51.100.80", 443, Proto::Tcp)];
    for t in [400.0, 1300.0, 1450.0, 3000.0] {
        records.push(record(t, "10.0.0.5", "198.51.100.99", 9000, Proto::Tcp));
    }
    let (_, labels) = labels_of(&records);
    assert_eq!(labels[0].initiator, Initiator::User);
    for l in &labels[1..] {
        assert_eq!(l.initiator, Initiator::Technology, "{l:?}");
        assert!(
            l.reason.starts_with("during an idle period"),
            "{}",
            l.reason
        );
    }
}

#[test]
fn options_filter_patterns_and_allow_list_marks_them() {
    let mut records = Vec::new();
    for i in 0..10 {
        records.push(record(
            i as f64 * 10.0,
            "10.0.0.5",
            "198.51.100.1",
            123,
            Proto::Udp,
        ));
        records.push(record(
            i as f64 * 10.0,
            "172.16.0.9",
            "198.51.100.1",
            123,
            Proto::Udp,
        ));
    }
    records.push(record(0.0, "10.0.0.5", "198.51.100.2", 53, Proto::Udp));
    let facts: Vec<SessionFacts> = records.iter().map(SessionFacts::from_record).collect();
    let options = HiddenOptions {
        local_nets: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        min_sessions: 2,
        allow_list: AllowList::parse("* 198.51.100.1 123").unwrap(),
        ..HiddenOptions::default()
    };
    let (report, _) = run(options, &facts);
    let shown: Vec<&HiddenPattern> = report.shown().collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].host, ip("10.0.0.5"));
    assert_eq!(shown[0].port, 123);
    assert!(shown[0].allowed);
    assert!((shown[0].period_s.unwrap() - 10.0).abs() < 1e-6);
}

#[test]
fn dns_names_are_bounded_and_keep_the_latest() {
    let mut names = DnsNames::default();
    let c = ip("10.0.0.5");
    names.insert(c, ip("1.1.1.1"), "old.test", Timestamp(10));
    names.insert(c, ip("1.1.1.1"), "new.test", Timestamp(20));
    names.insert(c, ip("1.1.1.1"), "older.test", Timestamp(5));
    assert_eq!(
        names.name_for(c, ip("1.1.1.1")),
        Some(("new.test", Timestamp(20)))
    );
    assert_eq!(names.name_for(ip("10.0.0.6"), ip("1.1.1.1")), None);
    for i in 0..(MAX_DNS_PAIRS as u32 + 10) {
        names.insert(c, IpAddr::V4(i.into()), "x.test", Timestamp(1));
    }
    assert_eq!(names.names.len(), MAX_DNS_PAIRS);
}

#[test]
fn dns_names_past_the_cap_do_not_depend_on_the_order_of_the_answers() {
    // More pairs than fit, two answers for some at the same time: forwards and backwards.
    let answers: Vec<(IpAddr, &str, Timestamp)> = (0..(MAX_DNS_PAIRS as u32 + 500))
        .flat_map(|i| {
            let addr = IpAddr::V4((0x0a00_0000 + i).into());
            let mut both = vec![(addr, "a.test", Timestamp(i64::from(i % 7)))];
            if i % 1000 == 0 {
                both.push((addr, "b.test", Timestamp(i64::from(i % 7))));
            }
            both
        })
        .collect();
    let c = ip("192.0.2.1");
    let mut tables = Vec::new();
    for reverse in [false, true] {
        let mut names = DnsNames::default();
        let mut order: Vec<_> = answers.iter().collect();
        if reverse {
            order.reverse();
        }
        for (addr, name, ts) in order {
            names.insert(c, *addr, name, *ts);
        }
        assert_eq!(names.names.len(), MAX_DNS_PAIRS);
        let mut held: Vec<(IpAddr, String)> = names
            .names
            .iter()
            .map(|((_, addr), (name, _))| (*addr, name.to_string()))
            .collect();
        held.sort();
        tables.push(held);
    }
    assert!(tables[0] == tables[1]);
    // Same time, two names: the greater one, whichever came last.
    let twice: Vec<&(IpAddr, String)> = tables[0]
        .iter()
        .filter(|(addr, _)| match addr {
            IpAddr::V4(v4) => (u32::from(*v4) - 0x0a00_0000) % 1000 == 0,
            IpAddr::V6(_) => false,
        })
        .collect();
    assert!(!twice.is_empty());
    assert!(twice.iter().all(|(_, name)| name == "b.test"), "{twice:?}");
}
