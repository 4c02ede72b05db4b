//! `rpc call Service.job -` (or `--stdin`): one call per JSON line of
//! stdin, all sent as one batch (one round trip per thousand calls), one
//! line printed per input in order: the answer (`--full`: the whole
//! response), or `{"error": {...}}` for a call that failed; with
//! `--no-wait`, each call's id.
//!
//! Every line is read and checked first: a line that is not a JSON object
//! sends nothing (exit 2, naming the line). Then the exit status follows
//! the workspace rule: 0 when every call succeeded, 1 when one failed or
//! timed out (its line says why), 2 when the batch could not be sent
//! (each line says what became of its call).

use std::io::BufRead;

use rpc_runtime::{BatchError, CallError, CallOptions, Client, Error, Sent};
use serde_json::{json, Value};

use super::CallArgs;
use crate::failure::Failure;

/// Reads the parameters, one JSON object per non-blank line; the line
/// number of each.
fn read_lines(input: impl BufRead) -> Result<Vec<(usize, Value)>, Failure> {
    let mut calls = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let number = i + 1;
        let line = line.map_err(|e| Failure::cannot("read stdin", e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(params @ Value::Object(_)) => calls.push((number, params)),
            Ok(_) => {
                return Err(Failure::cannot(
                    format!("read the parameters on line {number} of stdin"),
                    "not a JSON object (one object per line, e.g. {\"a\": 1}); nothing was sent",
                ))
            }
            Err(e) => {
                return Err(Failure::cannot(
                    format!("read the parameters on line {number} of stdin"),
                    format!("{e}; nothing was sent"),
                ))
            }
        }
    }
    Ok(calls)
}

pub(super) async fn run(
    client: &Client,
    url: &str,
    prefix: &str,
    args: CallArgs,
) -> Result<(), Failure> {
    if args.key.is_some() {
        return Err(Failure::cannot(
            "use --key with calls from stdin",
            "one idempotency key for every call would run only the first",
        ));
    }
    let calls = read_lines(std::io::stdin().lock())?;
    if !args.allow_new_service {
        super::check_service(url, prefix, &args.job).await?;
    }
    let lines: Vec<usize> = calls.iter().map(|(line, _)| *line).collect();
    let params = calls.into_iter().map(|(_, params)| params);
    let lifecycle = CallOptions {
        delay: args.delay,
        run_at: args.at,
        group: args.group,
        priority: args.priority,
        ..CallOptions::default()
    };
    let refused = |e: BatchError| -> Failure {
        match e.refused {
            Some(i) => Failure::cannot(
                format!("send the call on line {} of stdin", lines[i]),
                format!("{}; nothing was sent", e.error),
            ),
            None => {
                print_fates(&e);
                Failure::cannot("send every call", e)
            }
        }
    };
    if args.no_wait {
        let ids = with_options(client.send_many(&args.job, params), &lifecycle)
            .timeout(args.timeout)
            .keep_result(args.keep)
            .await
            .map_err(refused)?;
        for id in ids {
            crate::outln!("{id}");
        }
        return Ok(());
    }
    let pending = with_options(client.call_many(&args.job, params), &lifecycle)
        .timeout(args.timeout)
        .send()
        .await
        .map_err(refused)?;
    let mut failed = 0;
    let total = pending.len();
    for pending in pending {
        let (id, response_key) = (pending.id().clone(), pending.response_key());
        match pending.await {
            Ok(data) if args.full => crate::outln!(
                "{}",
                json!({"data": data, "id": id.as_str(), "response_key": response_key})
            ),
            Ok(data) => crate::outln!("{data}"),
            Err(e) => {
                failed += 1;
                crate::outln!("{}", error_line(&args.job, e));
            }
        }
    }
    if failed > 0 {
        return Err(Failure::no(
            format!("call `{}`", args.job),
            format!("{failed} of {total} calls failed (their lines say why)"),
        ));
    }
    Ok(())
}

/// The batch with the options every call takes: the delay or start time,
/// the group key and the priority. (The group key and the priority were
/// once left out here: a review's bulk import went to the default lane,
/// past every per-key limit, and exited 0.)
fn with_options<T, E, M>(
    batch: rpc_runtime::Batch<T, E, M>,
    lifecycle: &CallOptions,
) -> rpc_runtime::Batch<T, E, M> {
    let mut batch = match (lifecycle.delay, lifecycle.run_at) {
        (Some(delay), _) => batch.delay(delay),
        (None, Some(at)) => batch.at(at),
        (None, None) => batch,
    };
    if let Some(group) = &lifecycle.group {
        batch = batch.group(group.clone());
    }
    if let Some(priority) = lifecycle.priority {
        batch = batch.priority(priority);
    }
    batch
}

/// A failed call's line: `{"error": {"kind", "message", "data"}}`, the
/// worker's kind, or `timeout` / `error` for what happened on this side.
fn error_line(job: &str, e: CallError<Value>) -> Value {
    let e = match e {
        CallError::Rpc(e) => e,
        CallError::App(data) => Error::Remote {
            job: job.to_owned(),
            kind: rpc_runtime::ErrorKind::App,
            message: "the job returned its application error".to_owned(),
            data: Some(data),
        },
    };
    let (kind, data) = match &e {
        Error::Remote { kind, data, .. } => (json!(kind), data.clone()),
        Error::Timeout { .. } => (json!("timeout"), None),
        _ => (json!("error"), None),
    };
    let message = match &e {
        Error::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    };
    json!({"error": {"kind": kind, "message": message, "data": data}})
}

/// One line per call of a batch that went out in part: its id when it is
/// queued, else what became of it.
fn print_fates(e: &BatchError) {
    for sent in &e.calls {
        let line = match sent {
            Sent::Queued(id) => json!({"queued": id.as_str()}),
            Sent::Refused(id, error) => {
                json!({"error": {"kind": "refused", "id": id.as_str(), "message": error.to_string()}})
            }
            Sent::Unknown(id) => {
                json!({"error": {"kind": "unknown", "id": id.as_str(), "message": "may have been queued"}})
            }
            other => {
                json!({"error": {"kind": "not_sent", "id": other.id().as_str(), "message": "not sent"}})
            }
        };
        crate::outln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_read_first_and_a_bad_one_names_its_line() {
        let read = read_lines(&b"{\"a\": 1}\n\n{\"a\": 2}\n"[..]).unwrap();
        assert_eq!(read, vec![(1, json!({"a": 1})), (3, json!({"a": 2}))]);
        let bad = read_lines(&b"{\"a\": 1}\n[1]\n"[..]).unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
        assert_eq!(bad.exit_status(), 2);
        let bad = read_lines(&b"{\"a\": 1}\n{oops\n"[..]).unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
    }
}
