//! `rpc ping`: does this broker URL work from here? Connects (TLS, password
//! and all), sends `PING`, prints the round trip and the server's version.
//! An unreachable server or refused credentials exit non-zero with the
//! reason, so it fits in a shell script or a container health check.

use crate::failure::Failure;

pub async fn run(url: &str, prefix: &str) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let ping = inspector.ping().await?;
    let version = ping.server_version.as_deref().unwrap_or("version unknown");
    crate::outln!(
        "PONG in {:.2} ms (Redis {version})",
        ping.latency.as_secs_f64() * 1000.0
    );
    Ok(())
}
