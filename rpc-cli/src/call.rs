//! `rpc call Service.job '{...}'`: a job called by name from a shell, the
//! answer printed as JSON. With `-` (or `--stdin`) for the parameters, one
//! call per JSON line of stdin, all sent in one batch (`call/stdin.rs`).
//!
//! The service is looked up first: one that has never existed here (no
//! queue, nothing scheduled or waiting on its intake, no periodic job) is
//! most likely a typo, and a call to it would wait out its whole timeout
//! and leave a queue nobody serves behind. It fails at once, naming the
//! services there are; `--allow-new-service` queues it anyway (a worker
//! that is not up yet will take it). A user that may not read the queues
//! (the client's ACL role) cannot look, and its call goes out unchecked.
//!
//! `--progress` shows the call's progress on stderr while it waits
//! (`progress_bar.rs`).

use std::time::{Duration, SystemTime};

use clap::Args;
use rpc_runtime::{CallError, CallOptions, Client, Error, Pending};
use serde_json::Value;

use crate::failure::Failure;

mod stdin;

/// `rpc call Service.job [PARAMS] [...]`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The job to call, `Service.job` (e.g. `Calculator.add`).
    job: String,
    /// The parameters: a JSON object keyed by parameter name; `-` reads
    /// one object per line from stdin, calls them all in one batch and
    /// prints one line per input, in order.
    #[arg(default_value = "{}")]
    params: String,
    /// Read the parameters from stdin, one JSON object per line (as `-`).
    #[arg(long, conflicts_with = "key")]
    stdin: bool,
    /// How long to wait for the answer (`30s`, `2m`; a bare number is seconds).
    #[arg(long, default_value = "30s", value_parser = crate::duration_arg::parse)]
    timeout: Duration,
    /// Enqueue and print the call id without waiting (fire and forget).
    #[arg(long)]
    no_wait: bool,
    /// Print the whole response (`data`, `id`, `response_key`), not only
    /// `data`; for an error, `{"error": {"kind", "message", "data"}}`.
    #[arg(long)]
    full: bool,
    /// Run the job this long after sending it (`10s`, `5m`, `1h 30m`).
    #[arg(long, value_parser = crate::duration_arg::parse, conflicts_with = "at")]
    delay: Option<Duration>,
    /// Run the job at this time (RFC 3339, e.g. `2026-12-02T10:00:00Z`).
    #[arg(long, value_parser = parse_time)]
    at: Option<SystemTime>,
    /// An idempotency key: while it is remembered (1 h), the same call
    /// with the same key runs once and every sender gets its answer.
    #[arg(long)]
    key: Option<String>,
    /// A group key (a tenant, a customer): at most the job's per-key limit
    /// of calls with this key run at once, and keys take turns on the
    /// workers (1 to 128 bytes, no control characters or braces).
    #[arg(long)]
    group: Option<String>,
    /// The call's priority: 1 (taken first) to 5 (last); the default is 3.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    priority: Option<u8>,
    /// With `--no-wait`: how long the result is kept for `rpc fetch`.
    #[arg(long, default_value = "5m", value_parser = crate::duration_arg::parse)]
    keep: Duration,
    /// Queue the call even if its service has never existed here (no
    /// queue, schedule or periodic job yet); without it such a call fails
    /// at once, naming the services there are.
    #[arg(long)]
    allow_new_service: bool,
    /// Show the job's progress on stderr while waiting: a bar on a
    /// terminal, else one line per new value (`progress 3/10 30% ...`).
    #[arg(long, conflicts_with_all = ["no_wait", "stdin"])]
    progress: bool,
}

pub async fn run(client: &Client, url: &str, prefix: &str, args: CallArgs) -> Result<(), Failure> {
    if args.stdin || args.params == "-" {
        return stdin::run(client, url, prefix, args).await;
    }
    let params: serde_json::Value = serde_json::from_str(&args.params).map_err(|e| {
        Failure::cannot(
            "read the parameters",
            format!("{e} (give one JSON object, e.g. '{{\"a\": 1}}')"),
        )
    })?;
    if !args.allow_new_service {
        check_service(url, prefix, &args.job).await?;
    }
    let lifecycle = CallOptions {
        delay: args.delay,
        run_at: args.at,
        idempotency_key: args.key,
        group: args.group,
        priority: args.priority,
        ..CallOptions::default()
    };
    if args.no_wait {
        // Fire and forget, but keep the result a while, so that
        // `rpc fetch <id>` can read it (nobody waits on an inbox).
        let options = CallOptions {
            timeout: Some(args.timeout),
            result_ttl: Some(args.keep),
            ..lifecycle
        };
        crate::outln!("{}", client.send(&args.job, params).options(options).await?);
        return Ok(());
    }
    let options = lifecycle.with_timeout(args.timeout);
    let pending = client
        .call(&args.job, params)
        .options(options)
        .send()
        .await?;
    let (id, response_key) = (pending.id().clone(), pending.response_key());
    let answer = if args.progress {
        with_progress(pending).await
    } else {
        pending.await
    };
    let data = match answer {
        Ok(data) => data,
        Err(e) => {
            let e = match e {
                CallError::Rpc(e) => e,
                CallError::App(data) => Error::Remote {
                    job: args.job.clone(),
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
            ) = (args.full, &e)
            {
                // The whole answer on stdout for scripts, the error on
                // stderr and the exit status as usual.
                let whole = serde_json::json!({
                    "error": {"kind": kind, "message": message, "data": data},
                });
                crate::outln!("{whole}");
            }
            return Err(e.into());
        }
    };
    if args.full {
        let whole = serde_json::json!({
            "data": data,
            "id": id.as_str(),
            "response_key": response_key,
        });
        crate::outln!("{whole}");
    } else {
        crate::outln!("{data}");
    }
    Ok(())
}

/// Waits for the answer while drawing the call's progress; the bar is
/// erased before the answer is printed.
async fn with_progress(pending: Pending<Value, Value>) -> Result<Value, CallError<Value>> {
    let mut watch = pending.progress();
    let mut bar = crate::progress_bar::ProgressBar::new();
    let answer = std::future::IntoFuture::into_future(pending);
    tokio::pin!(answer);
    let answer = loop {
        tokio::select! {
            answer = &mut answer => break answer,
            update = watch.next() => match update {
                Some(Ok(update)) => bar.show(&update),
                Some(Err(e)) => bar.warn(&e),
                // The watch ended (answered, or past the deadline).
                None => break answer.await,
            },
        }
    };
    bar.clear();
    answer
}

/// Fails at once when `job`'s service has never existed here. A job name
/// without a service is left to the client, which says what a job name is;
/// a user that may not read the queues is not checked.
async fn check_service(url: &str, prefix: &str, job: &str) -> Result<(), Failure> {
    let Some((service, _)) = job.split_once('.') else {
        return Ok(());
    };
    let inspector = crate::broker::inspector(url, prefix).await?;
    match crate::known_service::check(&inspector, prefix, service).await {
        Err(Failure::Cannot { what, reason }) => Err(Failure::Cannot {
            what,
            reason: format!("{reason}; --allow-new-service queues the call anyway"),
        }),
        Err(e) if e.is_permission_denied() => Ok(()),
        other => other,
    }
}

/// An RFC 3339 time (`2026-12-02T10:00:00Z`, offsets allowed).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(SystemTime::from)
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2026-12-02T10:00:00Z)"))
}
