//! `rpc exporter`: serves the figures of every queue under the prefix to
//! Prometheus, once for the whole fleet (workers export only what each of
//! them does, so that a `sum()` counts each queue once), with
//! `rpc_build_info` and the `process_*` metrics. The metrics and the
//! listener are rpc-runtime's ([`rpc_runtime::telemetry::QueueExporter`]);
//! this is the command around them.

use std::net::SocketAddr;

use clap::Args;
use rpc_runtime::telemetry::QueueExporter;

use crate::failure::Failure;

/// `rpc exporter [--listen ADDR]`.
#[derive(Args, Debug)]
pub struct ExporterArgs {
    /// Address to serve /metrics, /healthz and /readyz on (`0.0.0.0:9465` in a container).
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub listen: SocketAddr,
}

/// Serves until interrupted (Ctrl-C or SIGTERM).
pub async fn run(url: &str, prefix: &str, args: ExporterArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let exporter = QueueExporter::bind(args.listen, inspector).await?;
    eprintln!(
        "serving the queues under the prefix `{prefix}` at http://{}/metrics",
        exporter.local_addr()
    );
    tokio::select! {
        () = exporter.serve() => Ok(()),
        () = stopped() => Ok(()),
    }
}

/// Ctrl-C, or SIGTERM (what a container stop sends).
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
