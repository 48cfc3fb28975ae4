//! End-to-end checks of `sessionscope analyze` on the project's own captures in sample-captures/.
//!
//! The captures were made by scripts/make-sample-captures.sh from real programs (curl, python3
//! sockets and http.server, dig + dnsmasq, ping) between two network namespaces. Every expected
//! value below comes from how the capture was made and from tcpdump's and tshark's reading of
//! it (listed per capture in sample-captures/README.md), never from sessionscope's own output.
//! Conventions are Zeek's conn.log: orig = the side that sent the first packet (the SYN for TCP),
//! ICMP "ports" are the type (orig_p) and the counterpart type or, for one-way messages, the
//! code (resp_p), bytes are payload bytes (TCP: from sequence numbers; ICMP: after the 8-byte
//! ICMP header), ip_bytes sum the IP total lengths.

#[path = "support/csv_rows.rs"]
mod csv_rows;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const HEADER: &str = "ts,uid,community_id,orig_h,orig_p,resp_h,resp_p,proto,service,duration,\
orig_bytes,resp_bytes,conn_state,missed_bytes,history,orig_pkts,orig_ip_bytes,resp_pkts,\
resp_ip_bytes,ip_proto,service_evidence,end_reason,tunnel_depth,related_uid,server_name,\
tls_version,tls_alpn,ja4,http_method,http_host,http_uri,http_user_agent,http_status,dns_query,\
dns_qtype,dns_rcode,dns_answers,netbios_name,ssh_client,ssh_server,banner,quic_version,\
dhcp_hostname,dhcp_vendor_class,ntp_version,ntp_mode,ssdp_target,initiator,initiator_reason,\
anomalies,sensor";

const ALL_CAPTURES: [&str; 9] = [
    "tcp-handshake-close.pcap",
    "tcp-refused.pcap",
    "tcp-reset.pcap",
    "tcp-half-open.pcap",
    "tcp-port-reuse.pcap",
    "udp-dns.pcap",
    "icmp-ping.pcap",
    "http-snaplen96-nano.pcap",
    "mixed-snaplen.pcapng",
];

/// One session as the capture's making and tcpdump/tshark say it must appear.
struct Expected {
    /// First packet's time, as tcpdump prints it (`-tt`; 9 decimals for nanosecond files).
    ts: &'static str,
    /// Last minus first packet's time; `None` for a single-packet session (Zeek leaves its
    /// duration and byte counts unset, so empty, `-` and 0 are all accepted there).
    duration: Option<&'static str>,
    community_id: &'static str,
    orig_h: &'static str,
    orig_p: u16,
    resp_h: &'static str,
    resp_p: u16,
    proto: &'static str,
    ip_proto: u8,
    conn_state: &'static str,
    /// Zeek history letters; empty for ICMP (Zeek leaves it unset).
    history: &'static str,
    orig_pkts: u64,
    orig_ip_bytes: u64,
    orig_bytes: u64,
    resp_pkts: u64,
    resp_ip_bytes: u64,
    resp_bytes: u64,
}

impl Expected {
    /// A TCP session from 192.0.2.1 (client) to 192.0.2.2 (server).
    #[allow(clippy::too_many_arguments)]
    const fn tcp(
        ts: &'static str,
        duration: &'static str,
        community_id: &'static str,
        orig_p: u16,
        resp_p: u16,
        conn_state: &'static str,
        history: &'static str,
        orig: (u64, u64, u64),
        resp: (u64, u64, u64),
    ) -> Expected {
        Expected {
            ts,
            duration: Some(duration),
            community_id,
            orig_h: CLIENT,
            orig_p,
            resp_h: SERVER,
            resp_p,
            proto: "tcp",
            ip_proto: 6,
            conn_state,
            history,
            orig_pkts: orig.0,
            orig_ip_bytes: orig.1,
            orig_bytes: orig.2,
            resp_pkts: resp.0,
            resp_ip_bytes: resp.1,
            resp_bytes: resp.2,
        }
    }
}

const CLIENT: &str = "192.0.2.1";
const SERVER: &str = "192.0.2.2";
const CLIENT6: &str = "2001:db8::1";
const SERVER6: &str = "2001:db8::2";

// Per-direction (packets, ip_bytes, payload bytes) of the HTTP exchanges: curl's request is 83
// bytes; the responses are 187 or 188 bytes of headers plus the 100/1000/4000-byte file. Every
// segment carries TCP timestamps: 52-byte headers (60 for SYN and SYN-ACK).
const GET_A_ORIG: (u64, u64, u64) = (7, 455, 83);
const GET_A_RESP: (u64, u64, u64) = (5, 555, 287);
const GET_B_ORIG: (u64, u64, u64) = (7, 455, 83);
const GET_B_RESP: (u64, u64, u64) = (5, 1456, 1188);
const GET_C_ORIG: (u64, u64, u64) = (9, 559, 83);
const GET_C_RESP: (u64, u64, u64) = (7, 4560, 4188);

// Durations follow Zeek's rule: a TCP session's last time stops advancing once both sides have
// sent their FIN, so the final ACK after the second FIN is not part of the duration. The values
// are the time from the first packet to the second FIN, read from `tcpdump -tt`.
//
// With a 96-byte snaplen every data segment loses part of its payload. Zeek does not reassemble a
// segment it did not capture whole, so when the peer acknowledges those bytes they are a content
// gap: G for the originator's request (acknowledged by the server's pure ACK, after 'a'), g for
// the responder's data (acknowledged by the client), and missed_bytes is the whole payload.
const SNAPLEN_HISTORY: &str = "ShADaGdgFf";

fn expected_sessions(capture: &str) -> Vec<Expected> {
    match capture {
        "tcp-handshake-close.pcap" => vec![
            Expected::tcp(
                "1795623298.921601",
                "0.006962",
                "1:7pawXyBgCvZU4HMxQndbWEtJMeU=",
                41001,
                8080,
                "SF",
                "ShADadFf",
                GET_A_ORIG,
                GET_A_RESP,
            ),
            Expected::tcp(
                "1795623299.447572",
                "0.002002",
                "1:VkKiowcsqETuiHr3SJ8lW70Z0do=",
                41002,
                8080,
                "SF",
                "ShADadFf",
                GET_B_ORIG,
                GET_B_RESP,
            ),
            Expected::tcp(
                "1795623299.967637",
                "0.002000",
                "1:/n8GzFUw6HBzP5wp6gIdo8w6Gyg=",
                41003,
                8080,
                "SF",
                "ShADadFf",
                GET_C_ORIG,
                GET_C_RESP,
            ),
        ],
        "tcp-refused.pcap" => vec![
            Expected::tcp(
                "1795623302.177843",
                "0.000053",
                "1:l/5Q5GI1C1UYudg3PZM2ESd+vIE=",
                41301,
                8090,
                "REJ",
                "Sr",
                (1, 60, 0),
                (1, 40, 0),
            ),
            Expected::tcp(
                "1795623302.713284",
                "0.000056",
                "1:a6ym8NRPcZl6cgoEJL0nLXMH0mY=",
                41302,
                8090,
                "REJ",
                "Sr",
                (1, 60, 0),
                (1, 40, 0),
            ),
        ],
        "tcp-reset.pcap" => vec![
            // ping\n, pong\n, then the client aborts.
            Expected::tcp(
                "1795623304.544884",
                "0.601527",
                "1:dbwxjZIomh9JOtOuNXg8VCMeHaE=",
                41101,
                8081,
                "RSTO",
                "ShADadR",
                (5, 273, 5),
                (3, 169, 5),
            ),
            // ping\n, then the server aborts.
            Expected::tcp(
                "1795623305.693434",
                "0.400978",
                "1:Oas4AHO+4dCj+P2q+cRGEfcuW88=",
                41102,
                8082,
                "RSTR",
                "ShADar",
                (3, 169, 5),
                (3, 164, 0),
            ),
        ],
        // The kernel's SYN and its two retransmissions, all with the same sequence number.
        "tcp-half-open.pcap" => vec![Expected::tcp(
            "1795623307.777807",
            "2.047109",
            "1:tXWmlNWTFqjRvV8kHxyYxlnLgj0=",
            41401,
            8099,
            "S0",
            "S",
            (3, 180, 0),
            (0, 0, 0),
        )],
        // The same 5-tuple twice; the server closes first each time.
        "tcp-port-reuse.pcap" => vec![
            Expected::tcp(
                "1795623312.099883",
                "0.801857",
                "1:WD54l+gDYKWDop0wrDdlfcuQ/GI=",
                41201,
                8083,
                "SF",
                "ShADadfF",
                (6, 325, 5),
                (5, 273, 5),
            ),
            Expected::tcp(
                "1795623313.941679",
                "0.801574",
                "1:WD54l+gDYKWDop0wrDdlfcuQ/GI=",
                41201,
                8083,
                "SF",
                "ShADadfF",
                (6, 325, 5),
                (5, 273, 5),
            ),
        ],
        "udp-dns.pcap" => vec![
            dns(
                "1795623316.565867",
                "0.000280",
                "1:fyTJ71uJZbKPsTD7f17f973SFuE=",
                53001,
                50,
            ),
            dns(
                "1795623317.104037",
                "0.000121",
                "1:QrnHy3EoSOX3B/uDEICZf0T5GPI=",
                53002,
                62,
            ),
            // "hello\n" to a closed port: no answer at UDP level.
            Expected {
                ts: "1795623317.650587",
                duration: None,
                community_id: "1:WltA1bfs50Yki4MRjLf7z5wn6EQ=",
                orig_h: CLIENT,
                orig_p: 53003,
                resp_h: SERVER,
                resp_p: 9999,
                proto: "udp",
                ip_proto: 17,
                conn_state: "S0",
                history: "D",
                orig_pkts: 1,
                orig_ip_bytes: 34,
                orig_bytes: 6,
                resp_pkts: 0,
                resp_ip_bytes: 0,
                resp_bytes: 0,
            },
            // The server's ICMP port unreachable (type 3, code 3) is a session of its own,
            // originated by the server; its payload quotes the 34-byte datagram.
            Expected {
                ts: "1795623317.650657",
                duration: None,
                community_id: "1:vd45MFHlio+j+MIFwhoVxuscjJI=",
                orig_h: SERVER,
                orig_p: 3,
                resp_h: CLIENT,
                resp_p: 3,
                proto: "icmp",
                ip_proto: 1,
                conn_state: "OTH",
                history: "",
                orig_pkts: 1,
                orig_ip_bytes: 62,
                orig_bytes: 34,
                resp_pkts: 0,
                resp_ip_bytes: 0,
                resp_bytes: 0,
            },
        ],
        "icmp-ping.pcap" => vec![
            ping(
                "1795623319.305831",
                "0.407304",
                "1:IOfYZQoUwQ3ZLk3+qU6KcSd9W5k=",
                3,
            ),
            // ICMPv6 echo request 128, its counterpart the echo reply 129; 40-byte IPv6 header.
            Expected {
                ts: "1795623320.221379",
                duration: Some("0.407585"),
                community_id: "1:u2vMS3HiWth2lIMKHB1fjELshpQ=",
                orig_h: CLIENT6,
                orig_p: 128,
                resp_h: SERVER6,
                resp_p: 129,
                proto: "icmp",
                ip_proto: 58,
                conn_state: "OTH",
                history: "",
                orig_pkts: 3,
                orig_ip_bytes: 312,
                orig_bytes: 168,
                resp_pkts: 3,
                resp_ip_bytes: 312,
                resp_bytes: 168,
            },
        ],
        "http-snaplen96-nano.pcap" => vec![Expected::tcp(
            "1795623322.286633776",
            "0.001871347",
            "1:EwiGSLiU3F0GjlfXKYMnETRH6HE=",
            41501,
            8080,
            "SF",
            SNAPLEN_HISTORY,
            GET_C_ORIG,
            GET_C_RESP,
        )],
        "mixed-snaplen.pcapng" => vec![
            Expected::tcp(
                "1795623324.073409466",
                "0.001855850",
                "1:i2w8/cWbGTDffInx4pC0v46UlgM=",
                41601,
                8080,
                "SF",
                SNAPLEN_HISTORY,
                GET_B_ORIG,
                GET_B_RESP,
            ),
            dns(
                "1795623324.598570144",
                "0.000137027",
                "1:JJuHO4LymAxSfFQAiCkRmBidygY=",
                53601,
                50,
            ),
            ping(
                "1795623325.120624514",
                "0.200424969",
                "1:IOfYZQoUwQ3ZLk3+qU6KcSd9W5k=",
                2,
            ),
        ],
        other => panic!("no expectations for {other}"),
    }
}

/// One dig query (34 bytes: header, www.example.test, A or AAAA, IN; no EDNS) and dnsmasq's
/// one-record answer (the question plus a 16- or 28-byte answer record).
fn dns(
    ts: &'static str,
    duration: &'static str,
    community_id: &'static str,
    client_port: u16,
    answer_len: u64,
) -> Expected {
    Expected {
        ts,
        duration: Some(duration),
        community_id,
        orig_h: CLIENT,
        orig_p: client_port,
        resp_h: SERVER,
        resp_p: 53,
        proto: "udp",
        ip_proto: 17,
        conn_state: "SF",
        history: "Dd",
        orig_pkts: 1,
        orig_ip_bytes: 28 + 34,
        orig_bytes: 34,
        resp_pkts: 1,
        resp_ip_bytes: 28 + answer_len,
        resp_bytes: answer_len,
    }
}

/// `ping -c N` over IPv4: N echo requests (type 8) and N replies, 56 bytes of data each,
/// 84-byte IP packets.
fn ping(ts: &'static str, duration: &'static str, community_id: &'static str, n: u64) -> Expected {
    Expected {
        ts,
        duration: Some(duration),
        community_id,
        orig_h: CLIENT,
        orig_p: 8,
        resp_h: SERVER,
        resp_p: 0,
        proto: "icmp",
        ip_proto: 1,
        conn_state: "OTH",
        history: "",
        orig_pkts: n,
        orig_ip_bytes: 84 * n,
        orig_bytes: 56 * n,
        resp_pkts: n,
        resp_ip_bytes: 84 * n,
        resp_bytes: 56 * n,
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary and reading its output
// ---------------------------------------------------------------------------------------------

use csv_rows::Row;

struct Analysis {
    header_line: String,
    rows: Vec<Row>,
}

fn capture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(name)
}

/// A fresh output directory under the system temp dir, removed when dropped.
struct OutDir(PathBuf);

impl OutDir {
    fn new(label: &str) -> OutDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "sessionscope-samples-{}-{n}-{}",
            std::process::id(),
            label.replace('.', "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        OutDir(dir)
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn analyze(capture: &str) -> Analysis {
    let out = OutDir::new(capture);
    let input = capture_path(capture);
    assert!(input.is_file(), "missing capture {}", input.display());
    let result = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(&input)
        .arg("--out")
        .arg(&out.0)
        .output()
        .expect("run sessionscope");
    assert_eq!(
        result.status.code(),
        Some(0),
        "sessionscope analyze {capture} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let csv_path = out.0.join("sessions.csv");
    let text = std::fs::read_to_string(&csv_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", csv_path.display()));
    let header_line = text.lines().next().unwrap_or_default().to_string();
    let (_, rows) = csv_rows::read(&csv_path);
    Analysis { header_line, rows }
}

fn field<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
}

fn number(row: &Row, name: &str) -> u64 {
    let text = field(row, name);
    text.parse()
        .unwrap_or_else(|_| panic!("{name} = {text:?} is not a count in {row:?}"))
}

/// Zeek leaves some fields unset; a CSV may write that as empty or `-`.
fn is_unset(text: &str) -> bool {
    text.is_empty() || text == "-"
}

fn seconds(text: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a number of seconds"))
}

/// Times are written with exactly 6 decimals. Where tcpdump printed microseconds the text must
/// match exactly; from a nanosecond file it must be within a microsecond of the exact value.
fn assert_time(what: &str, got: &str, expected: &str, context: &str) {
    let decimals = got.split_once('.').map(|(_, frac)| frac.len());
    assert_eq!(
        decimals,
        Some(6),
        "{what} {got:?} needs 6 decimals ({context})"
    );
    if expected.split_once('.').map(|(_, frac)| frac.len()) == Some(6) {
        assert_eq!(got, expected, "{what} ({context})");
    } else {
        let diff = (seconds(got) - seconds(expected)).abs();
        assert!(diff <= 1.01e-6, "{what} {got} vs {expected} ({context})");
    }
}

fn assert_session(capture: &str, index: usize, row: &Row, want: &Expected) {
    let context = format!("{capture} session {index}: {row:?}");
    assert_time("ts", field(row, "ts"), want.ts, &context);
    assert_eq!(field(row, "proto"), want.proto, "proto ({context})");
    assert_eq!(
        number(row, "ip_proto"),
        u64::from(want.ip_proto),
        "ip_proto ({context})"
    );
    assert_eq!(field(row, "orig_h"), want.orig_h, "orig_h ({context})");
    assert_eq!(
        number(row, "orig_p"),
        u64::from(want.orig_p),
        "orig_p ({context})"
    );
    assert_eq!(field(row, "resp_h"), want.resp_h, "resp_h ({context})");
    assert_eq!(
        number(row, "resp_p"),
        u64::from(want.resp_p),
        "resp_p ({context})"
    );
    assert_eq!(
        field(row, "conn_state"),
        want.conn_state,
        "conn_state ({context})"
    );
    if want.history.is_empty() {
        assert!(is_unset(field(row, "history")), "history ({context})");
    } else {
        assert_eq!(field(row, "history"), want.history, "history ({context})");
    }
    assert_eq!(
        number(row, "orig_pkts"),
        want.orig_pkts,
        "orig_pkts ({context})"
    );
    assert_eq!(
        number(row, "orig_ip_bytes"),
        want.orig_ip_bytes,
        "orig_ip_bytes ({context})"
    );
    assert_eq!(
        number(row, "resp_pkts"),
        want.resp_pkts,
        "resp_pkts ({context})"
    );
    assert_eq!(
        number(row, "resp_ip_bytes"),
        want.resp_ip_bytes,
        "resp_ip_bytes ({context})"
    );
    assert_eq!(
        field(row, "community_id"),
        want.community_id,
        "community_id ({context})"
    );
    assert_eq!(number(row, "tunnel_depth"), 0, "tunnel_depth ({context})");
    assert!(!field(row, "uid").is_empty(), "uid ({context})");
    match want.duration {
        Some(duration) => {
            assert_time("duration", field(row, "duration"), duration, &context);
            assert_eq!(
                number(row, "orig_bytes"),
                want.orig_bytes,
                "orig_bytes ({context})"
            );
            assert_eq!(
                number(row, "resp_bytes"),
                want.resp_bytes,
                "resp_bytes ({context})"
            );
        }
        None => {
            // A single packet: duration 0 (or unset, as Zeek has it); bytes when written.
            let duration = field(row, "duration");
            assert!(
                is_unset(duration) || seconds(duration) == 0.0,
                "duration ({context})"
            );
            for (name, value) in [
                ("orig_bytes", want.orig_bytes),
                ("resp_bytes", want.resp_bytes),
            ] {
                if !is_unset(field(row, name)) {
                    assert_eq!(number(row, name), value, "{name} ({context})");
                }
            }
        }
    }
}

fn check_capture(capture: &str) {
    let analysis = analyze(capture);
    let expected = expected_sessions(capture);
    assert_eq!(
        analysis.rows.len(),
        expected.len(),
        "{capture}: session count; rows: {:#?}",
        analysis.rows
    );
    // Rows come in start order, and so do the expectations.
    for (index, (row, want)) in analysis.rows.iter().zip(&expected).enumerate() {
        assert_session(capture, index, row, want);
    }
}

// ---------------------------------------------------------------------------------------------
// One test per capture
// ---------------------------------------------------------------------------------------------

#[test]
fn http_requests_are_complete_sessions() {
    check_capture("tcp-handshake-close.pcap");
}

#[test]
fn connects_to_a_closed_port_are_rejected() {
    check_capture("tcp-refused.pcap");
}

#[test]
fn aborts_by_either_side_are_resets() {
    check_capture("tcp-reset.pcap");
}

#[test]
fn unanswered_syns_are_one_attempt_with_every_retransmission_counted() {
    check_capture("tcp-half-open.pcap");
}

#[test]
fn a_reused_client_port_makes_a_second_session() {
    check_capture("tcp-port-reuse.pcap");
    let analysis = analyze("tcp-port-reuse.pcap");
    let first = &analysis.rows[0];
    let second = &analysis.rows[1];
    assert_ne!(field(first, "uid"), field(second, "uid"));
    // The second SYN came 1.04 s after the first session's teardown, inside Zeek's 5 s close
    // delay, so it is the new SYN that ended the first session.
    assert_eq!(field(first, "end_reason"), "port_reuse", "{first:?}");
}

#[test]
fn dns_exchanges_and_a_port_unreachable() {
    check_capture("udp-dns.pcap");
}

#[test]
fn port_unreachable_is_tied_to_the_datagram_it_quotes() {
    // The UDP datagram to closed port 9999 drew the only ICMP error in the capture.
    let rows = analyze("udp-dns.pcap").rows;
    let udp = rows
        .iter()
        .find(|row| field(row, "proto") == "udp" && field(row, "resp_p") == "9999")
        .expect("the datagram to the closed port");
    let icmp = rows
        .iter()
        .find(|row| field(row, "proto") == "icmp")
        .expect("the port unreachable");
    assert_eq!(field(icmp, "related_uid"), field(udp, "uid"));
    assert_eq!(field(udp, "related_uid"), field(icmp, "uid"));
    for row in rows.iter().filter(|row| field(row, "resp_p") == "53") {
        assert!(is_unset(field(row, "related_uid")), "{row:?}");
    }
}

#[test]
fn dns_sessions_are_named_dns() {
    let analysis = analyze("udp-dns.pcap");
    for row in analysis
        .rows
        .iter()
        .filter(|row| field(row, "resp_p") == "53")
    {
        assert_eq!(field(row, "service"), "dns", "{row:?}");
        assert!(!is_unset(field(row, "service_evidence")), "{row:?}");
    }
}

#[test]
fn pings_over_ipv4_and_ipv6() {
    check_capture("icmp-ping.pcap");
}

#[test]
fn snaplen_96_nanosecond_pcap_counts_from_headers() {
    // Every packet was cut to 96 bytes: bytes still come from sequence numbers and ip_bytes
    // from the IP total lengths, as if the payload had been captured.
    check_capture("http-snaplen96-nano.pcap");
}

#[test]
fn snaplen_96_pcapng_with_three_protocols() {
    check_capture("mixed-snaplen.pcapng");
}

// ---------------------------------------------------------------------------------------------
// Properties of every output
// ---------------------------------------------------------------------------------------------

#[test]
fn header_is_exactly_the_documented_one() {
    for capture in ALL_CAPTURES {
        assert_eq!(analyze(capture).header_line, HEADER, "{capture}");
    }
}

#[test]
fn rows_are_in_start_order() {
    for capture in ALL_CAPTURES {
        let analysis = analyze(capture);
        let starts: Vec<f64> = analysis
            .rows
            .iter()
            .map(|row| seconds(field(row, "ts")))
            .collect();
        assert!(
            starts.windows(2).all(|pair| pair[0] <= pair[1]),
            "{capture}: {starts:?}"
        );
    }
}

#[test]
fn same_capture_gives_same_uids() {
    for capture in ALL_CAPTURES {
        let uids = |analysis: Analysis| -> Vec<String> {
            analysis
                .rows
                .iter()
                .map(|row| field(row, "uid").to_string())
                .collect()
        };
        let first = uids(analyze(capture));
        let second = uids(analyze(capture));
        assert_eq!(first, second, "{capture}");
        let mut unique = first.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            first.len(),
            "{capture}: uids repeat: {first:?}"
        );
    }
}

#[test]
fn icmp_rows_carry_type_and_code_in_the_ports() {
    let analysis = analyze("icmp-ping.pcap");
    let echo = analysis
        .rows
        .iter()
        .find(|row| field(row, "proto") == "icmp" && field(row, "ip_proto") == "1")
        .expect("an ICMPv4 row");
    assert_eq!(field(echo, "orig_p"), "8", "echo request type: {echo:?}");
    assert_eq!(field(echo, "resp_p"), "0", "echo reply type: {echo:?}");
    let unreachable = analyze("udp-dns.pcap")
        .rows
        .into_iter()
        .find(|row| field(row, "proto") == "icmp")
        .expect("an ICMP row");
    assert_eq!(
        field(&unreachable, "orig_p"),
        "3",
        "destination unreachable"
    );
    assert_eq!(field(&unreachable, "resp_p"), "3", "code: port unreachable");
}

#[test]
fn snaplen_cut_payload_is_missed() {
    // Every payload byte of these HTTP exchanges was cut by the snaplen (see SNAPLEN_HISTORY):
    // the request (83) plus the response (4188 for c.txt, 1188 for b.txt).
    for (capture, missed) in [
        ("http-snaplen96-nano.pcap", 83 + 4188),
        ("mixed-snaplen.pcapng", 83 + 1188),
    ] {
        let rows = analyze(capture).rows;
        let tcp = rows
            .iter()
            .find(|row| field(row, "proto") == "tcp")
            .expect("a TCP row");
        assert_eq!(field(tcp, "missed_bytes"), missed.to_string(), "{capture}");
    }
}

#[test]
fn complete_captures_miss_no_bytes() {
    for capture in ALL_CAPTURES.iter().filter(|name| !name.contains("snaplen")) {
        for row in analyze(capture).rows {
            let missed = field(&row, "missed_bytes");
            assert!(is_unset(missed) || missed == "0", "{capture}: {row:?}");
        }
    }
}
