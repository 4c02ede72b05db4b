//! Serves the Calculator service from a Redis queue until SIGTERM or ctrl-c.
//!
//! `worker --url redis://127.0.0.1:6379/` (or `REDIS_URL`); built with
//! `--features otlp`, `--otlp-endpoint http://127.0.0.1:4318` sends its
//! spans to an OpenTelemetry collector. `worker --probe 127.0.0.1:9464`
//! asks a running worker's `/healthz` (`probe.rs`), for healthchecks.

use std::time::Duration;

use calculator::{broker_url, Calc, CalculatorServer, TracingArgs};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "worker", version, about = "Serve the Calculator service")]
struct Args {
    /// Broker URL (redis://, rediss://, memory://); default: $REDIS_URL or redis://127.0.0.1:6379/
    #[arg(long)]
    url: Option<String>,
    /// Key prefix shared with clients.
    #[arg(long, default_value = "rpc")]
    prefix: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds a job's lease may go unrenewed before another worker takes it over.
    #[arg(long, default_value_t = 30.0)]
    visibility_timeout: f64,
    /// Serve Prometheus metrics, /healthz and /readyz over HTTP here (e.g. 0.0.0.0:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Ask the worker serving metrics at ADDR whether it is alive (GET /healthz), exit 0 if so, 1 if not; for container healthchecks.
    #[arg(long, value_name = "ADDR")]
    probe: Option<std::net::SocketAddr>,
    /// Exit at once when Redis cannot be reached at start, instead of waiting for it.
    #[arg(long)]
    fail_fast: bool,
    #[command(flatten)]
    tracing: TracingArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.probe {
        return calculator::probe::healthz(addr).await;
    }
    // Held to the end: dropping it sends the last spans.
    let _tracing = match args.tracing.init("info", "calculator-worker") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let url = broker_url(args.url, "redis://127.0.0.1:6379/");
    let mut builder = rpc_runtime::Worker::builder(&url)
        .prefix(args.prefix)
        .concurrency(args.concurrency)
        .visibility_timeout(Duration::from_secs_f64(args.visibility_timeout))
        .version(concat!("calculator ", env!("CARGO_PKG_VERSION")))
        .fail_fast(args.fail_fast)
        .mount(CalculatorServer::new(Calc));
    if let Some(addr) = args.metrics_addr {
        builder = builder.metrics_addr(addr);
    }
    let worker = builder.build().await;
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(addr) = worker.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    println!("worker ready");
    match worker.run().await {
        Ok(stats) => {
            println!("worker stopped: {stats:?}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
