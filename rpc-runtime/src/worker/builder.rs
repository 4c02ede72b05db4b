//! Building a [`Worker`]: the services and middleware it serves, its
//! settings, its periodic jobs; connecting and checking them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_protocol::Backoff;

use super::due_hint::DueHint;
use super::janitor::liveness_window;
use super::pause::PausedQueues;
use super::probe;
use super::run::Worker;
use super::settings::WorkerSettings;
use super::shared::Shared;
use super::stats::Stats;

use crate::backend;
use crate::backend::BrokerConfig;
use crate::clock::BrokerClock;
use crate::error::Error;
use crate::middleware::Middleware;
use crate::service::Service;
use crate::telemetry::health::Health;
use crate::telemetry::listener::Exposition;
use crate::telemetry::{listener, WorkerMetrics};

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    broker: BrokerConfig,
    services: Vec<Arc<dyn Service>>,
    middleware: Vec<Arc<dyn Middleware>>,
    settings: WorkerSettings,
    metrics_addr: Option<SocketAddr>,
    /// Jobs to enqueue on a schedule (`worker/periodic.rs`).
    periodic: Vec<crate::periodic::Periodic>,
}

impl WorkerBuilder {
    /// A worker for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        WorkerBuilder {
            broker: BrokerConfig::new(url),
            services: Vec::new(),
            middleware: Vec::new(),
            settings: WorkerSettings::default(),
            metrics_addr: None,
            periodic: Vec::new(),
        }
    }

    /// Enqueues a job on a schedule (see [`crate::Periodic`]): every worker
    /// given the same periodic job offers each tick, and the broker
    /// enqueues it once. Its job must belong to a service mounted here;
    /// [`WorkerBuilder::build`] refuses it otherwise, or when the definition
    /// is invalid, with the reason.
    pub fn periodic(mut self, job: crate::periodic::Periodic) -> Self {
        self.periodic.push(job);
        self
    }

    /// Serves Prometheus metrics (`/metrics`), `/healthz` and `/readyz`
    /// over HTTP on `addr` (port 0: any free port, see
    /// [`Worker::metrics_addr`]). Off unless set; with it off the worker
    /// keeps no metrics. [`WorkerBuilder::build`] fails if the address
    /// cannot be bound.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Key prefix (default `rpc`); clients and workers must agree.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.broker.prefix = prefix.into();
        self
    }

    /// Mounts a service (a generated `<Service>Server` or a [`crate::DynamicService`]).
    pub fn mount(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Runs `middleware` around every handler of this worker, inside the
    /// middleware added before it (see [`Middleware`]): to check a token,
    /// refuse a call, time or log it.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency = n.max(1);
        self
    }

    /// See [`WorkerSettings::visibility_timeout`].
    pub fn visibility_timeout(mut self, t: Duration) -> Self {
        self.settings.visibility_timeout = t;
        self
    }

    /// See [`WorkerSettings::max_attempts`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = n.max(1);
        self
    }

    /// See [`WorkerSettings::shutdown_grace`].
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.settings.shutdown_grace = t;
        self
    }

    /// See [`WorkerSettings::consumer`].
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.settings.consumer = name.into();
        self
    }

    /// See [`WorkerSettings::inbox_ttl`].
    pub fn inbox_ttl(mut self, t: Duration) -> Self {
        self.settings.inbox_ttl = t;
        self
    }

    /// See [`WorkerSettings::max_message_bytes`].
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_message_bytes = bytes;
        self
    }

    /// See [`WorkerSettings::forget_consumers_after`].
    pub fn forget_consumers_after(mut self, t: Duration) -> Self {
        self.settings.forget_consumers_after = t;
        self
    }

    /// See [`WorkerSettings::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// See [`WorkerSettings::cancel_grace`].
    pub fn cancel_grace(mut self, t: Duration) -> Self {
        self.settings.cancel_grace = t;
        self
    }

    /// Connects to the broker and prepares the queues.
    pub async fn build(self) -> Result<Worker, Error> {
        // Bound first: a worker that cannot serve its metrics does not start.
        let listener = match self.metrics_addr {
            Some(addr) => Some(listener::bind(addr).await?),
            None => None,
        };
        let periodic = super::periodic_check::prepare(self.periodic, &self.services)?;
        let backend = backend::connect(&self.broker).await?;
        let mut services = HashMap::new();
        for s in self.services {
            if services.insert(s.name(), s.clone()).is_some() {
                return Err(Error::config(format_args!(
                    "service `{}` is mounted twice",
                    s.name()
                )));
            }
        }
        let queues: Vec<String> = services.keys().map(|s| s.to_string()).collect();
        backend.prepare_queues(&queues).await?;
        for queue in &queues {
            // Housekeeping only: a failure here must not stop the worker.
            if let Err(e) = backend
                .forget_idle_consumers(queue, self.settings.forget_consumers_after)
                .await
            {
                tracing::warn!(error = %e, queue, "could not forget idle consumers");
            }
        }
        let clock = BrokerClock::new();
        match clock.sample(&*backend).await {
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the broker's clock; deadlines use this machine's until it can")
            }
            Ok(()) if clock.offset_ms().abs() > 1_000 => tracing::info!(
                offset_ms = clock.offset_ms(),
                "this machine's clock is off the broker's; deadlines are measured on the broker's"
            ),
            Ok(()) => {}
        }
        let health = Arc::new(Health::new(
            liveness_window(&self.settings),
            probe::READY_WINDOW,
        ));
        health.broker_answered();
        health.loop_turned();
        let mut metrics = None;
        let exposition = match listener {
            None => None,
            Some(listener) => {
                let mut registry = prometheus_client::registry::Registry::default();
                metrics = Some(WorkerMetrics::register(&mut registry));
                // No queue gauges: `rpc exporter` serves those once.
                crate::telemetry::register_process_metrics(&mut registry);
                let exposition = Exposition {
                    registry,
                    health: Some(health.clone()),
                    queues: None,
                };
                Some((listener, Arc::new(exposition)))
            }
        };
        Ok(Worker {
            shared: Arc::new(Shared {
                backend,
                services,
                middleware: self.middleware,
                queues,
                settings: self.settings,
                running: Mutex::default(),
                stats: Stats::default(),
                clock,
                outstanding: Arc::default(),
                metrics,
                health,
                paused: PausedQueues::default(),
                cancels: Arc::default(),
                due_hint: DueHint::default(),
                daily: Default::default(),
            }),
            exposition,
            periodic,
        })
    }
}

impl Worker {
    /// A builder for a worker on the broker at `url`.
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(url)
    }
}
