//! `rpc`: the untyped path from a shell, for scripts, tools and debugging.
//!
//! ```text
//! rpc call Calculator.add '{"a": 1, "b": 2}'      # waits, prints the result as JSON
//! rpc call Calculator.log '{"line": "hi"}' --no-wait  # prints the call id
//! rpc fetch <id>                                  # a kept result, by id
//! rpc dead-letters Calculator                     # what was dead-lettered, and why
//! rpc replay Calculator --all                     # put dead letters back on the queue
//! rpc ping                                        # does the broker answer? latency, version
//! rpc stats [SERVICE...] [--json]                 # queued, leased, dead, workers per service
//! rpc top                                         # the same, refreshed every second (q quits)
//! ```
//!
//! Exit codes: 0 success, 1 the call failed (the error is printed on
//! stderr, as JSON with `--json-errors`), 2 bad usage.

mod operate;
mod ping;
mod stats;
mod top;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rpc_runtime::{CallOptions, Client, Error, JobId};

#[derive(Parser, Debug)]
#[command(
    name = "rpc",
    about = "Call jobs by name over the broker, inspect results and dead letters"
)]
struct Args {
    /// Broker URL (redis://, rediss://, memory://); default: $REDIS_URL or redis://127.0.0.1:6379/
    #[arg(long, global = true)]
    url: Option<String>,
    /// Key prefix shared with workers.
    #[arg(long, global = true, default_value = "rpc")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Call a job (`Service.job`) with JSON parameters.
    Call {
        job: String,
        /// The parameters: a JSON object keyed by parameter name.
        #[arg(default_value = "{}")]
        params: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Enqueue and print the call id without waiting (fire and forget).
        #[arg(long)]
        no_wait: bool,
        /// Print the whole response (`data`, `id`, `response_key`), not only `data`.
        #[arg(long)]
        full: bool,
    },
    /// Print the kept result of a call by id (exit 1 if it is not there).
    Fetch { id: String },
    /// List a service's dead letters, oldest first, one JSON object a line.
    DeadLetters {
        service: String,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Put dead letters back on their queue (fresh attempts, no deadline).
    Replay {
        service: String,
        /// Tokens of the dead letters to replay (from `dead-letters`).
        tokens: Vec<String>,
        /// Replay every dead letter of the service.
        #[arg(long, conflicts_with = "tokens")]
        all: bool,
    },
    #[command(flatten)]
    Operate(operate::Operate),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    match run(&url, &args.prefix, args.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, prefix: &str, command: Command) -> Result<(), Error> {
    // The operator's commands only read, and need no client.
    let command = match command {
        Command::Operate(operate) => return operate.run(url, prefix).await,
        other => other,
    };
    let client = Client::builder(url).prefix(prefix).connect().await?;
    match command {
        Command::Call {
            job,
            params,
            timeout,
            no_wait,
            full,
        } => {
            let params: serde_json::Value =
                serde_json::from_str(&params).map_err(|e| Error::Codec {
                    what: "read the parameters".to_owned(),
                    reason: format!("{e} (give one JSON object, e.g. '{{\"a\": 1}}')"),
                })?;
            if no_wait {
                println!("{}", client.call(&job, params).await?);
                return Ok(());
            }
            let options = CallOptions::timeout(Duration::from_secs_f64(timeout));
            let response = client.call_and_wait_with(&job, params, &options).await?;
            if full {
                let whole = serde_json::json!({
                    "data": response.data,
                    "id": response.id.as_str(),
                    "response_key": response.response_key,
                });
                println!("{whole}");
            } else {
                println!("{}", response.data);
            }
        }
        Command::Fetch { id } => match client.fetch_result(&JobId::from(id.as_str())).await? {
            Some(Ok(data)) => println!("{data}"),
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Error::Codec {
                    what: format!("fetch the result of {id}"),
                    reason:
                        "no result is kept under that id (not done yet, expired, or never kept)"
                            .to_owned(),
                })
            }
        },
        Command::DeadLetters { service, max } => {
            for dead in client.dead_letters(&service, max).await? {
                let message = serde_json::from_slice::<serde_json::Value>(&dead.payload)
                    .unwrap_or_else(|_| {
                        serde_json::Value::String(
                            String::from_utf8_lossy(&dead.payload).into_owned(),
                        )
                    });
                let line = serde_json::json!({"token": dead.token, "reason": dead.reason, "message": message});
                println!("{line}");
            }
        }
        Command::Replay {
            service,
            tokens,
            all,
        } => {
            if tokens.is_empty() && !all {
                return Err(Error::Codec {
                    what: "choose dead letters".to_owned(),
                    reason: "name their tokens, or pass --all".to_owned(),
                });
            }
            // One dead letter that cannot be replayed (garbage that was
            // dead-lettered as unreadable) must not hold back the others:
            // replay every one that can be, then say which could not.
            let mut replayed = 0;
            let mut not_replayed = Vec::new();
            for dead in client.dead_letters(&service, usize::MAX).await? {
                if all || tokens.contains(&dead.token) {
                    match client.replay_dead_letter(&service, &dead).await {
                        Ok(id) => {
                            println!("replayed {} as call {id}", dead.token);
                            replayed += 1;
                        }
                        Err(e) => {
                            let why = match e {
                                Error::Codec { reason, .. } => reason,
                                other => other.to_string(),
                            };
                            eprintln!("could not replay {}: {why}", dead.token);
                            not_replayed.push(dead.token);
                        }
                    }
                }
            }
            if !not_replayed.is_empty() {
                return Err(Error::Codec {
                    what: "replay every dead letter".to_owned(),
                    reason: format!(
                        "replayed {replayed}, could not replay {}: {}",
                        not_replayed.len(),
                        not_replayed.join(", ")
                    ),
                });
            }
            if replayed == 0 {
                eprintln!("no matching dead letters");
            }
        }
        Command::Operate(_) => unreachable!("run above, without a client"),
    }
    Ok(())
}
