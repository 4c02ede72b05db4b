//! `worker --probe ADDR`: asks a running worker's `/healthz` whether it is
//! alive, and exits 0 if so, 1 if not.
//!
//! It exists for container healthchecks (docker-compose.yml's worker): the
//! image then needs no curl or wget, only the binary it already runs. It
//! speaks HTTP/1.1 through hyper's client half, the same library the
//! worker's listener serves with, and asks nothing of the broker.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How long the whole probe may take: well under a healthcheck's timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of the answer's body that is read (it is one line).
const MAX_BODY_BYTES: usize = 4096;

/// Asks `http://ADDR/healthz` and says what it answered, on stdout when
/// alive and on stderr when not; an unspecified address (`0.0.0.0:9464`,
/// as the worker is told to listen) is asked on loopback. Exit status 0
/// alive, 1 anything else (Docker reads 1 as unhealthy).
pub async fn healthz(addr: SocketAddr) -> ExitCode {
    let addr = loopback_if_unspecified(addr);
    match tokio::time::timeout(PROBE_TIMEOUT, get(addr, "/healthz")).await {
        Ok(Ok((StatusCode::OK, body))) => {
            println!("alive: {body}");
            ExitCode::SUCCESS
        }
        Ok(Ok((status, body))) => {
            eprintln!("not alive: http://{addr}/healthz answered {status}: {body}");
            ExitCode::FAILURE
        }
        Ok(Err(why)) => {
            eprintln!("not alive: http://{addr}/healthz: {why}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "not alive: http://{addr}/healthz gave no answer within {}s",
                PROBE_TIMEOUT.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// One GET on a fresh connection: the status and the body's first line.
async fn get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("no HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    connection.abort();
    let text = String::from_utf8_lossy(&body);
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    Ok((status, line))
}
