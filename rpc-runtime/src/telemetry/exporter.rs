//! The queue exporter behind `rpc exporter`: one process that serves, for
//! a whole fleet, the figures of every queue under a prefix (depth,
//! leased, scheduled, dead letters, paused, consumers; `queue_metrics`),
//! with `rpc_build_info` and the `process_*` metrics, on the same listener
//! a worker uses. Workers export only what each of them does; the queues
//! are counted here once.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::listener::{self, Exposition};
use super::process::register_process_metrics;
use super::queue_metrics::QueueMetrics;
use crate::error::Error;
use crate::inspect::Inspector;

/// A bound queue exporter; [`serve`](QueueExporter::serve) answers
/// `/metrics`, `/healthz` and `/readyz` (the broker can be read).
///
/// ```no_run
/// # async fn run() -> Result<(), rpc_runtime::Error> {
/// use rpc_runtime::{telemetry::QueueExporter, Inspector};
/// let inspector = Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
/// let exporter = QueueExporter::bind("127.0.0.1:9465".parse().unwrap(), inspector).await?;
/// println!("serving http://{}/metrics", exporter.local_addr());
/// exporter.serve().await;
/// # Ok(()) }
/// ```
pub struct QueueExporter {
    listener: TcpListener,
    addr: SocketAddr,
    exposition: Arc<Exposition>,
}

impl QueueExporter {
    /// Binds `addr` to export the queues `inspector` sees.
    pub async fn bind(addr: SocketAddr, inspector: Inspector) -> Result<QueueExporter, Error> {
        let listener = listener::bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::config(format_args!("the exporter's address: {e}")))?;
        let mut registry = Registry::default();
        register_process_metrics(&mut registry);
        let queues = QueueMetrics::register(inspector, &mut registry);
        Ok(QueueExporter {
            listener,
            addr,
            exposition: Arc::new(Exposition {
                registry,
                health: None,
                queues: Some(queues),
            }),
        })
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the future is dropped.
    pub async fn serve(self) {
        listener::serve(self.listener, self.exposition).await
    }
}
