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
        self.start_live_on("lo", args)
    }

    /// Starts `sessionscope live -i INTERFACE ARGS` in the namespace; waits until it captures.
    fn start_live_on(&self, interface: &str, args: &[&str]) -> Live {
        let stderr_path = self.dir.join("stderr.txt");
        let stdout_path = self.dir.join("stdout.txt");
        let child = self
            .command(BIN)
            .args(["live", "-i", interface, "--status-interval", "1"])
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
        let capturing = format!("capturing on {interface} ");
        wait_for(Duration::from_secs(20), || {
            live.stderr().contains(&capturing)
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

/// The CSV files in `dir` whose names start with `prefix`, in name order.
fn csv_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "csv")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

/// The rows of one CSV file, checking that it is whole: a header starting with
/// `first_column`, complete rows (as many fields as the header), a final newline.
fn read_csv(file: &Path, first_column: &str) -> Vec<Row> {
    let name = file.file_name().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.ends_with('\n'), "{name} ends mid-row");
    let mut reader = csv::Reader::from_path(file).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header.first().map(String::as_str),
        Some(first_column),
        "{name}"
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "{name}: short row");
            header
                .iter()
                .cloned()
                .zip(record.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// Every row of every sessions file in `dir` (in file-name order), checking that each file is
/// whole: a header, complete rows, a final newline.
fn read_rows(dir: &Path) -> (Vec<PathBuf>, Vec<Row>) {
    let files = csv_files(dir, "sessions-");
    let mut rows = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            name.len() >= "sessions-20260101T000000Z.csv".len(),
            "{name}"
        );
        rows.extend(read_csv(file, "ts"));
    }
    (files, rows)
}

/// `DIR/hidden-<time>.csv` for `DIR/sessions-<time>.csv`.
fn hidden_beside(sessions_file: &Path) -> PathBuf {
    let name = sessions_file.file_name().unwrap().to_str().unwrap();
    sessions_file.with_file_name(name.replacen("sessions-", "hidden-", 1))
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
    assert_eq!(csv_files(&out, "hidden-"), [hidden_beside(&files[0])]);
    // Without --sensor, the sensor column names this machine, as hostname(1) does.
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim();
    if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    {
        assert!(rows.iter().all(|r| r["sensor"] == host), "{host}: {rows:?}");
    }
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
        "--sensor",
        "tap-7",
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
    assert!(rows.iter().all(|r| r["sensor"] == "tap-7"));
    // A REJ row is about 200 bytes and the header about 250: a few rows per file.
    assert!(files.len() >= 3, "{files:?}");
    // Each file rotated away by a write, and the last, has its hidden sessions beside it.
    let hidden: Vec<PathBuf> = files.iter().map(|f| hidden_beside(f)).collect();
    assert_eq!(csv_files(&out, "hidden-"), hidden);
    for file in &hidden {
        read_csv(file, "host");
    }
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

/// Sends `count` UDP datagrams of the same size from `from` to `to`:`port`, one every `every`
/// seconds on a fixed schedule, each from a new socket (so each is a session of its own).
fn beacon_script(from: &str, to: &str, port: u16, count: u32, every: f64) -> String {
    [
        "import socket, time".to_string(),
        "t0 = time.time()".to_string(),
        format!("for i in range({count}):"),
        format!("    time.sleep(max(0.0, t0 + i * {every} - time.time()))"),
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)".to_string(),
        format!("    s.bind(('{from}', 0))"),
        format!("    s.sendto(b'checking in, nothing new', ('{to}', {port}))"),
        "    s.close()".to_string(),
    ]
    .join("\n")
}

#[test]
fn time_rotation_gives_whole_files_each_with_its_hidden_sessions() {
    if !can_run() {
        return;
    }
    let mut ns = Netns::new("hidden");
    let out = ns.dir.join("out");
    // A client and a destination of their own, so the pattern's ends can be told apart.
    for address in ["10.9.0.1/32", "10.9.0.2/32"] {
        run_ok(ns.command("ip").args(["addr", "add", address, "dev", "lo"]));
    }
    // A listener that never answers (no ICMP port unreachable either).
    ns.spawn(
        "python3",
        &[
            "-c",
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('10.9.0.2', 40404))\nwhile True:\n    s.recv(2048)",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let live = ns.start_live(&[
        "--out",
        out.to_str().unwrap(),
        "--rotate",
        "2s",
        // Each datagram's session ends when the next one moves the clock on.
        "--udp-inactivity",
        "0.5",
    ]);
    // The periodic pattern: 9 sessions 1.2 s apart (the analysis calls intervals under 1 s a
    // burst, not a timer), over about 10 s: several 2 s files.
    let sends = 9;
    let beacon = ns.run(
        "python3",
        &[
            "-c",
            &beacon_script("10.9.0.1", "10.9.0.2", 40404, sends, 1.2),
        ],
    );
    assert!(beacon.status.success(), "{beacon:?}");
    std::thread::sleep(Duration::from_millis(500));
    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Whole sessions files, every beacon session in one of them.
    let (files, rows) = read_rows(&out);
    assert!(files.len() >= 2, "{files:?}");
    let beacon_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r["proto"] == "udp" && to_port(r) == 40404)
        .collect();
    assert_eq!(beacon_rows.len(), sends as usize, "{}", brief(&rows));
    assert!(
        beacon_rows
            .iter()
            .all(|r| r["orig_h"] == "10.9.0.1" && r["resp_h"] == "10.9.0.2")
    );

    // One hidden file per sessions file, same time in the name, each a whole CSV.
    let hidden_files = csv_files(&out, "hidden-");
    let expected: Vec<PathBuf> = files.iter().map(|f| hidden_beside(f)).collect();
    assert_eq!(hidden_files, expected);
    let names_beacon = |rows: &[Row]| {
        rows.iter()
            .find(|r| {
                r["host"] == "10.9.0.1"
                    && r["dest_h"] == "10.9.0.2"
                    && r["proto"] == "udp"
                    && r["dest_p"] == "40404"
            })
            .cloned()
    };
    let hidden: Vec<Vec<Row>> = hidden_files.iter().map(|f| read_csv(f, "host")).collect();
    // At exit, over the whole run (the window is 1 h): all the sessions, every 1.2 s.
    let last = names_beacon(hidden.last().unwrap()).unwrap_or_else(|| {
        panic!(
            "the last hidden file misses the beacon: {:?}",
            hidden.last()
        )
    });
    assert_eq!(last["kind"], "beacon", "{last:?}");
    assert_eq!(last["sessions"], sends.to_string(), "{last:?}");
    let period: f64 = last["period_s"].parse().unwrap();
    assert!((1.1..1.3).contains(&period), "{last:?}");
    // A rotation during the last 3.6 s had at least 5 ended sessions in its window: a file
    // written mid-run names the pattern too.
    let mid_run = hidden[..hidden.len() - 1]
        .iter()
        .filter_map(|rows| names_beacon(rows))
        .collect::<Vec<_>>();
    assert!(
        mid_run.iter().any(|r| r["kind"] == "beacon"),
        "no mid-run hidden file names the beacon: {hidden:?}"
    );
    assert!(
        stdout.contains("Hidden sessions: analysed over the last 1h"),
        "{stdout}"
    );
    assert!(stdout.contains("beacon"), "{stdout}");
}

#[test]
fn a_short_snaplen_cuts_packets_but_not_byte_counts() {
    if !can_run() {
        return;
    }
    let mut ns = Netns::new("snaplen");
    // No TCP timestamps, SACK or window scaling: every TCP header is at most 24 bytes, so with
    // Ethernet and IPv4 each packet's headers fit in 64 bytes while its payload is cut.
    for setting in ["tcp_timestamps", "tcp_sack", "tcp_window_scaling"] {
        run_ok(
            ns.command("sysctl")
                .args(["-qw", &format!("net.ipv4.{setting}=0")]),
        );
    }
    let port = free_port();
    let body = 200_000;
    ns.http_server(port, body);
    let out = ns.dir.join("out");
    let live = ns.start_live(&[
        "--out",
        out.to_str().unwrap(),
        "--snaplen",
        "64",
        "--tcp-close-delay",
        "0.5",
    ]);
    let got = ns.run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_request} %{size_header} %{size_download}",
            &format!("http://127.0.0.1:{port}/file.bin"),
        ],
    );
    let sizes: Vec<u64> = String::from_utf8_lossy(&got.stdout)
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let [request, header, download] = sizes[..] else {
        panic!("curl said {got:?}");
    };
    assert_eq!(download, body as u64);
    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Frames longer than 64 bytes were cut on capture, and the summary says so.
    assert!(stdout.contains("Cut by snaplen"), "{stdout}");
    assert!(stdout.contains("Capture: snaplen 64 bytes"), "{stdout}");
    let (_, rows) = read_rows(&out);
    let http: Vec<&Row> = rows.iter().filter(|r| to_port(r) == port).collect();
    assert_eq!(http.len(), 1, "{}", brief(&rows));
    // What curl sent and received, counted from the IP and TCP headers.
    assert_eq!(http[0]["orig_bytes"], request.to_string(), "{:?}", http[0]);
    assert_eq!(
        http[0]["resp_bytes"],
        (header + download).to_string(),
        "{:?}",
        http[0]
    );
    assert_eq!(http[0]["conn_state"], "SF", "{:?}", http[0]);
}

/// Two namespaces joined by a veth pair: `capture` holds a bridge `br0` (10.77.0.1/24 and
/// 10.77.0.3/24) with the veth end as its port; `sender` holds 10.77.0.2/24 and a static
/// neighbour entry giving 10.77.0.1 a MAC address nobody has. Frames to that MAC reach the
/// bridge but are not for it: the bridge hands them up (where a capture on br0 sees them) only
/// in promiscuous mode. Frames to 10.77.0.3 get br0's real MAC (by ARP) and are always seen.
fn bridged_pair(test: &str) -> (Netns, Netns) {
    let capture = Netns::new(&format!("{test}c"));
    let sender = Netns::new(&format!("{test}s"));
    let (c, s) = (capture.name.as_str(), sender.name.as_str());
    let ip = |args: &[&str]| run_ok(Command::new("ip").args(args));
    ip(&[
        "link", "add", "vc", "netns", c, "type", "veth", "peer", "name", "vs", "netns", s,
    ]);
    ip(&["-n", c, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", c, "link", "set", "vc", "master", "br0"]);
    ip(&["-n", c, "addr", "add", "10.77.0.1/24", "dev", "br0"]);
    ip(&["-n", c, "addr", "add", "10.77.0.3/24", "dev", "br0"]);
    ip(&["-n", c, "link", "set", "br0", "up"]);
    ip(&["-n", c, "link", "set", "vc", "up"]);
    ip(&["-n", s, "addr", "add", "10.77.0.2/24", "dev", "vs"]);
    ip(&["-n", s, "link", "set", "vs", "up"]);
    ip(&[
        "-n",
        s,
        "neigh",
        "replace",
        "10.77.0.1",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "vs",
        "nud",
        "permanent",
    ]);
    (capture, sender)
}

/// Captures on br0 while the sender sends 3 datagrams to the foreign MAC (port 9999) and one to
/// br0's own (port 9998); returns the destination ports of the sessions seen.
fn ports_seen_on_bridge(capture: &Netns, sender: &Netns, extra: &[&str]) -> Vec<u16> {
    let out = capture.dir.join(format!("out{}", extra.len()));
    let mut args = vec!["--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let live = capture.start_live_on("br0", &args);
    let script = "import socket\nfor port, host in [(9999, '10.77.0.1')] * 3 + [(9998, '10.77.0.3')]:\n    \
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    \
                  s.sendto(b'hello', (host, port))\n    s.close()";
    let sent = sender.run("python3", &["-c", script]);
    assert!(sent.status.success(), "{sent:?}");
    std::thread::sleep(Duration::from_millis(700));
    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (_, rows) = read_rows(&out);
    let mut ports: Vec<u16> = rows
        .iter()
        .filter(|r| r["proto"] == "udp" && r["orig_h"] == "10.77.0.2")
        .map(to_port)
        .collect();
    ports.sort();
    ports
}

#[test]
fn promisc_sees_frames_for_other_mac_addresses() {
    if !can_run() {
        return;
    }
    let (capture, sender) = bridged_pair("promisc");
    // Without --promisc only the datagram addressed to br0's MAC is seen.
    assert_eq!(ports_seen_on_bridge(&capture, &sender, &[]), [9998]);
    // With it, the three to the foreign MAC too (each from its own socket: its own session).
    assert_eq!(
        ports_seen_on_bridge(&capture, &sender, &["--promisc"]),
        [9998, 9999, 9999, 9999]
    );
}

#[test]
fn buffer_size_is_taken_and_shown_and_a_zero_is_a_usage_error() {
    if !can_run() {
        return;
    }
    let ns = Netns::new("buffer");
    let live = ns.start_live(&["--buffer-size", "8MB"]);
    assert!(
        live.stderr().contains("kernel buffer 8000000 bytes"),
        "{}",
        live.stderr()
    );
    live.interrupt();
    let (code, stdout, stderr) = live.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(
            "Capture: snaplen 262144 bytes, promiscuous off, kernel buffer 8000000 bytes"
        ),
        "{stdout}"
    );
    for absurd in ["0", "1B", "9GB"] {
        let out = ns.run(BIN, &["live", "-i", "lo", "--buffer-size", absurd]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{absurd}: {stderr}");
        assert!(
            stderr.contains(&format!("--buffer-size `{absurd}`"))
                && stderr.contains("64KiB to 2GiB"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
