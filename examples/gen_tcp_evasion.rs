//! Writes sample-captures/tcp-evasion.pcap: TCP sessions with out-of-order segments,
//! retransmissions, overlaps with the same and with different bytes, holes, sequence
//! wrap-around, a mid-stream start, data on the SYN and a stream beyond the memory limit.
//! Deterministic; each scenario's expected stream contents are in tests/support/tcp_evasion.rs
//! and sample-captures/README.md.
//!
//! `cargo run --example gen_tcp_evasion [OUTFILE]` (default sample-captures/tcp-evasion.pcap);
//! `--list` prints each scenario and what it must give.

#[path = "../tests/support/tcp_evasion.rs"]
mod tcp_evasion;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = tcp_evasion::scenarios();
    if args.iter().any(|a| a == "--list") {
        for sc in &all {
            println!(
                "{} (client port {}): {}\n  client stream {:?}, server stream {:?}, \
                 conflicts {}, hole bytes {}, dropped {}, truncated {}, missed_bytes {}",
                sc.name,
                sc.client_port,
                sc.what,
                String::from_utf8_lossy(&sc.client_stream),
                String::from_utf8_lossy(&sc.server_stream),
                sc.conflicts,
                sc.hole_bytes,
                sc.dropped_bytes,
                sc.truncated,
                sc.missed_bytes
            );
        }
        return Ok(());
    }
    let out = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sample-captures/tcp-evasion.pcap".to_string());
    std::fs::write(&out, tcp_evasion::pcap_bytes(&all))?;
    println!("wrote {out} ({} sessions)", all.len());
    Ok(())
}
