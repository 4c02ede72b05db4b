//! `rpc`: the untyped path from a shell, for scripts, tools and debugging.
//!
//! ```text
//! rpc call Calculator.add '{"a": 1, "b": 2}'      # waits, prints the result as JSON
//! rpc call Calculator.log '{"line": "hi"}' --no-wait  # prints the call id
//! rpc fetch <id>                                  # a kept result, by id
//! rpc dead-letters [Calculator]                   # what was dead-lettered, and why
//! rpc replay Calculator --all                     # put dead letters back on the queue
//! rpc dashboard --schema schema/calculator.rpc    # the web dashboard on 127.0.0.1:9870
//! rpc ping                                        # does the broker answer? latency, version
//! rpc stats [SERVICE...] [--format json]          # queued, leased, dead, workers per service
//! rpc top                                         # the same, refreshed every second (q quits)
//! rpc periodic [SERVICE...] [--format json]       # periodic jobs: schedule, last and next run
//! rpc backlog-check --schema new.rpc              # would the new schema reject what waits in Redis?
//! rpc exporter --listen 0.0.0.0:9465              # every queue's figures for Prometheus, once
//! rpc call Mail.send '{...}' --delay 10m --no-wait  # runs in ten minutes (or --at RFC3339)
//! rpc call Orders.place '{...}' --key order-42    # at most once per key (idempotent)
//! rpc scheduled [Mail]                            # delayed jobs and retries, with due times
//! rpc cancel <id>                                 # a queued, scheduled or running call
//! rpc pause Mail / rpc resume Mail                # stop and restart taking a service's jobs
//! rpc completions bash                            # the shell's completion script
//! rpc workers [SERVICE] / rpc workers quiet|stop ID  # live workers; quiet or stop one
//! rpc shards Orders / rpc shards Orders 8          # a sharded service's shard count; set it
//! ```
//!
//! Every listing takes `--format table|json` (README, "Machine-readable
//! output"); the exit status follows one rule for every command
//! ([`failure`]): 0 done, 1 the answer is "no", 2 could not run.

mod backlog_check;
mod broker;
mod call;
mod completions;
mod dead_letters;
mod duration_arg;
mod exporter;
mod failure;
mod fetch;
mod known_service;
mod lifecycle;
mod operate;
mod output_format;
mod periodic;
mod ping;
mod progress;
mod progress_bar;
mod scheduled;
mod shards;
mod stats;
mod stdout;
mod table;
mod top;
mod workers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use failure::Failure;
use rpc_runtime::Error;

#[derive(Parser, Debug)]
#[command(
    name = "rpc",
    version,
    about = "Call jobs by name over the broker, inspect results and dead letters",
    after_help = failure::EXIT_STATUS_HELP
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
    Call(call::CallArgs),
    /// Print the kept result of a call by id (exit 1 if it is not there).
    Fetch(fetch::FetchArgs),
    /// List dead letters (of a service, or of every one), oldest first.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// Put dead letters back on their queue (fresh attempts, no deadline).
    Replay(dead_letters::ReplayArgs),
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
    /// Would a new schema's workers reject what is queued, scheduled, leased or dead-lettered now? Exit 1 if so.
    BacklogCheck(backlog_check::BacklogCheckArgs),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Serve every queue's figures (depth, leased, scheduled, dead, paused, consumers) to Prometheus.
    Exporter(exporter::ExporterArgs),
    /// The live workers (and the gone ones) from their heartbeats; `quiet ID` / `stop ID` ask one to stop taking jobs / to shut down.
    Workers(workers::WorkersArgs),
    /// A sharded service's shard count (count and seen); `SERVICE N` sets the count clients place calls on.
    Shards(shards::ShardsArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let command = match args.command {
        Command::BacklogCheck(check) => {
            return backlog_check::main(&url, &args.prefix, check).await
        }
        Command::Completions(shell) => {
            completions::run(shell);
            return ExitCode::SUCCESS;
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
            e.exit_code()
        }
    }
}

async fn run(url: &str, prefix: &str, command: Command) -> Result<(), Failure> {
    let command = match command {
        Command::Dashboard {
            listen,
            schemas,
            token,
            read_only,
        } => return dashboard(url, prefix, listen, schemas, token, read_only).await,
        // The operator's commands only read, and need no client.
        Command::Operate(operate) => return operate.run(url, prefix).await,
        Command::Exporter(args) => return exporter::run(url, prefix, args).await,
        Command::Workers(args) => return workers::run(url, prefix, args).await,
        Command::Shards(args) => return shards::run(url, prefix, args).await,
        other => other,
    };
    let client = crate::broker::client(url, prefix).await?;
    match command {
        Command::Call(args) => call::run(&client, url, prefix, args).await,
        Command::Fetch(args) => fetch::run(&client, args).await,
        Command::DeadLetters(args) => dead_letters::list(&client, url, prefix, args).await,
        Command::Replay(args) => dead_letters::replay(&client, url, prefix, args).await,
        Command::Lifecycle(lifecycle) => lifecycle.run(&client, url, prefix).await,
        Command::Dashboard { .. }
        | Command::Operate(_)
        | Command::BacklogCheck(_)
        | Command::Completions(_)
        | Command::Exporter(_)
        | Command::Workers(_)
        | Command::Shards(_) => {
            unreachable!("run above, without a client")
        }
    }
}

async fn dashboard(
    url: &str,
    prefix: &str,
    listen: std::net::SocketAddr,
    schemas: Vec<std::path::PathBuf>,
    token: Option<String>,
    read_only: bool,
) -> Result<(), Failure> {
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
    rpc_dashboard::run(options)
        .await
        .map_err(|e| Failure::cannot("start the dashboard", e))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Walks the whole command tree: every subcommand and every argument
    /// (flags and positionals alike) says what it is for in `--help`.
    #[test]
    fn every_subcommand_and_argument_has_help() {
        let command = super::Args::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "rpc", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" && sub.get_about().is_none() {
                missing.push(sub_path.clone());
            }
            walk(sub, &sub_path, missing);
        }
    }
}
