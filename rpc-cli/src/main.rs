//! `rpc`: the untyped path from a shell, for scripts, tools and debugging.
//!
//! ```text
//! rpc call Calculator.add '{"a": 1, "b": 2}'      # waits, prints the result as JSON
//! rpc call Calculator.log '{"line": "hi"}' --no-wait  # prints the call id
//! rpc fetch <id>                                  # a kept result, by id
//! rpc dead-letters Calculator                     # what was dead-lettered, and why
//! rpc replay Calculator --all                     # put dead letters back on the queue
//! rpc dashboard --schema schema/calculator.rpc    # the web dashboard on 127.0.0.1:9870
//! rpc ping                                        # does the broker answer? latency, version
//! rpc stats [SERVICE...] [--json]                 # queued, leased, dead, workers per service
//! rpc top                                         # the same, refreshed every second (q quits)
//! rpc periodic [SERVICE...] [--json]              # periodic jobs: schedule, last and next run
//! rpc backlog-check --schema new.rpc              # would the new schema reject what waits in Redis?
//! rpc call Mail.send '{...}' --delay 10m --no-wait  # runs in ten minutes (or --at RFC3339)
//! rpc call Orders.place '{...}' --key order-42    # at most once per key (idempotent)
//! rpc scheduled Mail                              # delayed jobs and retries, with due times
//! rpc cancel <id>                                 # a queued, scheduled or running call
//! rpc pause Mail / rpc resume Mail                # stop and restart taking a service's jobs
//! rpc workers [SERVICE] / rpc workers quiet|stop ID  # live workers; quiet or stop one
//! ```
//!
//! Exit codes: 0 success, 1 the call failed (the error is printed on
//! stderr, as JSON with `--json-errors`), 2 bad usage. `backlog-check`
//! exits 1 when a message would be rejected, 2 when it cannot check.

mod backlog_check;
mod broker;
mod duration_arg;
mod failure;
mod lifecycle;
mod operate;
mod periodic;
mod ping;
mod scheduled;
mod stats;
mod table;
mod top;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use failure::Failure;
use rpc_runtime::{CallError, CallOptions, Error, JobId};

#[derive(Parser, Debug)]
#[command(
    name = "rpc",
    about = "Call jobs by name over the broker, inspect results and dead letters"
)]
struct Args {
    /// Broker URL (redis://, rediss://, redis+cluster://); default: $REDIS_URL or redis://127.0.0.1:6379/
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
        /// How long to wait for the answer (`30s`, `2m`; a bare number is seconds).
        #[arg(long, default_value = "30s", value_parser = duration_arg::parse)]
        timeout: Duration,
        /// Enqueue and print the call id without waiting (fire and forget).
        #[arg(long)]
        no_wait: bool,
        /// Print the whole response (`data`, `id`, `response_key`), not only
        /// `data`; for an error, `{"error": {"kind", "message", "data"}}`.
        #[arg(long)]
        full: bool,
        /// Run the job this long after sending it (`10s`, `5m`, `1h 30m`).
        #[arg(long, value_parser = duration_arg::parse, conflicts_with = "at")]
        delay: Option<Duration>,
        /// Run the job at this time (RFC 3339, e.g. `2026-12-02T10:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        at: Option<std::time::SystemTime>,
        /// An idempotency key: while it is remembered (1 h), the same call
        /// with the same key runs once and every sender gets its answer.
        #[arg(long)]
        key: Option<String>,
        /// With `--no-wait`: how long the result is kept for `rpc fetch`.
        #[arg(long, default_value = "5m", value_parser = duration_arg::parse)]
        keep: Duration,
    },
    /// Print the kept result of a call by id (exit 1 if it is not there).
    Fetch {
        id: String,
        /// How long to wait for the result to be there (`0`: look once).
        #[arg(long, default_value = "0s", value_parser = duration_arg::parse)]
        wait: Duration,
    },
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
    Lifecycle(lifecycle::Lifecycle),
    /// Serve the web dashboard: services, workers, jobs and dead letters.
    Dashboard {
        /// Address to listen on; anything but loopback needs --token.
        #[arg(long, default_value = "127.0.0.1:9870")]
        listen: std::net::SocketAddr,
        /// Schema files (`.rpc`) for typed views and forms.
        #[arg(long = "schema", value_name = "FILE.rpc")]
        schemas: Vec<std::path::PathBuf>,
        /// Token every request must carry (basic-auth password, bearer, or ?token= once).
        #[arg(long, env = "RPC_DASHBOARD_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Show everything, offer no action.
        #[arg(long)]
        read_only: bool,
    },
    #[command(flatten)]
    Operate(operate::Operate),
    /// Would a new schema's workers reject what is queued, leased or dead-lettered now? Exit 1 if so.
    BacklogCheck(backlog_check::BacklogCheckArgs),
    /// The live workers (and the gone ones) from their heartbeats; `quiet ID` / `stop ID` ask one to stop taking jobs / to shut down.
    Workers(workers::WorkersArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    // Its own exit statuses (1: something would be rejected, 2: cannot check).
    let command = match args.command {
        Command::BacklogCheck(check) => {
            return backlog_check::main(&url, &args.prefix, check).await
        }
        other => other,
    };
    match run(&url, &args.prefix, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                // An application error's value is what the caller needs.
                Failure::Runtime(Error::Remote {
                    data: Some(data), ..
                }) => eprintln!("error: {e}: {data}"),
                _ => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, prefix: &str, command: Command) -> Result<(), Failure> {
    if let Command::Dashboard {
        listen,
        schemas,
        token,
        read_only,
    } = command
    {
        // A broker this process alone would see is refused; one that does
        // not answer yet is the dashboard's to report, page by page.
        if let Err(e @ Error::InvalidUrl { .. }) = broker::inspector(url, prefix).await {
            return Err(e.into());
        }
        let options = rpc_dashboard::Options {
            prefix: prefix.to_owned(),
            listen,
            schemas,
            token,
            read_only,
            ..rpc_dashboard::Options::new(url)
        };
        return rpc_dashboard::run(options)
            .await
            .map_err(|e| Failure::cannot("start the dashboard", e));
    }
    // The operator's commands only read, and need no client.
    let command = match command {
        Command::Operate(operate) => return operate.run(url, prefix).await,
        Command::Workers(args) => return workers::run(url, prefix, args).await,
        other => other,
    };
    let client = crate::broker::client(url, prefix).await?;
    match command {
        Command::Call {
            job,
            params,
            timeout,
            no_wait,
            full,
            keep,
            delay,
            at,
            key,
        } => {
            let lifecycle = CallOptions {
                delay,
                run_at: at,
                idempotency_key: key,
                ..CallOptions::default()
            };
            let params: serde_json::Value = serde_json::from_str(&params).map_err(|e| {
                Failure::cannot(
                    "read the parameters".to_owned(),
                    format!("{e} (give one JSON object, e.g. '{{\"a\": 1}}')"),
                )
            })?;
            if no_wait {
                // Fire and forget, but keep the result a while, so that
                // `rpc fetch <id>` can read it (nobody waits on an inbox).
                let options = CallOptions {
                    timeout: Some(timeout),
                    result_ttl: Some(keep),
                    ..lifecycle
                };
                println!("{}", client.send(&job, params).options(options).await?);
                return Ok(());
            }
            let options = lifecycle.with_timeout(timeout);
            let pending = client.call(&job, params).options(options).send().await?;
            let (id, response_key) = (pending.id().clone(), pending.response_key());
            let data = match pending.await {
                Ok(data) => data,
                Err(e) => {
                    let e = match e {
                        CallError::Rpc(e) => e,
                        CallError::App(data) => Error::Remote {
                            job: job.clone(),
                            kind: rpc_runtime::ErrorKind::App,
                            message: "the job returned its application error".to_owned(),
                            data: Some(data),
                        },
                    };
                    if let (
                        true,
                        Error::Remote {
                            kind,
                            message,
                            data,
                            ..
                        },
                    ) = (full, &e)
                    {
                        // The whole answer on stdout for scripts, the error on
                        // stderr and the exit status as usual.
                        let whole = serde_json::json!({
                            "error": {"kind": kind, "message": message, "data": data},
                        });
                        println!("{whole}");
                    }
                    return Err(e.into());
                }
            };
            if full {
                let whole = serde_json::json!({
                    "data": data,
                    "id": id.as_str(),
                    "response_key": response_key,
                });
                println!("{whole}");
            } else {
                println!("{data}");
            }
        }
        Command::Fetch { id, wait } => {
            let id = JobId::from(id.as_str());
            // No deadline an Instant can hold: wait as long as it takes.
            let deadline = std::time::Instant::now().checked_add(wait);
            let fetched = loop {
                match client.fetch_result(&id).await? {
                    Some(fetched) => break Some(fetched),
                    None if deadline.is_none_or(|d| std::time::Instant::now() < d) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    None => break None,
                }
            };
            match fetched {
                Some(Ok(data)) => println!("{data}"),
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(Failure::Cannot {
                        what: format!("fetch the result of {id}"),
                        reason:
                            "no result is kept under that id (not done yet, expired, or never kept)"
                                .to_owned(),
                    })
                }
            }
        }
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
        Command::Dashboard { .. } => unreachable!("served above"),
        Command::Replay {
            service,
            tokens,
            all,
        } => {
            if tokens.is_empty() && !all {
                return Err(Failure::cannot(
                    "choose dead letters".to_owned(),
                    "name their tokens, or pass --all".to_owned(),
                ));
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
                return Err(Failure::Cannot {
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
        Command::Lifecycle(lifecycle) => return lifecycle.run(&client, url, prefix).await,
        Command::Operate(_) | Command::BacklogCheck(_) | Command::Workers(_) => {
            unreachable!("run above, without a client")
        }
    }
    Ok(())
}

/// An RFC 3339 time (`2026-12-02T10:00:00Z`, offsets allowed).
fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(std::time::SystemTime::from)
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2026-12-02T10:00:00Z)"))
}
