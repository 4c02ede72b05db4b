//! `chaos-worker`: a worker process serving the `Chaos` service, for tests
//! that kill, freeze and stop workers (see the crate docs). It exits 0 after
//! a graceful shutdown on SIGTERM or ctrl-c, printing its counters as a
//! `stats {...}` line.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc_chaos::{chaos_service, emit};
use rpc_runtime::{
    shutdown_signal, CallOptions, Client, Error, JobId, MissedTicks, Periodic, Worker,
};

/// Serve the Chaos jobs (square, sleep, note, record, flaky, context) from a Redis queue.
#[derive(Parser, Debug)]
#[command(name = "chaos-worker", version)]
struct Args {
    /// Broker URL (`redis://`, `rediss://...?ca=`, `redis+cluster://`).
    #[arg(long, env = "CHAOS_URL")]
    url: String,
    /// Key prefix.
    #[arg(long, default_value = "rpc")]
    prefix: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Visibility timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    visibility_ms: u64,
    /// Attempt limit for jobs that set none.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Shutdown grace period in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    shutdown_grace_ms: u64,
    /// Inbox TTL in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    inbox_ttl_ms: u64,
    /// Largest job message run, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Forget consumers idle this long (ms) with no pending jobs at start.
    #[arg(long, default_value_t = 24 * 60 * 60 * 1000)]
    forget_consumers_after_ms: u64,
    /// Instead of serving: fetch the kept result of call ID, print it as
    /// `result JSON` (or `error MESSAGE` / `missing`) and exit.
    #[arg(long, value_name = "ID")]
    fetch: Option<String>,
    /// Instead of serving: call JOB (`Service.job`) with `--params`, wait up
    /// to `--timeout-ms`, print `answer JSON elapsed_ms` or `failed KIND
    /// elapsed_ms` and exit (a client in a process of its own, e.g. one
    /// whose clock is shifted).
    #[arg(long, value_name = "JOB")]
    call: Option<String>,
    /// The parameters of `--call`, as JSON.
    #[arg(long, default_value = "{}")]
    params: String,
    /// The timeout of `--call`, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Serve the Chaos service without this job, as a worker of an older
    /// schema that did not have it would (repeatable).
    #[arg(long, value_name = "JOB")]
    omit_job: Vec<String>,
    /// Serve Prometheus metrics, /healthz and /readyz over HTTP here
    /// (port 0: any free port; the bound address is printed as `metrics ADDR`).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Enqueue a periodic job (repeatable):
    /// `NAME=every:DURATION:Service.job[:PARAMS]` (DURATION like `200ms`,
    /// `2s`, `1h 30m`: humantime's, as `rpc` reads durations) or
    /// `NAME=cron:EXPRESSION:Service.job[:PARAMS]`.
    #[arg(long, value_name = "SPEC")]
    periodic: Vec<String>,
    /// How often the heartbeat is written, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    beat_every_ms: u64,
    /// How long a heartbeat lives, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    beat_ttl_ms: u64,
    /// Exit when the broker cannot be reached at start, instead of waiting for it.
    #[arg(long)]
    fail_fast: bool,
    /// A per-key concurrency limit, `Service.job=K` (repeatable).
    #[arg(long, value_name = "JOB=K")]
    group_limit: Vec<String>,
    /// What the periodic jobs do about ticks missed while no worker ran.
    #[arg(long, value_name = "run-once|skip", default_value = "run-once")]
    periodic_missed: String,
    /// Rate limits across the fleet, e.g. `Chaos.record=50/s; Chaos=1000/m`
    /// (`WorkerBuilder::rate_limits`).
    #[arg(long, value_name = "SPEC", default_value = "")]
    rate_limits: String,
}

/// A `--periodic` spec as a periodic job.
fn periodic(spec: &str, missed: &str) -> Result<Periodic, String> {
    let missed = match missed {
        "run-once" => MissedTicks::RunOnce,
        "skip" => MissedTicks::Skip,
        other => return Err(format!("--periodic-missed {other}: run-once or skip")),
    };
    let bad = || format!("--periodic {spec}: NAME=every:DURATION:Service.job[:PARAMS]");
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    let mut parts = rest.splitn(4, ':');
    let (kind, when, job) = (parts.next(), parts.next(), parts.next().ok_or_else(bad)?);
    let params = match parts.next() {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("--periodic {spec}: {e}"))?,
        None => serde_json::json!({}),
    };
    let job = match (kind, when) {
        (Some("every"), Some(d)) => {
            let every = humantime::parse_duration(d).map_err(|e| format!("{}: {e}", bad()))?;
            Periodic::every(name, every, job, params)
        }
        (Some("cron"), Some(expression)) => Periodic::cron(name, expression, job, params),
        _ => return Err(bad()),
    };
    Ok(job.missed(missed))
}

/// A client for the `--call` and `--fetch` modes; exit status 2 if the
/// broker cannot be reached.
async fn connect(args: &Args) -> Result<Client, ExitCode> {
    Client::builder(&args.url)
        .prefix(&args.prefix)
        .connect()
        .await
        .map_err(|e| {
            eprintln!("chaos-worker: {e}");
            ExitCode::from(2)
        })
}

async fn call(args: &Args, job: &str) -> ExitCode {
    let client = match connect(args).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let params = match serde_json::from_str(&args.params) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("chaos-worker: --params: {e}");
            return ExitCode::from(2);
        }
    };
    let options = CallOptions::timeout(Duration::from_millis(args.timeout_ms));
    let t0 = std::time::Instant::now();
    let answer = client
        .call(job, params)
        .options(options.clone())
        .response()
        .await;
    let elapsed = t0.elapsed().as_millis();
    match answer {
        Ok(r) => emit(&format!("answer {} {elapsed}", r.data)),
        Err(Error::Timeout { .. }) => emit(&format!("failed timeout {elapsed}")),
        Err(e) => match e.remote_kind() {
            Some(kind) => emit(&format!("failed {kind} {elapsed}")),
            None => emit(&format!("failed {e} {elapsed}")),
        },
    }
    ExitCode::SUCCESS
}

async fn fetch(args: &Args, id: &str) -> ExitCode {
    let client = match connect(args).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.fetch_result(&JobId::from(id)).await {
        Ok(Some(Ok(value))) => emit(&format!("result {value}")),
        Ok(Some(Err(e))) => emit(&format!("error {e}")),
        Ok(None) => emit("missing"),
        Err(e) => {
            eprintln!("chaos-worker: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Coloured only on a terminal, never with NO_COLOR set: a log file
        // carries no ANSI escapes.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let args = Args::parse();
    if let Some(id) = &args.fetch {
        return fetch(&args, id).await;
    }
    if let Some(job) = &args.call {
        return call(&args, job).await;
    }
    let service = args
        .omit_job
        .iter()
        .fold(chaos_service(), |service, job| service.without(job));
    let mut builder = Worker::builder(&args.url);
    if let Some(addr) = args.metrics_addr {
        builder = builder.metrics_addr(addr);
    }
    for spec in &args.group_limit {
        let limit = spec
            .split_once('=')
            .and_then(|(job, k)| Some((job, k.parse::<u32>().ok()?)));
        match limit {
            Some((job, k)) => builder = builder.group_limit(job, k),
            None => {
                eprintln!("chaos-worker: --group-limit {spec}: Service.job=K");
                return ExitCode::from(2);
            }
        }
    }
    for spec in &args.periodic {
        match periodic(spec, &args.periodic_missed) {
            Ok(job) => builder = builder.periodic(job),
            Err(e) => {
                eprintln!("chaos-worker: {e}");
                return ExitCode::from(2);
            }
        }
    }
    builder = match builder.rate_limits(&args.rate_limits) {
        Ok(builder) => builder,
        Err(e) => {
            eprintln!("chaos-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let worker = builder
        .prefix(&args.prefix)
        .mount(service)
        .concurrency(args.concurrency)
        .visibility_timeout(Duration::from_millis(args.visibility_ms))
        .max_attempts(args.max_attempts)
        .shutdown_grace(Duration::from_millis(args.shutdown_grace_ms))
        .inbox_ttl(Duration::from_millis(args.inbox_ttl_ms))
        .max_message_bytes(args.max_message_bytes)
        .forget_consumers_after(Duration::from_millis(args.forget_consumers_after_ms))
        .heartbeat(
            Duration::from_millis(args.beat_every_ms),
            Duration::from_millis(args.beat_ttl_ms),
        )
        .fail_fast(args.fail_fast)
        .build()
        .await;
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("chaos-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = worker.metrics_addr() {
        emit(&format!("metrics {addr}"));
    }
    // Handlers first, then "ready": a test may send SIGTERM right after it.
    let stop = shutdown_signal();
    emit(&format!("ready {}", std::process::id()));
    match worker.run_until(stop).await {
        Ok(stats) => {
            emit(&format!(
                "stats {}",
                serde_json::json!({
                    "succeeded": stats.succeeded,
                    "failed": stats.failed,
                    "retried": stats.retried,
                    "dead_lettered": stats.dead_lettered,
                    "reclaimed": stats.reclaimed,
                    "expired": stats.expired,
                })
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chaos-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_intervals_are_read_as_rpc_reads_durations() {
        let every = |text: &str| {
            periodic(&format!("beat=every:{text}:Chaos.note"), "run-once").map(|p| format!("{p:?}"))
        };
        assert!(every("200ms").unwrap().contains("Every(200ms)"));
        assert!(every("2s").unwrap().contains("Every(2s)"));
        assert!(every("1h 30m").unwrap().contains("Every(5400s)"));
        for bad in ["", "200", "2 parsecs", "-1s"] {
            let err = every(bad).expect_err(bad);
            assert!(err.contains("NAME=every:DURATION"), "{bad}: {err}");
        }
    }
}
