//! How the example binaries trace: log lines on stderr from `RUST_LOG`,
//! and, in a build with the `otlp` feature, the call and job spans sent to
//! an OpenTelemetry collector (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), as an operator would run them.
//!
//! Log lines are coloured only on a terminal, and never when `NO_COLOR` is
//! set (<https://no-color.org>): stderr sent to a file or a log collector
//! carries no ANSI escapes.
//!
//! The flag exists in every build, so a script that passes it to a binary
//! built without the feature gets an error that says how to build it,
//! rather than silently no traces.

/// The tracing flags of the `worker` and `client` binaries.
#[derive(clap::Args, Debug, Default)]
pub struct TracingArgs {
    /// Send spans to this OpenTelemetry collector over OTLP/HTTP (e.g.
    /// http://127.0.0.1:4318). Also on when OTEL_EXPORTER_OTLP_ENDPOINT is
    /// set. Needs a build with `--features otlp`.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Keeps the span export running; dropping it flushes the last spans, so
/// hold it until `main` returns.
#[derive(Debug)]
pub struct Tracing {
    #[cfg(feature = "otlp")]
    _otlp: Option<rpc_runtime::telemetry::otlp::OtlpGuard>,
}

/// Sets up logging from `RUST_LOG` (else `default`, e.g. `info`) on stderr.
pub fn init_tracing(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(default))
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .try_init();
}

/// Whether log lines on stderr may be coloured: only on a terminal, and
/// not when `NO_COLOR` is set to anything but the empty string.
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

impl TracingArgs {
    /// Logging as [`init_tracing`], plus the OTLP export when asked for;
    /// `service` names the process in the collector.
    pub fn init(&self, default: &str, service: &str) -> Result<Tracing, String> {
        #[cfg(feature = "otlp")]
        {
            let from_env = [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ]
            .iter()
            .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()));
            if self.otlp_endpoint.is_some() || from_env {
                return self.init_otlp(default, service);
            }
        }
        if self.otlp_endpoint.is_some() {
            return Err(format!(
                "--otlp-endpoint needs a build with the otlp feature \
                 (cargo run -p calculator --features otlp --bin ...); {service} was built without it"
            ));
        }
        init_tracing(default);
        Ok(Tracing {
            #[cfg(feature = "otlp")]
            _otlp: None,
        })
    }

    #[cfg(feature = "otlp")]
    fn init_otlp(&self, default: &str, service: &str) -> Result<Tracing, String> {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;

        let otlp = rpc_runtime::telemetry::otlp::start(service, self.otlp_endpoint.as_deref())
            .map_err(|e| e.to_string())?;
        // RUST_LOG filters the log lines only: the spans go to the
        // collector whatever the log level.
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(colour_on_stderr())
                    .with_filter(log_filter(default)),
            )
            .with(otlp.layer())
            .try_init()
            .map_err(|e| e.to_string())?;
        eprintln!("{service}: sending spans to {}", otlp.endpoint());
        Ok(Tracing { _otlp: Some(otlp) })
    }
}
