//! Checks the classifier on the project's own content captures (`sample-captures/content-*.pcap`,
//! made by `scripts/make-content-captures.sh` with real clients and servers). Expected values
//! come from how each capture was made and from tshark 4.0's dissection of the same packets
//! (see sample-captures/README.md); none comes from sessionscope.

use super::ContentInfo;
use super::corpus_check::classify_capture;
use std::path::Path;

/// The one recognised session of a capture.
fn only_session(file: &str) -> ContentInfo {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(file);
    let mut infos: Vec<ContentInfo> = classify_capture(&path)
        .into_values()
        .filter_map(|found| found.info)
        .collect();
    assert_eq!(infos.len(), 1, "{file}: {infos:?}");
    infos.remove(0)
}

#[test]
fn tls_from_openssl() {
    let info = only_session("content-tls.pcap");
    assert_eq!(info.service, "ssl");
    assert_eq!(info.server_name.as_deref(), Some("example.test"));
    assert_eq!(info.tls_alpn.as_deref(), Some("h2,http/1.1"));
    assert_eq!(info.tls_version, Some("TLSv13"));
    assert!(info.ja4.as_deref().is_some_and(|j| j.starts_with("t13d")));
}

#[test]
fn http_from_curl() {
    let info = only_session("content-http.pcap");
    assert_eq!(info.service, "http");
    assert_eq!(info.http_method.as_deref(), Some("GET"));
    assert_eq!(info.http_host.as_deref(), Some("www.example.test:8080"));
    assert_eq!(info.server_name.as_deref(), Some("www.example.test"));
    assert_eq!(info.http_uri.as_deref(), Some("/a.txt"));
    assert_eq!(
        info.http_user_agent.as_deref(),
        Some("sessionscope-test/1.0")
    );
    assert_eq!(info.http_status, Some(200));
}

#[test]
fn ssh_on_port_443() {
    let info = only_session("content-ssh.pcap");
    assert_eq!(info.service, "ssh");
    let openssh = Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10");
    assert_eq!(info.more.ssh_client.as_deref(), openssh);
    assert_eq!(info.more.ssh_server.as_deref(), openssh);
}

#[test]
fn dns_over_udp_and_tcp_from_dig() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures/content-dns.pcap");
    let mut infos: Vec<ContentInfo> = classify_capture(&path)
        .into_values()
        .filter_map(|found| found.info)
        .collect();
    infos.sort_by(|a, b| a.dns_qtype.cmp(&b.dns_qtype));
    assert_eq!(infos.len(), 2);
    let (udp, tcp) = (&infos[0], &infos[1]);
    for info in [udp, tcp] {
        assert_eq!(info.service, "dns");
        assert_eq!(info.server_name.as_deref(), Some("www.example.test"));
        assert_eq!(info.dns_rcode, Some("NOERROR"));
    }
    assert_eq!(udp.dns_qtype.as_deref(), Some("A"));
    assert_eq!(udp.dns_answers, ["192.0.2.80"]);
    assert_eq!(tcp.dns_qtype.as_deref(), Some("AAAA"));
    assert_eq!(tcp.dns_answers, ["2001:db8::80"]);
}

#[test]
fn smtp_from_smtplib() {
    let info = only_session("content-smtp.pcap");
    assert_eq!(info.service, "smtp");
    assert_eq!(
        info.more.banner.as_deref(),
        Some("220 localhost Python SMTP proxy version 0.3")
    );
}

#[test]
fn ftp_from_curl_on_port_2121() {
    // The FTP data connection carries a directory listing: no protocol of its own.
    let info = only_session("content-ftp.pcap");
    assert_eq!(info.service, "ftp");
    assert_eq!(info.more.banner.as_deref(), Some("220 pyftpdlib ready."));
}

#[test]
fn quic_from_aioquic() {
    let info = only_session("content-quic.pcap");
    assert_eq!(info.service, "quic");
    assert_eq!(info.more.quic_version.as_deref(), Some("1"));
    assert_eq!(info.server_name.as_deref(), Some("example.test"));
    assert_eq!(info.tls_alpn.as_deref(), Some("h3"));
    // JA4 computed from tshark's cipher, extension and signature algorithm lists by a separate
    // script following the JA4 specification.
    assert_eq!(
        info.ja4.as_deref(),
        Some("q13d0307h3_55b375c5d22e_1cecd519fee8")
    );
}
