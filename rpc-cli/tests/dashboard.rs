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
