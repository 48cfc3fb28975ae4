//! End-to-end checks of `sessionscope analyze` on the service captures made from Debian's own
//! servers and clients by scripts/make-service-captures.sh (chrony, udhcpc + dnsmasq, avahi,
//! llmnrd, samba's nmbd, miniupnpd + upnpc, dovecot + curl).
//!
//! Every expected value comes from what the programs were told (their configuration and command
//! lines, in the script and in sample-captures/README.md) or from tcpdump's and tshark 4.0's
//! reading of the packets, never from sessionscope's output. Client ports the programs chose
//! themselves (llmnr-query, nmblookup, upnpc) are not asserted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Row = HashMap<String, String>;

/// Runs `sessionscope analyze` on a sample capture and returns its sessions.csv rows.
fn sessions(file: &str) -> Vec<Row> {
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(file);
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("content-{file}"));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run sessionscope");
    assert!(status.status.success(), "{file}: {status:?}");
    let mut reader = csv::Reader::from_path(out.join("sessions.csv")).expect("sessions.csv");
    reader
        .deserialize::<Row>()
        .map(|row| row.expect("csv row"))
        .collect()
}

/// The one session matching `pred`.
fn one<'a>(rows: &'a [Row], what: &str, pred: impl Fn(&Row) -> bool) -> &'a Row {
    let found: Vec<&Row> = rows.iter().filter(|r| pred(r)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}\nall: {rows:#?}");
    found[0]
}

fn col<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or_default()
}

/// A session between two endpoints, either way round (content may make the answerer `orig`).
fn between(row: &Row, a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    let side = |h: &str, p: &str, (host, port): (&str, Option<&str>)| {
        h == host && port.is_none_or(|port| p == port)
    };
    let (oh, op, rh, rp) = (
        col(row, "orig_h"),
        col(row, "orig_p"),
        col(row, "resp_h"),
        col(row, "resp_p"),
    );
    (side(oh, op, a) && side(rh, rp, b)) || (side(oh, op, b) && side(rh, rp, a))
}

const CLIENT: &str = "192.0.2.1";
const SERVER: &str = "192.0.2.2";

#[test]
fn ntp_from_chrony() {
    // chronyd -Q with `acquisitionport 53301` and `maxsamples 3` against chronyd; tcpdump shows
    // three NTPv4 client/server pairs.
    let rows = sessions("content-ntp.pcap");
    assert_eq!(rows.len(), 1);
    let s = &rows[0];
    assert_eq!(
        (
            col(s, "orig_h"),
            col(s, "orig_p"),
            col(s, "resp_h"),
            col(s, "resp_p")
        ),
        (CLIENT, "53301", SERVER, "123")
    );
    assert_eq!(col(s, "proto"), "udp");
    assert_eq!(col(s, "service"), "ntp");
    assert_eq!(col(s, "service_evidence"), "content");
    assert_eq!(col(s, "ntp_version"), "4");
    assert_eq!(col(s, "ntp_mode"), "client");
    assert_eq!((col(s, "orig_pkts"), col(s, "resp_pkts")), ("3", "3"));
}

#[test]
fn dhcp_from_udhcpc_and_dnsmasq() {
    // udhcpc -x hostname:sessionscope-client -V sessionscope-vendor/1.0; dnsmasq hands out
    // 192.0.2.100 (--dhcp-host) and answers to that address.
    let rows = sessions("content-dhcp.pcap");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let client = one(&rows, "broadcast requests", |r| {
        between(r, ("0.0.0.0", Some("68")), ("255.255.255.255", Some("67")))
    });
    assert_eq!(col(client, "orig_h"), "0.0.0.0");
    assert_eq!(col(client, "service"), "dhcp");
    assert_eq!(col(client, "dhcp_hostname"), "sessionscope-client");
    assert_eq!(col(client, "dhcp_vendor_class"), "sessionscope-vendor/1.0");
    assert_eq!(col(client, "orig_pkts"), "2"); // DISCOVER, REQUEST
    let server = one(&rows, "replies", |r| {
        between(r, (SERVER, Some("67")), ("192.0.2.100", Some("68")))
    });
    assert_eq!(col(server, "service"), "dhcp");
}

#[test]
fn mdns_from_avahi() {
    // avahi-daemon host-name=sessionscope-srv on 192.0.2.2 and sessionscope-cli on 192.0.2.1:
    // each probes for its reverse name and host name (tcpdump: first question the reverse
    // name) and announces both; then avahi-resolve -n sessionscope-srv.local on the client.
    let rows = sessions("content-mdns.pcap");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (host, name, reverse) in [
        (SERVER, "sessionscope-srv.local", "2.2.0.192.in-addr.arpa"),
        (CLIENT, "sessionscope-cli.local", "1.2.0.192.in-addr.arpa"),
    ] {
        let s = one(&rows, host, |r| {
            between(r, (host, Some("5353")), ("224.0.0.251", Some("5353")))
        });
        assert_eq!(col(s, "orig_h"), host);
        assert_eq!(col(s, "service"), "dns", "Zeek names mDNS `dns`");
        assert_eq!(col(s, "dns_query"), reverse);
        assert_eq!(col(s, "dns_qtype"), "ANY");
        assert!(col(s, "dns_answers").contains(name), "{s:?}");
        assert!(col(s, "dns_answers").contains(host), "{s:?}");
    }
}

#[test]
fn llmnr_from_llmnrd() {
    // llmnr-query -T A sessionscope-srv (to 224.0.0.252:5355); llmnrd -H sessionscope-srv
    // answers from 192.0.2.2:5355 with its address.
    let rows = sessions("content-llmnr.pcap");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let query = one(&rows, "query", |r| col(r, "resp_h") == "224.0.0.252");
    let answer = one(&rows, "answer", |r| {
        between(r, (CLIENT, None), (SERVER, Some("5355")))
    });
    for s in [query, answer] {
        assert_eq!(col(s, "service"), "dns", "Zeek names LLMNR `dns`");
        assert_eq!(col(s, "dns_query"), "sessionscope-srv");
        assert_eq!(col(s, "dns_qtype"), "A");
    }
    assert_eq!(col(query, "resp_p"), "5355");
    assert_eq!(col(answer, "dns_rcode"), "NOERROR");
    assert_eq!(col(answer, "dns_answers"), SERVER);
}

#[test]
fn netbios_from_nmbd_and_nmblookup() {
    // nmbd `netbios name = SSCOPE-SRV`, `workgroup = SSCOPETEST` registers its names by
    // broadcast (tshark: SSCOPE-SRV<20> first) and sends browse announcements on 138 from
    // SSCOPE-SRV<00>; nmblookup asks for SSCOPE-SRV (type 0x00) by unicast, then by broadcast.
    let rows = sessions("content-netbios.pcap");
    let registrations = one(&rows, "registrations", |r| {
        between(r, (SERVER, Some("137")), ("192.0.2.255", Some("137")))
    });
    assert_eq!(
        col(registrations, "service"),
        "dns",
        "Zeek names NBNS `dns`"
    );
    assert_eq!(col(registrations, "netbios_name"), "SSCOPE-SRV<20>");
    let browse = one(&rows, "browse", |r| {
        between(r, (SERVER, Some("138")), ("192.0.2.255", Some("138")))
    });
    assert_eq!(col(browse, "service"), "netbios-dgm");
    assert_eq!(col(browse, "netbios_name"), "SSCOPE-SRV<00>");
    let lookups: Vec<&Row> = rows
        .iter()
        .filter(|r| between(r, (CLIENT, None), (SERVER, Some("137"))))
        .collect();
    assert_eq!(
        lookups.len(),
        2,
        "unicast query and the answer to the broadcast one"
    );
    let broadcast = one(&rows, "broadcast query", |r| {
        between(r, (CLIENT, None), ("192.0.2.255", Some("137")))
    });
    for s in lookups.into_iter().chain([broadcast]) {
        assert_eq!(col(s, "service"), "dns");
        assert_eq!(col(s, "netbios_name"), "SSCOPE-SRV<00>");
    }
}

#[test]
fn ssdp_from_miniupnpd_and_upnpc() {
    // miniupnpd (IGD, HTTP on 5000) multicasts NOTIFYs (tshark: first NT upnp:rootdevice);
    // upnpc searches for an InternetGatewayDevice:1, gets a unicast 200 from port 1900, then
    // fetches rootDesc.xml and calls the control URL over HTTP.
    let rows = sessions("content-ssdp.pcap");
    let notify = one(&rows, "NOTIFY", |r| {
        col(r, "orig_h") == SERVER && col(r, "resp_h") == "239.255.255.250"
    });
    assert_eq!(col(notify, "service"), "ssdp");
    assert_eq!(col(notify, "http_method"), "NOTIFY");
    assert_eq!(col(notify, "ssdp_target"), "upnp:rootdevice");
    let igd = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
    let search = one(&rows, "M-SEARCH", |r| {
        col(r, "orig_h") == CLIENT && col(r, "resp_h") == "239.255.255.250"
    });
    assert_eq!(col(search, "service"), "ssdp");
    assert_eq!(col(search, "http_method"), "M-SEARCH");
    assert_eq!(col(search, "ssdp_target"), igd);
    let answer = one(&rows, "M-SEARCH answer", |r| {
        between(r, (SERVER, Some("1900")), (CLIENT, None))
    });
    assert_eq!(col(answer, "service"), "ssdp");
    assert_eq!(col(answer, "http_status"), "200");
    assert_eq!(col(answer, "ssdp_target"), igd);
    let description = one(&rows, "description", |r| {
        col(r, "http_uri") == "/rootDesc.xml"
    });
    assert_eq!(col(description, "service"), "http");
    assert_eq!(col(description, "resp_p"), "5000");
    assert!(col(description, "http_user_agent").contains("MiniUPnPc/2.2.4"));
}

const GREETING_END: &str = "sessionscope test mail server ready.";

#[test]
fn imap_and_pop3_from_dovecot() {
    // curl -u user:secret imap://mail.example.test/ (port 41501) and pop3:// (41502) against
    // dovecot with `login_greeting = sessionscope test mail server ready.`
    let imap = sessions("content-imap.pcap");
    assert_eq!(imap.len(), 1);
    let s = &imap[0];
    assert_eq!((col(s, "orig_p"), col(s, "resp_p")), ("41501", "143"));
    assert_eq!(col(s, "service"), "imap");
    assert_eq!(col(s, "service_evidence"), "content");
    let banner = col(s, "banner");
    assert!(
        banner.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{banner}"
    );
    assert!(banner.ends_with(GREETING_END), "{banner}");
    assert_eq!(col(s, "tls_version"), "");

    let pop3 = sessions("content-pop3.pcap");
    assert_eq!(pop3.len(), 1);
    let s = &pop3[0];
    assert_eq!((col(s, "orig_p"), col(s, "resp_p")), ("41502", "110"));
    assert_eq!(col(s, "service"), "pop3");
    assert_eq!(col(s, "banner"), format!("+OK {GREETING_END}"));
}

#[test]
fn starttls_from_curl_ssl_reqd() {
    // curl --ssl-reqd: IMAP `STARTTLS` / `OK` (port 41503) and POP3 `STLS` / `+OK` (41504),
    // then TLS with SNI mail.example.test (--resolve). tshark (-d tcp.port==143,tls): the
    // ServerHello picks 0x0304; the ClientHello has 31 cipher suites, 11 extensions, no ALPN;
    // JA4's hashes computed from tshark's cipher, extension and signature algorithm lists by a
    // separate script following the JA4 specification.
    let rows = sessions("content-starttls.pcap");
    assert_eq!(rows.len(), 2);
    for (port, server_port, service) in [("41503", "143", "imap,ssl"), ("41504", "110", "pop3,ssl")]
    {
        let s = one(&rows, service, |r| col(r, "orig_p") == port);
        assert_eq!(col(s, "resp_p"), server_port);
        assert_eq!(col(s, "service"), service);
        assert!(col(s, "banner").ends_with(GREETING_END));
        assert_eq!(col(s, "server_name"), "mail.example.test");
        assert_eq!(col(s, "tls_version"), "TLSv13");
        assert_eq!(col(s, "ja4"), "t13d311100_e8f1e7e78f70_b26ce05bbdd6");
    }
}
