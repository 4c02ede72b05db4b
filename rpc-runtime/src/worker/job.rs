//! Running one delivery: check the message (`check.rs`), run the handler
//! under its deadline, and say how to complete the job.
//!
//! Every field of a message is hostile until checked: the message must be
//! the documented JSON object with its numbers in range
//! ([`JobMessage::decode`](rpc_protocol::job::JobMessage::decode)), and
//! `reply_to` must name a client inbox under this worker's prefix before
//! the worker writes anything there; a message that fails is
//! dead-lettered (see `check.rs`). The handler reports progress through
//! its context onto the worker's board (`progress_writer.rs` writes it).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use rpc_protocol::job::JobMessage;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use super::admit::{self, Admission};
use super::check;
use super::cut_short::{abandoned, expiry, forgot_cancelled, panic_message, Ran};
use super::group_admit::{self, GroupStep};
use super::handoff::{self, HandBack};
use super::rate_limit::{self, Gate};
use super::requeue::{later, requeue};
use super::shared::Shared;

use crate::backend::failures::cut_message;
use crate::backend::{Completion, Delivery, Failure};
use crate::call::{JobId, JobInfo};
use crate::clock::{started_ms, time_left};
use crate::context::progress::ProgressHandle;
use crate::context::Context;
use crate::error::ErrorKind;
use crate::service::{Outcome, Service};
use crate::telemetry::{spans, JobOutcome, TraceContext, TRACEPARENT, UNKNOWN};

/// How long after a retry or hand-back is due this worker looks for it (its
/// completion, which puts it on the schedule, must have reached the broker).
const RETRY_HINT_MARGIN: Duration = Duration::from_millis(2);

/// The metadata of every call that carries none, shared: most calls carry
/// none, and a fresh empty map in its `Arc` was an allocation per job.
static NO_METADATA: LazyLock<Arc<BTreeMap<String, String>>> = LazyLock::new(Arc::default);

/// Runs one delivery, counts how it ended, and says how to complete it,
/// with the failed attempt to record when its handler ran and failed
/// (retried or answered with an error; see `failures.rs`).
pub(super) async fn run_job(
    shared: &Shared,
    delivery: &Delivery,
) -> (Completion, Option<Box<Failure>>) {
    // Looked up once: the label of the counts, and the service a message
    // on this queue may name (`run_message`).
    let mounted = shared.queue_service(&delivery.queue);
    let service = mounted.map_or(UNKNOWN, |(name, _)| name);
    // Boxed, and only when a job failed: the job future (one allocation
    // per job, see `take.rs`) holds a pointer, not the record.
    let mut failure = None;
    // The message is checked and its run built by a plain function: what
    // this future keeps across the await is the run itself, not a second
    // slot for the message or the check's result (the job future is
    // allocated per job, `take.rs`).
    let (span, keyed, running) = match prepare(shared, delivery, mounted, &mut failure) {
        Ok(prepared) => prepared,
        Err(completion) => {
            // Parked ahead unchecked, it may hold a slot the hand-on
            // reserved for it.
            group_admit::release_refused(shared, delivery);
            shared.count(JobOutcome::dead, service, UNKNOWN);
            return (*completion, None);
        }
    };
    let (completion, outcome, job) = running.await;
    if keyed {
        // However the job ended, its slot (if it took one) goes back and
        // the key's waiting calls move on.
        group_admit::release(shared, delivery);
    }
    if let Some(outcome) = outcome {
        spans::record_outcome(&span, outcome, None);
        shared.count(outcome, service, job);
    }
    (completion, failure)
}

/// Checks a delivery's message and builds its run, in its span: the span,
/// whether the call is keyed (holds a group slot), and the run. A message
/// that fails the checks is the completion that dead-letters it.
#[allow(clippy::type_complexity)]
fn prepare<'a>(
    shared: &'a Shared,
    delivery: &'a Delivery,
    mounted: Option<(&'static str, &'a Arc<dyn Service>)>,
    failure: &'a mut Option<Box<Failure>>,
) -> Result<
    (
        tracing::Span,
        bool,
        Instrumented<impl Future<Output = (Completion, Option<JobOutcome>, &'static str)> + 'a>,
    ),
    Box<Completion>,
> {
    let msg = check::check(shared, delivery)?;
    let span = spans::job_span(
        &delivery.queue,
        &msg.job,
        &msg.id,
        attempt_of(&msg, delivery),
    );
    // Placed before the span is first entered: OpenTelemetry fixes a
    // span's parent when it starts.
    let trace = spans::place(&span, parent_of(&msg));
    let keyed = msg.group.is_some();
    let running = run_message(shared, delivery, mounted, msg, span.clone(), trace, failure)
        .instrument(span.clone());
    Ok((span, keyed, running))
}

/// The caller's trace context from the message's `traceparent`; a
/// malformed one is ignored (the job's span starts a new trace).
fn parent_of(msg: &JobMessage<'_>) -> Option<TraceContext> {
    let header = msg.meta.get(TRACEPARENT)?;
    let parent = TraceContext::parse(header);
    if parent.is_none() {
        tracing::debug!(id = %msg.id, "ignoring a malformed traceparent; starting a new trace");
    }
    parent
}

/// Which attempt a delivery of `msg` is: the message's own count plus the
/// broker's redeliveries (its workers died or stalled).
fn attempt_of(msg: &JobMessage<'_>, delivery: &Delivery) -> u32 {
    msg.attempt
        .saturating_add(delivery.deliveries.saturating_sub(1))
}

/// Runs a checked message: its completion, how it ended (`None`: handed
/// back to another worker, not ended) and the job's label. `mounted` is the
/// service of the delivery's queue, if mounted: the only one its messages
/// may name.
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: an `async fn` copies its arguments into locals of its own, and the
/// future kept room for the message (288 bytes) twice.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn run_message<'a>(
    shared: &'a Shared,
    delivery: &'a Delivery,
    mounted: Option<(&'static str, &'a Arc<dyn Service>)>,
    msg: JobMessage<'a>,
    span: tracing::Span,
    trace: Option<TraceContext>,
    failure: &'a mut Option<Box<Failure>>,
) -> impl Future<Output = (Completion, Option<JobOutcome>, &'static str)> + 'a {
    async move {
        let span = &span;
        let inbox_ttl = Some(shared.settings.inbox_ttl);
        let (service_name, job_name) = msg.job.split_once('.').unwrap_or(("", &msg.job));
        let service = mounted
            .filter(|(name, _)| *name == service_name)
            .map(|(_, service)| service);
        let info: Option<&JobInfo> =
            service.and_then(|s| s.jobs().iter().find(|j| j.name == job_name));
        let label = info.map_or(UNKNOWN, |i| i.name);
        let max_attempts = msg
            .max_attempts
            .or(info.and_then(|i| i.max_attempts))
            .unwrap_or(shared.settings.max_attempts)
            .max(1);
        let attempt = attempt_of(&msg, delivery);
        let reply_to = msg.reply_to.as_deref().map(str::to_owned);
        let keep = admit::result_ttl(&msg).map(|ttl| (msg.id.to_string(), ttl));
        // Every reply of a keyed call says which call it answers (the
        // fingerprint of its job and parameters), so a caller pointed here by
        // a holder answer can tell it from the reply of another call sent
        // under the same id. Calls without a key pay nothing for it.
        let fingerprint = admit::fingerprint_of(&msg);
        let answered = |reply: Vec<u8>| Completion {
            reply: Some(reply),
            reply_to: reply_to.clone(),
            keep_result: keep.clone(),
            inbox_ttl,
            ..Completion::default()
        };
        let answer = |reply: Vec<u8>| match &fingerprint {
            Some(fingerprint) => answered(
                rpc_protocol::reply::with_fingerprint(&reply, fingerprint).unwrap_or(reply),
            ),
            None => answered(reply),
        };
        let fail = |kind: ErrorKind, message: &str| {
            spans::record_error_type(span, kind);
            answer(rpc_protocol::reply::encode_error_reply(
                &msg.id, kind, message, None,
            ))
        };
        // Moves the message to the dead-letter stream and tells the caller why.
        let dead_letter = |reason: String| Completion {
            dead_letter: Some(reason.clone()),
            ..fail(ErrorKind::DeadLettered, &reason)
        };
        let ended =
            |completion: Completion, outcome: JobOutcome| (completion, Some(outcome), label);

        if delivery.cancelled
            || shared.cancels.is_cancelled(&msg.id)
            || forgot_cancelled(shared, delivery, &msg.id).await
        {
            tracing::info!(job = %msg.job, id = %msg.id, "skipping a cancelled job");
            group_admit::release_reserved(shared, delivery, &msg);
            return ended(
                fail(ErrorKind::Cancelled, "the call was cancelled before it ran"),
                JobOutcome::cancelled,
            );
        }
        if attempt > max_attempts {
            let reason = format!(
            "delivered {attempt} times, over the limit of {max_attempts} (its workers died or stalled past the visibility timeout)"
        );
            tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
            group_admit::release_reserved(shared, delivery, &msg);
            return ended(dead_letter(reason), JobOutcome::dead);
        }
        match admit::when_due(shared, &msg) {
            Admission::Run => {}
            Admission::Later(delay) => {
                // A delayed call taken before its time: onto the schedule, as
                // it is (not an attempt, not answered).
                let now = tokio::time::Instant::now();
                shared.due_hint.due_at(now + delay + RETRY_HINT_MARGIN);
                let at = msg.run_at_ms;
                return (later(delivery, msg, delay, at), None, label);
            }
            Admission::Refuse(reason) => {
                tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
                return ended(dead_letter(reason), JobOutcome::dead);
            }
            // Only claims answer these.
            Admission::Held(_) | Admission::Copy | Admission::Conflict(_) => {}
        }
        match group_admit::admit(shared, delivery, &msg).await {
            GroupStep::Run => {}
            // Off the stream and on its key's waiting list already: the ack
            // that ends the delivery finds nothing left to ack.
            GroupStep::Parked => return (Completion::default(), None, label),
            GroupStep::Later(delay) => return (later(delivery, msg, delay, None), None, label),
        }
        let started = started_ms(delivery.enqueued_ms, msg.sent_ms, msg.run_at_ms);
        let left = time_left(&shared.clock, msg.timeout_ms, started, msg.deadline_ms);
        if left.is_some_and(|left| left.is_zero()) {
            return ended(
                fail(
                    ErrorKind::DeadlineExceeded,
                    "the deadline passed before a worker could start the job",
                ),
                JobOutcome::timeout,
            );
        }
        let Some(service) = service else {
            return ended(
                fail(
                    ErrorKind::UnknownJob,
                    &format!("no service `{service_name}` is mounted on this worker"),
                ),
                JobOutcome::unknown_job,
            );
        };
        if info.is_none() {
            // During a rolling deploy, workers of an older schema share the
            // queue with newer ones: a job added in the new schema is handed
            // back for another worker, through the schedule, before it is
            // answered `unknown_job` (see `handoff.rs`).
            return match handoff::hand_back(msg.handoffs, left, service_name, job_name) {
                HandBack::After(delay) => {
                    tracing::debug!(job = %msg.job, id = %msg.id, handoffs = msg.handoffs, ?delay, "handing back a job this worker does not know");
                    let now = tokio::time::Instant::now();
                    let due = left.map(|left| now + left.saturating_sub(handoff::TRIP_ALLOWANCE));
                    shared.due_hint.due_at(now + delay + RETRY_HINT_MARGIN);
                    let mut next = msg;
                    next.handoffs += 1;
                    (requeue(next, due, delay), None, label)
                }
                HandBack::Answer(reason) => ended(
                    fail(ErrorKind::UnknownJob, &reason),
                    JobOutcome::unknown_job,
                ),
            };
        }
        // Before the key is claimed, as a delayed call is put on the schedule
        // (see `admit.rs`): a call that waits for its turn comes back as it went.
        match rate_limit::gate(shared, service_name, job_name, &msg, left).await {
            Gate::Start => {}
            Gate::Wait(turn) => {
                shared
                    .due_hint
                    .due_at(tokio::time::Instant::now() + turn + RETRY_HINT_MARGIN);
                return (later(delivery, msg, turn, None), None, label);
            }
            Gate::TooLate(reason) => {
                return ended(
                    fail(ErrorKind::DeadlineExceeded, &reason),
                    JobOutcome::timeout,
                )
            }
            Gate::Refuse(reason) => {
                tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
                return ended(dead_letter(reason), JobOutcome::dead);
            }
        }
        // Only a keyed call claims its key (a round trip, maybe pauses): its
        // future is boxed so that every other job's future (allocated per
        // job, `take.rs`) does not carry room for it.
        let claimed = match msg.idempotency_key {
            None => Admission::Run,
            Some(_) => {
                Box::pin(admit::claim(
                    shared,
                    delivery,
                    &msg,
                    fingerprint.as_deref(),
                    left,
                ))
                .await
            }
        };
        match claimed {
            Admission::Run => {}
            Admission::Later(delay) => return (later(delivery, msg, delay, None), None, label),
            Admission::Refuse(reason) => {
                tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
                return ended(dead_letter(reason), JobOutcome::dead);
            }
            Admission::Held(holder) => {
                // The same call again: its caller waits for the holder's result.
                tracing::debug!(job = %msg.job, id = %msg.id, %holder, "a duplicate of an idempotent call; answering with the call that holds its key");
                let body = rpc_protocol::reply::encode_holder_reply(
                    &msg.id,
                    &holder,
                    fingerprint.as_deref().unwrap_or_default(),
                );
                return (answered(body), None, label);
            }
            Admission::Copy => {
                // A second copy of the holder's own message: it does not run.
                // Its caller (the holder's) is pointed at the kept result the
                // first copy writes, in case this answer comes first; nothing
                // is kept, which would overwrite that result.
                tracing::debug!(job = %msg.job, id = %msg.id, "a second copy of a keyed call's message; not running it");
                let body = rpc_protocol::reply::encode_holder_reply(
                    &msg.id,
                    &msg.id,
                    fingerprint.as_deref().unwrap_or_default(),
                );
                let completion = match reply_to.clone() {
                    Some(to) => Completion {
                        reply: Some(body),
                        reply_to: Some(to),
                        inbox_ttl,
                        ..Completion::default()
                    },
                    None => Completion::default(),
                };
                return (completion, None, label);
            }
            Admission::Conflict(holder) => {
                let key = msg.idempotency_key.as_deref().unwrap_or_default();
                // Not the holder's id: it is another caller's (another
                // tenant's, maybe), and knowing it is enough to cancel it.
                tracing::debug!(job = %msg.job, id = %msg.id, %holder, "an idempotency key held for other parameters");
                let data = serde_json::json!({ "key": key }).to_string();
                let message = format!(
                "idempotency key {key:?} is held by another call with other parameters (or another job); this call did not run"
            );
                spans::record_error_type(span, ErrorKind::IdempotencyConflict);
                return ended(
                    answer(rpc_protocol::reply::encode_error_reply(
                        &msg.id,
                        ErrorKind::IdempotencyConflict,
                        &message,
                        Some(&data),
                    )),
                    JobOutcome::failed,
                );
            }
        }
        let service_label = service.name();
        if let Some(enqueued) = delivery.enqueued_ms {
            let waited = Duration::from_millis(shared.clock.now_ms().saturating_sub(enqueued));
            spans::record_queue_wait(span, waited);
            if let Some(metrics) = &shared.metrics {
                metrics.waited(service_label, label, waited);
            }
        }
        let ctx = Context {
            id: JobId::from(msg.id.as_ref()),
            job: msg.job.as_ref().into(),
            attempt,
            max_attempts,
            deadline: left.map(|left| SystemTime::now() + left),
            metadata: if msg.meta.is_empty() {
                NO_METADATA.clone()
            } else {
                Arc::new(
                    msg.meta
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            },
            trace,
            cancel: Some(shared.cancels.clone()),
            progress: Some(ProgressHandle {
                board: shared.progress.clone(),
                kept: keep.as_ref().map(|(_, ttl)| *ttl),
            }),
        };
        let running = shared
            .metrics
            .as_ref()
            .map(|m| (m.running(), Instant::now()));
        let ran_since = Instant::now();
        let handled =
            crate::middleware::dispatch(&shared.middleware, &**service, ctx, job_name, msg.params);
        let run = std::panic::AssertUnwindSafe(handled).catch_unwind();
        let due = left.map(|left| tokio::time::Instant::now() + left);
        // One select over the handler, its deadline and its cancellation, not
        // futures nested in one another: every wrapper would move the whole
        // job future again, on the path every call takes.
        let ran = tokio::select! {
            biased;
            out = run => Ran::Done(out),
            () = expiry(due) => Ran::Expired,
            () = abandoned(&shared.cancels, &msg.id, shared.settings.cancel_grace) => Ran::Abandoned,
        };
        shared.progress.finish(&msg.id);
        let cancelled = shared.cancels.is_cancelled(&msg.id);
        if let (Some(metrics), Some((_, started))) = (&shared.metrics, &running) {
            metrics.handler_ran(service_label, label, started.elapsed());
        }
        drop(running);
        let ran_for = ran_since.elapsed();
        // The failure record copies the id and job name only when a job did
        // fail: a success pays for no strings here.
        let (job_id, job_named) = (&*msg.id, &*msg.job);
        let mut failed = |kind: ErrorKind, message: &str, retried: bool| {
            *failure = Some(Box::new(Failure {
                id: job_id.to_owned(),
                job: job_named.to_owned(),
                attempt,
                kind: kind.to_string(),
                message: cut_message(message),
                worker: shared.settings.consumer.clone(),
                duration_ms: u64::try_from(ran_for.as_millis()).unwrap_or(u64::MAX),
                retried,
            }));
        };
        let outcome = match ran {
        Ran::Done(outcome) => outcome,
        Ran::Expired => {
            failed(
                ErrorKind::DeadlineExceeded,
                "the deadline passed while the job was running",
                false,
            );
            return ended(
                fail(
                    ErrorKind::DeadlineExceeded,
                    "the deadline passed while the job was running; it was cancelled",
                ),
                JobOutcome::timeout,
            )
        }
        Ran::Abandoned => {
            return ended(
                fail(
                    ErrorKind::Cancelled,
                    &format!(
                        "the call was cancelled while running; the handler did not stop within the grace period of {:?} and was dropped",
                        shared.settings.cancel_grace
                    ),
                ),
                JobOutcome::cancelled,
            )
        }
    };
        let outcome = outcome.unwrap_or_else(|panic| Outcome::Failed {
            kind: ErrorKind::Handler,
            message: format!("the handler panicked: {}", panic_message(&panic)),
            retry: true,
            retry_after: None,
        });
        if cancelled && !matches!(outcome, Outcome::Ok(_)) {
            // The handler stopped for the cancellation (or failed after it):
            // the caller learns why, and nothing is retried.
            return ended(
                fail(ErrorKind::Cancelled, "the call was cancelled while running"),
                JobOutcome::cancelled,
            );
        }
        match outcome {
            Outcome::Ok(json) => {
                if reply_to.is_none() && keep.is_none() {
                    return ended(Completion::default(), JobOutcome::succeeded);
                }
                ended(
                    answer(rpc_protocol::reply::encode_ok_reply(&msg.id, &json)),
                    JobOutcome::succeeded,
                )
            }
            Outcome::App(json) => {
                failed(ErrorKind::App, &json, false);
                spans::record_error_type(span, ErrorKind::App);
                ended(
                    answer(rpc_protocol::reply::encode_error_reply(
                        &msg.id,
                        ErrorKind::App,
                        "the job returned its application error",
                        Some(&json),
                    )),
                    JobOutcome::failed,
                )
            }
            Outcome::Failed {
                kind,
                message,
                retry,
                retry_after,
            } => {
                if retry && attempt < max_attempts {
                    let backoff = info
                        .and_then(|i| i.backoff)
                        .unwrap_or(shared.settings.backoff);
                    let delay = retry_after
                        .unwrap_or_else(|| backoff.delay(attempt, super::jitter::random()));
                    let left =
                        due.map(|due| due.saturating_duration_since(tokio::time::Instant::now()));
                    if left.is_some_and(|left| left <= delay) {
                        failed(kind, &message, false);
                        return ended(
                        fail(
                            kind,
                            &format!("{message} (attempt {attempt} of {max_attempts}; the next would start after the call's deadline)"),
                        ),
                        JobOutcome::failed,
                    );
                    }
                    failed(kind, &message, true);
                    spans::record_error_type(span, kind);
                    let mut next = msg;
                    next.attempt = attempt + 1;
                    if !delay.is_zero() {
                        let now = tokio::time::Instant::now();
                        shared.due_hint.due_at(now + delay + RETRY_HINT_MARGIN);
                    }
                    return ended(requeue(next, due, delay), JobOutcome::retried);
                }
                if retry {
                    // Recorded as a dead letter, with its worker and duration.
                    let by = (shared.settings.consumer.clone(), Some(ran_for));
                    return ended(
                        Completion {
                            dead_letter_by: Some(by),
                            ..dead_letter(format!(
                                "failed on attempt {attempt} of {max_attempts}: {message}"
                            ))
                        },
                        JobOutcome::dead,
                    );
                }
                failed(kind, &message, false);
                ended(fail(kind, &message), JobOutcome::failed)
            }
        }
    }
}
