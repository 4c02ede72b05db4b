//! Sending the call and job spans to an OTLP collector (feature `otlp`):
//! what an operator turns on to see traces in Jaeger, Tempo or an
//! OpenTelemetry Collector, without each application writing the same
//! OpenTelemetry wiring.
//!
//! [`start`] builds an `opentelemetry_sdk` tracer provider whose batch
//! processor exports with `opentelemetry-otlp` over HTTP/protobuf, makes it
//! and the W3C trace-context propagator OpenTelemetry's globals, and returns
//! an [`OtlpGuard`] whose [`layer`](OtlpGuard::layer) joins the `tracing`
//! spans to it. [`install`] also makes that layer the process's only
//! subscriber, for applications that have none of their own. Dropping the
//! guard flushes what is queued and shuts the exporter down, so keep it
//! for as long as the process runs.
//!
//! Configured as every OpenTelemetry SDK is, so an operator needs no
//! project-specific knowledge: the endpoint from the code or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! (`endpoint`), `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//! the batch processor's `OTEL_BSP_*`, and for TLS
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (a CA to trust) and the client
//! certificate and key. The transport (reqwest's blocking client, http or
//! https, off the application's runtime, and why) is `transport`. The wire between client and worker does not
//! change: the trace context still travels in `meta` (docs/PROTOCOL.md).

mod endpoint;
mod transport;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// What can go wrong setting up or shutting down the OTLP export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The endpoint cannot be used; `from` says where it came from (the
    /// code or an environment variable).
    #[error("OTLP endpoint {url:?} (from {from}): {reason}")]
    Endpoint {
        /// The traces URL as resolved.
        url: String,
        /// Where the endpoint came from.
        from: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An `OTEL_EXPORTER_OTLP_*` setting cannot be used (a timeout that is
    /// not a number, a certificate file that cannot be read).
    #[error("{var}: {reason}")]
    Setting {
        /// The variable (or variables) at fault.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `opentelemetry-otlp` refused its configuration (e.g. a bad
    /// `OTEL_EXPORTER_OTLP_*` variable).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// [`install`] found a subscriber already in place.
    #[error(
        "a tracing subscriber is already installed: call `telemetry::otlp::start` \
         and add its `layer()` to that subscriber instead"
    )]
    SubscriberAlreadySet,
    /// A flush or the shutdown did not complete (e.g. the collector did
    /// not answer in time).
    #[error("OTLP export: {0}")]
    Export(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// The running OTLP export; flushes and shuts it down when dropped.
///
/// Hold it for as long as the process makes spans (typically a variable in
/// `main`): spans that end after it is dropped are not exported.
#[derive(Debug)]
pub struct OtlpGuard {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    endpoint: String,
    shut_down: bool,
}

/// Starts exporting spans over OTLP (HTTP/protobuf) as `service_name`.
///
/// `endpoint` is the collector's base URL (`http://host:4318` or
/// `https://collector.example:4318`; the
/// `/v1/traces` path is appended); `None` reads
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base), else `http://localhost:4318`.
/// `OTEL_SERVICE_NAME`, when set, names the service instead of
/// `service_name`. Sets OpenTelemetry's global tracer provider and the W3C
/// trace-context propagator; add [`OtlpGuard::layer`] to your subscriber.
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
///
/// let otlp = rpc_runtime::telemetry::otlp::start("billing-worker", None)?;
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer())
///     .with(otlp.layer())
///     .init();
/// // ... run the worker; dropping `otlp` at the end flushes the last spans.
/// # Ok::<(), rpc_runtime::telemetry::otlp::OtlpError>(())
/// ```
pub fn start(service_name: &str, endpoint: Option<&str>) -> Result<OtlpGuard, OtlpError> {
    let endpoint = endpoint::resolve(endpoint, |var| std::env::var(var).ok())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .with_http_client(transport::client(|var| std::env::var(var).ok())?)
        .build()?;
    let mut resource = Resource::builder();
    // The SDK's resource reads OTEL_SERVICE_NAME itself; only a process
    // that sets none is named by the code.
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        resource = resource.with_service_name(service_name.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build();
    let scope = InstrumentationScope::builder("rpc-runtime")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let tracer = provider.tracer_with_scope(scope);
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(OtlpGuard {
        provider,
        tracer,
        endpoint,
        shut_down: false,
    })
}

/// [`start`], with the layer installed as the process's global subscriber
/// (a `tracing_subscriber::registry()` with nothing else): for a process
/// that logs nothing else through `tracing`. Fails with
/// [`OtlpError::SubscriberAlreadySet`] if it has a subscriber already.
///
/// ```no_run
/// let _otlp = rpc_runtime::telemetry::otlp::install("billing-worker", Some("http://127.0.0.1:4318"))?;
/// # Ok::<(), rpc_runtime::telemetry::otlp::OtlpError>(())
/// ```
pub fn install(service_name: &str, endpoint: Option<&str>) -> Result<OtlpGuard, OtlpError> {
    let guard = start(service_name, endpoint)?;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(guard.layer()))
        .map_err(|_| OtlpError::SubscriberAlreadySet)?;
    Ok(guard)
}

impl OtlpGuard {
    /// The tracing-opentelemetry layer over this export, to add to a
    /// subscriber (any number of times: each shares the exporter).
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone())
    }

    /// The URL spans are posted to, as resolved (for the startup log).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exports every span that has ended so far, waiting for the collector.
    pub fn flush(&self) -> Result<(), OtlpError> {
        Ok(self.provider.force_flush()?)
    }

    /// Flushes and stops the export, reporting what dropping the guard
    /// would ignore.
    pub fn shutdown(mut self) -> Result<(), OtlpError> {
        self.shut_down = true;
        Ok(self.provider.shutdown()?)
    }
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        // The global provider and every layer hold the provider too, so it
        // would never shut down (and flush) by itself: this guard does it.
        if !self.shut_down {
            let _ = self.provider.shutdown();
        }
    }
}
