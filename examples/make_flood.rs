//! `cargo run --example make_flood -- OUT.pcap [SYNS] [STREAMS] [REAL] [REAL_EVERY] [FRAGMENTS]`: writes a
//! flood capture (see `tests/support/flood.rs`) and prints what sessions.csv must show for the
//! ordinary sessions inside it. Defaults: 2,000,000 spoofed SYNs, 300,000 streams with holes,
//! 20 ordinary sessions stepping every 20,000 flood packets, no incomplete IP fragments.

#[path = "../tests/support/flood.rs"]
mod flood;

use std::io::BufWriter;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: make_flood OUT.pcap [SYNS] [STREAMS] [REAL] [REAL_EVERY] [FRAGMENTS]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u32| {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let spec = flood::FloodSpec {
        syn_flood: number(1, 2_000_000),
        streams_with_holes: number(2, 300_000),
        real_sessions: u16::try_from(number(3, 20)).expect("at most 65535 ordinary sessions"),
        real_every: number(4, 20_000),
        incomplete_fragments: number(5, 0),
    };
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let facts = flood::write_flood(spec, file)?;
    println!(
        "{out}: {} packets, {} sessions without a cap ({spec:?})",
        facts.packets, facts.sessions
    );
    for r in &facts.real {
        println!(
            "expect tcp {}:{} -> {}:{} {} {} pkts {}/{} bytes {}/{} ip_bytes {}/{}",
            r.orig_h,
            r.orig_p,
            r.resp_h,
            r.resp_p,
            r.conn_state,
            r.history,
            r.orig_pkts,
            r.resp_pkts,
            r.orig_bytes,
            r.resp_bytes,
            r.orig_ip_bytes,
            r.resp_ip_bytes
        );
    }
    Ok(())
}
