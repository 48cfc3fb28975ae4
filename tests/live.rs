//! `sessionscope live` against real programs talking on the loopback interface of a fresh
//! network namespace (so nothing else is captured): an HTTP server and curl, refused
//! connections, a DNS query answered by a small UDP responder. Expected sessions come from what
//! each test made, not from the program's output.
//!
//! Needs root (network namespaces, raw capture) and the `live` feature:
//! `sudo cargo test --features live --test live`. Without root it fails when CI=true and only
//! prints a notice otherwise.
#![cfg(feature = "live")]

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sessionscope");

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// False (after a notice) when the test cannot run here; panics instead in CI.
fn can_run() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the live capture tests need root in CI");
    }
    eprintln!(
        "notice: skipping live capture test: needs root (sudo cargo test --features live --test live)"
    );
    false
}

/// A network namespace with only `lo` up, deleted (with everything started in it) on drop.
struct Netns {
    name: String,
    children: Vec<Child>,
    dir: PathBuf,
    mounted: bool,
}

impl Netns {
    fn new(test: &str) -> Netns {
        let name = format!("sslive-{}-{test}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"]));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Netns {
            name,
            children: Vec::new(),
            dir,
            mounted: false,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Starts a long-running program in the namespace (ended on drop).
    fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().unwrap()
    }

    /// Starts `sessionscope live -i lo ARGS` in the namespace; waits until it captures.
    fn start_live(&self, args: &[&str]) -> Live {
        let stderr_path = self.dir.join("stderr.txt");
        let stdout_path = self.dir.join("stdout.txt");
        let child = self
            .command(BIN)
            .args(["live", "-i", "lo", "--status-interval", "1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let live = Live {
            child,
            stderr_path,
            stdout_path,
        };
        wait_for(Duration::from_secs(20), || {
            live.stderr().contains("capturing on lo")
        });
        live
    }

    /// A Python HTTP server on 127.0.0.1:port serving `self.dir/www`.
    fn http_server(&mut self, port: u16, body_len: usize) {
        let www = self.dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("file.bin"), vec![b'x'; body_len]).unwrap();
        let www = www.to_str().unwrap().to_string();
        self.spawn(
            "python3",
            &[
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
                &www,
            ],
        );
        wait_for(Duration::from_secs(20), || {
            self.run(
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://127.0.0.1:{port}/"),
                ],
            )
            .stdout
                == b"200"
        });
    }

    /// A UDP responder on 127.0.0.1:53 that answers every DNS query with the same message
    /// turned into a response (QR set), as a server with no records would.
    fn dns_responder(&mut self) {
        let script = [
            "import socket",
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "s.bind(('127.0.0.1', 53))",
            "while True:",
            "    data, peer = s.recvfrom(4096)",
            "    if len(data) >= 12:",
            "        s.sendto(data[:2] + bytes([data[2] | 0x80, 0x83]) + data[4:], peer)",
        ]
        .join("\n");
        self.spawn("python3", &["-c", &script]);
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.join("out")).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Live {
    child: Child,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
}

impl Live {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn interrupt(&self) {
        // `ip netns exec` execs the program: the child's pid is sessionscope's.
        run_ok(Command::new("kill").args(["-INT", &self.child.id().to_string()]));
    }

    /// Waits for the exit; returns (exit code, stdout, stderr).
    fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stdout = String::new();
                std::fs::File::open(&self.stdout_path)
                    .unwrap()
                    .read_to_string(&mut stdout)
                    .unwrap();
                return (status.code().unwrap_or(-1), stdout, self.stderr());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "sessionscope did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

type Row = HashMap<String, String>;

/// Every row of every CSV file in `dir` (in file-name order), checking that each file is
/// whole: a header, complete rows, a final newline.
fn read_rows(dir: &Path) -> (Vec<PathBuf>, Vec<Row>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("sessions-") && name.len() >= "sessions-20260101T000000Z.csv".len(),
            "{name}"
        );
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.ends_with('\n'), "{name} ends mid-row");
        let mut reader = csv::Reader::from_path(file).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header.first().map(String::as_str), Some("ts"));
        for record in reader.records() {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "{name}: short row");
            rows.push(
                header
                    .iter()
                    .cloned()
                    .zip(record.iter().map(String::from))
                    .collect(),
            );
        }
    }
    (files, rows)
}

/// One line per row, for failure messages.
fn brief(rows: &[Row]) -> String {
    let columns = [
        "proto",
        "orig_p",
        "resp_p",
        "conn_state",
        "history",
        "orig_bytes",
        "resp_bytes",
        "end_reason",
    ];
    rows.iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r[*c].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn to_port(row: &Row) -> u16 {
    row["resp_p"].parse().unwrap()
}

fn free_port() -> u16 {
    // Any port: the namespace has nothing listening; this only avoids picking a fixed one.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn real_programs_give_the_sessions_they_made() {
    if !can_run() {
        return;
    }
    let mut ns = Netns::new("real");
    let out = ns.dir.join("out");
    let http_port = free_port();
    let closed_port = http_port.wrapping_add(1).max(1024);
    ns.http_server(http_port, 5000);
    ns.dns_responder();
    let live = ns.start_live(&[
        "--out",
        out.to_str().unwrap(),
        // Short lingering after FIN (Zeek: 5 s), so closed sessions are written mid-run.
        "--tcp-close-delay",
        "0.5",
        "--tcp-reset-delay",
        "0.5",
    ]);

    // Three HTTP GETs of a 5000-byte file; each curl opens and closes its own connection.
    for _ in 0..3 {
        let got = ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &format!("http://127.0.0.1:{http_port}/file.bin"),
            ],
        );
        assert_eq!(got.stdout, b"5000");
    }
    // Two refused connections.
    for _ in 0..2 {
        let got = ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{closed_port}/"),
            ],
        );
        assert!(!got.status.success());
    }
    // One DNS query, answered.
    let dig = ns.run(
        "dig",
        &[
            "+tries=1",
            "+time=2",
            "@127.0.0.1",
            "-p",
            "53",
            "example.com",
            "A",
        ],
    );
    assert!(
        String::from_utf8_lossy(&dig.stdout).contains("status: NXDOMAIN"),
        "{dig:?}"
    );
    // A connection still open when the capture is interrupted.
    ns.spawn(
        "python3",
        &[
            "-c",
            &format!(
                "import socket,time\ns=socket.create_connection(('127.0.0.1',{http_port}))\ns.sendall(b'GET / HTTP/1.0\\r\\n')\ntime.sleep(60)"
            ),
        ],
    );
    // Closed sessions are written while the capture runs (timers advance with packets, so
    // send one more packet after they closed).
    std::thread::sleep(Duration::from_millis(1500));
    ns.run(
        "dig",
        &[
            "+tries=1",
            "+time=1",
            "@127.0.0.1",
            "-p",
            "53",
            "example.org",
            "A",
        ],
    );
    wait_for(Duration::from_secs(20), || {
        let (_, rows) = read_rows(&out);
        rows.iter()
            .filter(|r| r["conn_state"] == "SF" && to_port(r) == http_port)
            .count()
            == 3
    });

    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("stopped by a signal"), "{stdout}");
    assert!(stdout.contains("dropped by the kernel"), "{stdout}");
    assert!(stderr.contains("live sessions"), "status line: {stderr}");

    let (files, rows) = read_rows(&out);
    assert_eq!(files.len(), 1);
    let http: Vec<&Row> = rows
        .iter()
        .filter(|r| to_port(r) == http_port && r["end_reason"] != "capture_end")
        .collect();
    assert_eq!(http.len(), 3, "{}", brief(&rows));
    for row in &http {
        assert_eq!(row["proto"], "tcp");
        assert_eq!(row["conn_state"], "SF");
        assert_eq!(row["orig_h"], "127.0.0.1");
        assert!(row["history"].starts_with("ShAD"), "{row:?}");
        // The body plus the server's status line and headers.
        let resp_bytes: u64 = row["resp_bytes"].parse().unwrap();
        assert!((5000..6000).contains(&resp_bytes), "{row:?}");
    }
    let refused: Vec<&Row> = rows.iter().filter(|r| to_port(r) == closed_port).collect();
    assert_eq!(refused.len(), 2, "{}", brief(&rows));
    for row in &refused {
        assert_eq!(row["conn_state"], "REJ");
        assert_eq!(row["history"], "Sr");
    }
    let dns: Vec<&Row> = rows
        .iter()
        .filter(|r| r["proto"] == "udp" && to_port(r) == 53)
        .collect();
    assert_eq!(dns.len(), 2, "{}", brief(&rows));
    for row in &dns {
        assert_eq!(row["conn_state"], "SF");
        assert_eq!(row["orig_pkts"], "1");
        assert_eq!(row["resp_pkts"], "1");
        assert_eq!(row["service"], "dns");
        // The answer is the query with two flag bits changed: same length.
        assert_eq!(row["orig_bytes"], row["resp_bytes"]);
    }
    // The connection open at Ctrl-C: established, never closed, written at the end.
    let open: Vec<&Row> = rows
        .iter()
        .filter(|r| to_port(r) == http_port && r["end_reason"] == "capture_end")
        .collect();
    assert_eq!(open.len(), 1, "{}", brief(&rows));
    assert_eq!(open[0]["conn_state"], "S1");
    assert_eq!(open[0]["orig_bytes"], "16");
    assert_eq!(rows.len(), 3 + 2 + 2 + 1, "{}", brief(&rows));
}

#[test]
fn rotation_by_size_gives_whole_files() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("rotate");
    let out = ns.dir.join("out");
    let live = ns.start_live(&[
        "--out",
        out.to_str().unwrap(),
        "--rotate",
        "700B",
        "--tcp-reset-delay",
        "0",
    ]);
    let closed_port = free_port();
    for _ in 0..12 {
        ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{closed_port}/"),
            ],
        );
    }
    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (files, rows) = read_rows(&out);
    assert_eq!(rows.len(), 12, "{}", brief(&rows));
    assert!(rows.iter().all(|r| r["conn_state"] == "REJ"));
    // A REJ row is about 200 bytes and the header about 250: a few rows per file.
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let len = std::fs::metadata(file).unwrap().len();
        let rows_in_file = read_rows_of(file);
        assert!(
            len <= 700 || rows_in_file == 1,
            "{} is {len} bytes",
            file.display()
        );
        assert!(rows_in_file >= 1, "{} has no row", file.display());
    }
}

fn read_rows_of(file: &Path) -> usize {
    csv::Reader::from_path(file).unwrap().records().count()
}

#[test]
fn stops_by_itself_on_packet_count_and_duration() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("limits");
    let live = ns.start_live(&["--packets", "4"]);
    let port = free_port();
    for _ in 0..3 {
        ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/"),
            ],
        );
    }
    let (code, stdout, _) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(stdout.contains("stopped by --packets"), "{stdout}");
    // Three refused connections are six packets; it stopped after four.
    assert!(stdout.contains("Read            4\n"), "{stdout}");

    // A quiet link: the read timeout still lets --duration end the run.
    let started = Instant::now();
    let live = ns.start_live(&["--duration", "2s"]);
    let (code, stdout, _) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(stdout.contains("stopped by --duration"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn capture_errors_say_what_to_do() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("errors");
    // Unknown interface: the real ones are listed.
    let out = ns.run(BIN, &["live", "-i", "nosuch0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("nosuch0: no such interface; available: "),
        "{stderr}"
    );
    assert!(stderr.contains("lo"), "{stderr}");
    // Bad filter: libpcap's message with the filter.
    let out = ns.run(BIN, &["live", "-i", "lo", "--filter", "tcp port 99999"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("bad capture filter `tcp port 99999`"),
        "{stderr}"
    );
    assert!(stderr.contains("99999"), "{stderr}");
    // No permission: an unprivileged user is told how to get it. (A copy of the binary that
    // user can run, wherever the checkout is.)
    let copy = ns.dir.join("sessionscope");
    std::fs::copy(BIN, &copy).unwrap();
    for dir in [ns.dir.as_path(), copy.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = ns.run(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            copy.to_str().unwrap(),
            "live",
            "-i",
            "lo",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("no permission to capture"), "{stderr}");
    assert!(
        stderr.contains("run as root") && stderr.contains("setcap cap_net_raw,cap_net_admin"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_full_disk_stops_with_an_error_and_whole_rows() {
    if !can_run() {
        return;
    }
    let mut ns = Netns::new("full");
    let out = ns.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // One 4 KiB page: the header and a dozen rows fit, not forty.
    run_ok(Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        "size=4k",
        "tmpfs",
        out.to_str().unwrap(),
    ]));
    ns.mounted = true;
    let live = ns.start_live(&["--out", out.to_str().unwrap(), "--tcp-reset-delay", "0"]);
    let port = free_port();
    for _ in 0..40 {
        ns.run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/"),
            ],
        );
    }
    // It stops by itself; the signal is only for a run that would not.
    let (code, stdout, stderr) = live.wait(Duration::from_secs(30));
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("writing sessions failed"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let (_, rows) = read_rows(&out);
    assert!(!rows.is_empty() && rows.len() < 40, "{}", rows.len());
    assert!(rows.iter().all(|r| r["conn_state"] == "REJ"));
}
