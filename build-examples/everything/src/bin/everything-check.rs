//! Calls every job of `Drawing`, `Admin` and `Health` through the typed Rust
//! clients and checks every answer (typed errors, `handler`, `bad_request`
//! and `unknown_job` included): `everything::check::every_job`, the checks
//! `tests/every_job.rs` holds the Rust worker to, against whatever worker
//! serves the queue (the Python interop tests run it against the Python one).
//!
//! `everything-check --url redis://127.0.0.1:6379/ [--prefix rpc]` prints
//! `ok CHECK` per passed group and exits 0 when all pass; on the first
//! wrong answer it prints `FAILED: WHY` on stderr and exits 1 (2: could not
//! connect). `--load N --tasks T` instead makes N checked calls from T tasks
//! and prints the calls per second, for comparison with the Python client.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "everything-check",
    version,
    about = "Check a worker serving everything.rpc"
)]
struct Args {
    /// Broker URL; default: $REDIS_URL or redis://127.0.0.1:6379/
    #[arg(long)]
    url: Option<String>,
    /// Key prefix shared with workers.
    #[arg(long, default_value = "rpc")]
    prefix: String,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Instead of the checks: this many `Drawing.headerValue` calls, every
    /// answer checked, printing `rust client: N calls from T tasks in S s
    /// = R calls/s`.
    #[arg(long, value_name = "N")]
    load: Option<usize>,
    /// The tasks calling at once with `--load`.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let client = match rpc_runtime::Client::builder(&url)
        .prefix(args.prefix)
        .default_timeout(Duration::from_secs_f64(args.timeout))
        .connect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(calls) = args.load {
        return match everything::check::load(&client, calls, args.tasks).await {
            Ok(took) => {
                let secs = took.as_secs_f64();
                println!(
                    "rust client: {calls} calls from {} tasks in {secs:.2} s = {:.0} calls/s",
                    args.tasks,
                    calls as f64 / secs
                );
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("FAILED: {why}");
                ExitCode::FAILURE
            }
        };
    }
    match everything::check::every_job(&client).await {
        Ok(passed) => {
            for check in passed {
                println!("ok {check}");
            }
            println!("all checks passed");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("FAILED: {why}");
            ExitCode::FAILURE
        }
    }
}
