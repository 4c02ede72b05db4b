//! Calls every job of `Drawing`, `Admin` and `Health` through the typed Rust
//! clients and checks every answer (typed errors, `handler`, `bad_request`
//! and `unknown_job` included): `everything::check::every_job`, the checks
//! `tests/every_job.rs` holds the Rust worker to, against whatever worker
//! serves the queue (the Python interop tests run it against the Python one).
//!
//! `everything-check --url redis://127.0.0.1:6379/ [--prefix rpc]` prints
//! `ok CHECK` per passed group and exits 0 when all pass; on the first
//! wrong answer it prints `FAILED: WHY` on stderr and exits 1 (2: could not
//! connect).

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
