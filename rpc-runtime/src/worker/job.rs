//! Running one delivery: decode and check the message, run the handler
//! under its deadline, and say how to complete the job.
//!
//! Every field of a message is hostile until checked: the message must be
//! the documented JSON object with its numbers in range
//! ([`JobMessage::decode`]), and `reply_to` must name a client inbox under
//! this worker's prefix ([`Backend::is_inbox`]) before the worker writes
//! anything there. A message that fails is dead-lettered once with the
//! reason (and answered `bad_request` when its caller's inbox is known and
//! valid); nothing it names is touched.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use super::clock::time_left;
use super::Shared;
use crate::backend::{Backend, Completion, Delivery};
use crate::call::{Context, JobId, JobInfo};
use crate::error::ErrorKind;
use crate::service::Outcome;
use crate::wire::{self, JobMessage};

/// Runs one delivery and says how to complete it.
pub(super) async fn run_job(shared: &Shared, delivery: &Delivery) -> Completion {
    let inbox_ttl = Some(shared.settings.inbox_ttl);
    if delivery.payload.len() > shared.settings.max_message_bytes {
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "oversized job message: {} bytes, over the worker's limit of {} bytes",
            delivery.payload.len(),
            shared.settings.max_message_bytes
        );
        tracing::warn!(queue = %delivery.queue, token = %delivery.token, "{reason}; dead-lettering");
        // Not parsed at all (that is the point), so the caller is not told;
        // it times out at its deadline.
        return Completion {
            dead_letter: Some(reason),
            ..Completion::default()
        };
    }
    let backend = &*shared.backend;
    let msg = match JobMessage::decode(&delivery.payload) {
        Ok(m) => m,
        Err(e) => {
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = %delivery.queue, token = %delivery.token, error = %e, "dead-lettering an unreadable message");
            let mut c = unreadable(backend, delivery, &e.to_string());
            c.inbox_ttl = inbox_ttl;
            return c;
        }
    };
    if let Some(to) = msg.reply_to.as_deref().filter(|to| !backend.is_inbox(to)) {
        // Anyone who may add a job could otherwise make the worker push to,
        // and expire, any key it can write: the jobs stream, a hash, another
        // application's inbox.
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "`reply_to` {to:?} is not a client inbox of this worker's prefix ({}); nothing was run or written",
            backend.inbox_name("<client id>")
        );
        tracing::warn!(queue = %delivery.queue, token = %delivery.token, id = %msg.id, "{reason}; dead-lettering");
        return Completion {
            dead_letter: Some(reason),
            ..Completion::default()
        };
    }
    if msg.v != wire::PROTOCOL_VERSION {
        // A message of another protocol version is kept (a worker that
        // speaks it can have it replayed), and its caller told why.
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "protocol version {} is not spoken here (this worker speaks {})",
            msg.v,
            wire::PROTOCOL_VERSION
        );
        let reply = msg.reply_to.as_deref().map(|to| {
            (
                to.to_owned(),
                wire::encode_error_reply(&msg.id, ErrorKind::BadRequest, &reason, None),
            )
        });
        return Completion {
            reply_to: reply.as_ref().map(|(to, _)| to.clone()),
            reply: reply.map(|(_, body)| body),
            dead_letter: Some(reason),
            inbox_ttl,
            ..Completion::default()
        };
    }
    let (service_name, job_name) = msg.job.split_once('.').unwrap_or(("", &msg.job));
    let service = shared
        .services
        .get(service_name)
        .filter(|_| service_name == delivery.queue);
    let info: Option<&JobInfo> = service.and_then(|s| s.jobs().iter().find(|j| j.name == job_name));
    let max_attempts = msg
        .max_attempts
        .or(info.and_then(|i| i.max_attempts))
        .unwrap_or(shared.settings.max_attempts)
        .max(1);
    let attempt = msg
        .attempt
        .saturating_add(delivery.deliveries.saturating_sub(1));
    let reply_to = msg.reply_to.as_deref().map(str::to_owned);
    let keep = (msg.result_ttl_ms > 0)
        .then(|| (msg.id.to_string(), Duration::from_millis(msg.result_ttl_ms)));
    let answer = |reply: Vec<u8>| Completion {
        reply: Some(reply),
        reply_to: reply_to.clone(),
        keep_result: keep.clone(),
        inbox_ttl,
        ..Completion::default()
    };
    let fail = |kind: ErrorKind, message: &str| {
        answer(wire::encode_error_reply(&msg.id, kind, message, None))
    };
    // Moves the message to the dead-letter stream and tells the caller why.
    let dead_letter = |reason: String| Completion {
        dead_letter: Some(reason.clone()),
        ..fail(ErrorKind::DeadLettered, &reason)
    };

    if attempt > max_attempts {
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "delivered {attempt} times, over the limit of {max_attempts} (its workers died or stalled past the visibility timeout)"
        );
        tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
        return dead_letter(reason);
    }
    let left = time_left(
        &shared.clock,
        msg.timeout_ms,
        delivery.enqueued_ms,
        msg.deadline_ms,
    );
    if left.is_some_and(|left| left.is_zero()) {
        shared.stats.expired.fetch_add(1, Ordering::Relaxed);
        return fail(
            ErrorKind::DeadlineExceeded,
            "the deadline passed before a worker could start the job",
        );
    }
    let Some(service) = service else {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        return fail(
            ErrorKind::UnknownJob,
            &format!("no service `{service_name}` is mounted on this worker"),
        );
    };
    if info.is_none() {
        // During a rolling deploy, workers of an older schema share the
        // queue with newer ones: a job added in the new schema is handed
        // back for another worker, a bounded number of times, before it is
        // answered `unknown_job`.
        let due = left.map(|left| tokio::time::Instant::now() + left);
        if msg.handoffs < wire::limits::MAX_HANDOFFS {
            tracing::debug!(job = %msg.job, id = %msg.id, handoffs = msg.handoffs, "handing back a job this worker does not know");
            let mut next = msg;
            next.handoffs += 1;
            return requeue(next, due);
        }
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        return fail(
            ErrorKind::UnknownJob,
            &format!(
                "no worker that took it knows job `{job_name}` of service `{service_name}` (handed back {} times)",
                wire::limits::MAX_HANDOFFS
            ),
        );
    }
    let ctx = Context {
        id: JobId::from(msg.id.as_ref()),
        job: msg.job.as_ref().into(),
        attempt,
        max_attempts,
        deadline: left.map(|left| SystemTime::now() + left),
        metadata: Arc::new(
            msg.meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let run =
        std::panic::AssertUnwindSafe(service.dispatch(ctx, job_name, msg.params)).catch_unwind();
    let due = left.map(|left| tokio::time::Instant::now() + left);
    let outcome = match due {
        Some(due) => match tokio::time::timeout_at(due, run).await {
            Ok(r) => r,
            Err(_) => {
                shared.stats.expired.fetch_add(1, Ordering::Relaxed);
                return fail(
                    ErrorKind::DeadlineExceeded,
                    "the deadline passed while the job was running; it was cancelled",
                );
            }
        },
        None => run.await,
    };
    let outcome = outcome.unwrap_or_else(|panic| Outcome::Failed {
        kind: ErrorKind::Handler,
        message: format!("the handler panicked: {}", panic_message(&panic)),
        retry: true,
    });
    match outcome {
        Outcome::Ok(json) => {
            shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            if reply_to.is_none() && keep.is_none() {
                return Completion::default();
            }
            answer(wire::encode_ok_reply(&msg.id, &json))
        }
        Outcome::App(json) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            answer(wire::encode_error_reply(
                &msg.id,
                ErrorKind::App,
                "the job returned its application error",
                Some(&json),
            ))
        }
        Outcome::Failed {
            kind,
            message,
            retry,
        } => {
            if retry && attempt < max_attempts {
                shared.stats.retried.fetch_add(1, Ordering::Relaxed);
                let mut next = msg;
                next.attempt = attempt + 1;
                return requeue(next, due);
            }
            if retry {
                shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                return dead_letter(format!(
                    "failed on attempt {attempt} of {max_attempts}: {message}"
                ));
            }
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            fail(kind, &message)
        }
    }
}

/// The completion that queues `next` again as a new entry. The new entry
/// gets a new broker timestamp, so it carries the time left to `due` as its
/// `timeout_ms`: it keeps the call's deadline.
fn requeue(mut next: JobMessage, due: Option<tokio::time::Instant>) -> Completion {
    if let (Some(due), Some(_)) = (due, next.timeout_ms) {
        let left = due.saturating_duration_since(tokio::time::Instant::now());
        next.timeout_ms = Some(left.as_millis() as u64);
    }
    match serde_json::to_vec(&next) {
        Ok(payload) => Completion {
            requeue: Some(payload),
            ..Completion::default()
        },
        Err(e) => {
            // Cannot happen (it was decoded from JSON); if it did, the job
            // is acked without a trace but this line.
            tracing::error!(error = %e, id = %next.id, "could not re-encode a job to queue it again");
            Completion::default()
        }
    }
}

/// The completion for a message that is not a job message: dead-letter it,
/// and if enough of it parses to know the caller, tell the caller why.
fn unreadable(backend: &dyn Backend, delivery: &Delivery, reason: &str) -> Completion {
    #[derive(serde::Deserialize)]
    struct Header {
        id: String,
        reply_to: Option<String>,
    }
    let reason = format!("unreadable job message: {reason}");
    let reply = Some(&delivery.payload)
        .filter(|p| wire::is_json_object(p))
        .and_then(|p| serde_json::from_slice::<Header>(p).ok())
        .and_then(|h| {
            h.reply_to.filter(|to| backend.is_inbox(to)).map(|to| {
                (
                    to,
                    wire::encode_error_reply(&h.id, ErrorKind::BadRequest, &reason, None),
                )
            })
        });
    Completion {
        reply_to: reply.as_ref().map(|(to, _)| to.clone()),
        reply: reply.map(|(_, body)| body),
        dead_letter: Some(reason),
        ..Completion::default()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
