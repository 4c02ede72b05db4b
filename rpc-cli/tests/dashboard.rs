//! `rpc dashboard` as a user starts it: the real binary.

mod support;

use support::rpc;

#[test]
fn the_dashboard_refuses_a_public_address_without_a_token() {
    // `--listen 0.0.0.0:...` alone would put replay and delete on the network.
    let (ok, _, stderr) = rpc(
        "redis://127.0.0.1:1/",
        &["dashboard", "--listen", "0.0.0.0:0"],
    );
    assert!(!ok);
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
}

#[test]
fn rpc_dashboard_serves_the_overview_until_it_is_stopped() {
    // The subcommand wires the crate up: a real HTTP answer from the binary.
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    let redis = rpc_testkit::RedisServer::start().expect("start redis-server");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut dashboard = rpc_testkit::ChildGuard::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args(["--url", &redis.url(), "dashboard", "--listen", &listen])
            .stdout(std::process::Stdio::null()),
    )
    .expect("start rpc dashboard");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Ok(mut stream) = TcpStream::connect(&listen) {
            let request = format!("GET / HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .expect("send the request");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).expect("read the answer");
            break answer;
        }
        assert!(Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<h1>Services"), "{answer}");
    dashboard.sigterm().expect("SIGTERM");
    let stopped = dashboard
        .wait_timeout(Duration::from_secs(10))
        .expect("wait");
    assert!(
        stopped.is_some_and(|s| s.success()),
        "it stops cleanly on SIGTERM"
    );
}

#[test]
fn the_dashboard_refuses_a_token_shorter_than_16_characters() {
    // Issue 19, point 8: `--token x` was accepted and fell to guessing.
    let (ok, _, stderr) = rpc(
        "redis://127.0.0.1:1/",
        &["dashboard", "--listen", "127.0.0.1:0", "--token", "x"],
    );
    assert!(!ok);
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

/// Sends one command as RESP (binary-safe, any size) and reads the first
/// line of the answer.
fn raw_command(port: u16, args: &[&[u8]]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).expect("send");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("an answer");
    line
}

/// `GET path` with `Connection: close`; the status line and the body's length.
fn page(listen: &str, path: &str) -> (String, usize) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(listen).expect("connect to the dashboard");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    (status, answer.len())
}

/// A figure of `/proc/PID/status` (`VmRSS`, `VmHWM`) in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the figure")
}

#[test]
fn the_dashboards_memory_stays_flat_with_ten_8mb_dead_letters() {
    // Issue 19, point 5: ten 8 MB dead letters took the dashboard from 24
    // to 479 MiB. The real binary serves the service page, the dead-letter
    // list and the call pages of such entries, each several times, and its
    // peak RSS grows by far less than one of the values it shows.
    use std::time::{Duration, Instant};
    let redis = rpc_testkit::RedisServer::start().expect("start redis-server");
    let blob = "x".repeat(8 * 1024 * 1024);
    for i in 0..10 {
        let message = format!(
            r#"{{"v":1,"id":"big-{i}","job":"Calculator.add","params":{{"a":"{blob}","b":2}},"attempt":3,"max_attempts":3}}"#
        );
        let reply = raw_command(
            redis.port(),
            &[
                b"XADD",
                b"rpc:{Calculator}:dead",
                b"*",
                b"reason",
                b"boom",
                b"m",
                message.as_bytes(),
            ],
        );
        assert!(reply.starts_with('$'), "XADD answered {reply}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/calculator.rpc");
    let mut dashboard = rpc_testkit::ChildGuard::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args(["--url", &redis.url(), "dashboard", "--listen", &listen])
            .args(["--schema", schema])
            .stdout(std::process::Stdio::null()),
    )
    .expect("start rpc dashboard");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Warm up (connections, the first page), then measure.
    assert!(page(&listen, "/").0.contains("200"));
    let pid = dashboard.pid();
    let before = memory_kib(pid, "VmRSS");
    let mut largest = 0;
    for _ in 0..3 {
        for path in [
            "/services/Calculator",
            "/services/Calculator?max=200#dead",
            "/jobs/big-0",
            "/jobs/big-9",
            "/",
        ] {
            let (status, len) = page(&listen, path);
            assert!(status.contains("200"), "{path}: {status}");
            largest = largest.max(len);
        }
    }
    let after = memory_kib(pid, "VmRSS");
    let peak = memory_kib(pid, "VmHWM");
    println!(
        "rpc dashboard with 10 x 8 MB dead letters: RSS {} MiB before the pages, {} MiB after, \
         peak {} MiB; largest page {} KiB",
        before / 1024,
        after / 1024,
        peak / 1024,
        largest / 1024
    );
    assert!(largest < 2 * 1024 * 1024, "a page of {largest} bytes");
    assert!(
        peak < before + 32 * 1024,
        "peak RSS {peak} KiB against {before} KiB before the pages"
    );
    dashboard.sigterm().expect("SIGTERM");
    let _ = dashboard.wait_timeout(Duration::from_secs(10));
}
