//! `worker --probe ADDR`, the container healthcheck of docker-compose.yml:
//! exit 0 against a real running worker's `/healthz`, 1 against a listener
//! that answers 503, and 1 when nothing listens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rpc_testkit::ChildGuard;

fn probe(addr: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--probe", addr])
        .output()
        .expect("run worker --probe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_probe_says_a_running_worker_is_alive() {
    // A real worker (in-memory broker: it needs no Redis) serving /healthz
    // on a port the system picks; its "metrics on" line names it.
    let mut worker = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args([
                "--url",
                "memory://probe-test",
                "--metrics-addr",
                "0.0.0.0:0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped()),
    )
    .expect("spawn worker");
    let stdout = worker.child_mut().stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the worker prints where it serves metrics");
        if let Some(rest) = line.strip_prefix("metrics on http://") {
            let addr = rest.trim_end_matches("/metrics");
            break addr.rsplit_once(':').expect("host:port").1.to_owned();
        }
    };
    // As the compose healthcheck asks: the address the worker listens on,
    // unspecified, which the probe asks on loopback.
    let out = probe(&format!("0.0.0.0:{port}"));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("alive"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_probe_fails_on_an_answer_other_than_200() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let body = "stuck: the taker made no progress for 95s\n";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = probe(&addr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("stuck: the taker"), "{stderr}");
}

#[test]
fn the_probe_fails_when_nothing_listens() {
    // A port that was free a moment ago and is closed again.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let out = probe(&addr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out.stderr)
    );
}
