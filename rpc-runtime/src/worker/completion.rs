//! Completing a job: getting its reply, kept result, retry or dead letter
//! and then its ack to the broker, through outages, and ending it once when
//! the broker refuses for good.
//!
//! The broker acks a job only after every write before the ack took effect
//! (see `backend::redis::completion`), and says why when it did not:
//! * a transient failure (connection lost, Redis loading, busy, out of
//!   memory) is tried again, with backoff, for [`COMPLETE_PATIENCE`]; then
//!   the job is left leased, to be completed or reclaimed and redone once
//!   the broker recovers. A retry does not hold a concurrency slot, so jobs
//!   whose completions wait cannot starve the worker.
//! * a refusal that can never succeed (a key of the wrong type, no
//!   permission) ends the job once instead: it is dead-lettered with the
//!   reason, its result kept if that still can be, and acked. Nothing is
//!   sent over and over.
//!
//! Readiness (`telemetry/health.rs`) hears of it: a refusal that is the
//! worker's own (no permission, a script it cannot run or load, see
//! `refusal_is_the_workers`) and a `NOSCRIPT` that outlived the reload
//! make `/readyz` fail with the reason, until one of the jobs' own
//! completions goes through again (a dead letter sent in place of a refused
//! completion does not count).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::shared::Shared;

use crate::backend::{CompleteError, Completion, CompletionStep, Delivery};
use crate::telemetry::{JobOutcome, UNKNOWN};

/// How long a finished job keeps trying to complete while the broker is
/// unreachable or refuses for the moment.
const COMPLETE_PATIENCE: Duration = Duration::from_secs(30);

/// How many times a completion refused for good is replaced by a smaller
/// one (reply refused: keep and dead-letter; that refused: dead-letter).
const FALLBACKS: usize = 2;

/// Jobs finished, whose completions go out later.
pub(super) type Finished = Vec<(Delivery, Completion)>;

/// Completes finished jobs through the shared connection, one by one, and
/// returns when they are done (or given up on).
pub(super) async fn complete_now(shared: &Arc<Shared>, finished: Finished) {
    for (delivery, completion) in finished {
        finish_job(shared, &delivery, completion, None).await;
    }
}

/// Deals with completions that did not take effect on the taker's read:
/// refused ones are ended at once (dead letter), transient ones are sent
/// again in the background.
pub(super) fn complete_later(
    shared: &Arc<Shared>,
    failed: Vec<(Delivery, Completion, CompleteError)>,
) {
    if failed.is_empty() {
        return;
    }
    let shared = shared.clone();
    let guard = shared.outstanding.enter();
    tokio::spawn(async move {
        for (delivery, completion, error) in failed {
            match error {
                CompleteError::Transient(e) => {
                    shared.broker_error();
                    tracing::warn!(error = %e, token = %delivery.token, "completing a job failed; retrying");
                    finish_job(&shared, &delivery, completion, None).await;
                }
                CompleteError::Refused { step, reason } => {
                    match fallback(&shared, &delivery, &completion, step, &reason) {
                        Some(instead) => {
                            complete(&shared, &delivery, instead, None, Asked::FellBack).await
                        }
                        None => shared.forget_lease(&delivery),
                    }
                }
            }
        }
        drop(guard);
    });
}

/// Completes a job and forgets its lease. The completion must reach the
/// broker or the job is redone: transient failures are tried again for a
/// bounded time (releasing `slot` first, so waiting holds no concurrency
/// slot), refusals replaced by a dead letter.
pub(super) async fn finish_job(
    shared: &Shared,
    delivery: &Delivery,
    completion: Completion,
    slot: Option<OwnedSemaphorePermit>,
) {
    complete(shared, delivery, completion, slot, Asked::Job).await
}

/// Whose completion is being sent: the job's own, or one that replaces a
/// completion the broker refused (which going through does not make
/// completions work again, for readiness).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Job,
    FellBack,
}

async fn complete(
    shared: &Shared,
    delivery: &Delivery,
    mut completion: Completion,
    mut slot: Option<OwnedSemaphorePermit>,
    mut asked: Asked,
) {
    let _guard = shared.outstanding.enter();
    let mut delay = Duration::from_millis(50);
    let give_up = tokio::time::Instant::now() + COMPLETE_PATIENCE;
    let mut fallbacks = FALLBACKS;
    loop {
        match shared.backend.complete(delivery, &completion).await {
            Ok(()) => {
                if asked == Asked::Job {
                    shared.health.completed();
                }
                break;
            }
            Err(CompleteError::Refused { step, reason }) => {
                if fallbacks == 0 {
                    tracing::error!(token = %delivery.token, "the broker refused every way to end a job ({reason}); it stays leased");
                    break;
                }
                fallbacks -= 1;
                match fallback(shared, delivery, &completion, step, &reason) {
                    Some(instead) => {
                        completion = instead;
                        asked = Asked::FellBack;
                    }
                    None => break,
                }
            }
            Err(e) => {
                if let CompleteError::Transient(text) = &e {
                    if error_code(text) == "NOSCRIPT" {
                        // `Queue::complete` loads a script Redis says it
                        // lacks and runs it again, so this NOSCRIPT outlived
                        // the reload (a proxy that sends the two to
                        // different servers, a failover in between). The
                        // job is tried again as usual; readiness says so now.
                        shared
                            .health
                            .completions_refused(format_args!("{text} (after loading the script)"));
                    }
                }
                if tokio::time::Instant::now() + delay >= give_up {
                    tracing::error!(error = %e, token = %delivery.token, "could not complete a job; it stays leased and will be redelivered");
                    break;
                }
                shared.broker_error();
                drop(slot.take());
                tracing::warn!(error = %e, token = %delivery.token, "completing a job failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
    shared.forget_lease(delivery);
}

/// The completion to send instead of one the broker refused for good at
/// `step` (the steps before it took effect), or `None` when nothing can end
/// the job (the dead letter or the ack itself was refused): it then stays
/// leased, and an error is logged.
fn fallback(
    shared: &Shared,
    delivery: &Delivery,
    refused: &Completion,
    step: Option<CompletionStep>,
    reason: &str,
) -> Option<Completion> {
    let what = step.map_or("the completion".to_owned(), |s| s.to_string());
    if refusal_is_the_workers(step, reason) {
        match step {
            Some(_) => shared
                .health
                .completions_refused(format_args!("{reason} ({what})")),
            None => shared.health.completions_refused(reason),
        }
    }
    let why = match &refused.reply_to {
        Some(to) if matches!(step, Some(CompletionStep::Reply) | None) => {
            format!("{what} to `{to}` was refused: {reason}")
        }
        _ => format!("{what} was refused: {reason}"),
    };
    let dead_letter = Some(match &refused.dead_letter {
        Some(first) => format!("{first}; then {why}"),
        None => why,
    });
    let instead = match step {
        // Nothing was written: keep the result where asked (the caller may
        // fetch it), dead-letter the message.
        Some(CompletionStep::Reply) | None => Completion {
            reply: refused.reply.clone(),
            reply_to: None,
            keep_result: refused.keep_result.clone(),
            requeue: None,
            requeue_after: None,
            requeue_at_ms: None,
            dead_letter,
            dead_letter_by: refused.dead_letter_by.clone(),
            inbox_ttl: None,
        },
        // The reply (if any) went out; the rest cannot: dead-letter.
        Some(CompletionStep::Keep) | Some(CompletionStep::Requeue) => Completion {
            dead_letter,
            dead_letter_by: refused.dead_letter_by.clone(),
            ..Completion::default()
        },
        Some(CompletionStep::DeadLetter) | Some(CompletionStep::Ack) => {
            tracing::error!(token = %delivery.token, queue = %delivery.queue, "{} refused for good: {reason}; the job stays leased", what);
            return None;
        }
    };
    tracing::warn!(token = %delivery.token, queue = %delivery.queue, "{}; dead-lettering the job", instead.dead_letter.as_deref().unwrap_or_default());
    if refused.dead_letter.is_none() {
        shared.count(
            JobOutcome::dead,
            shared.queue_label(&delivery.queue),
            UNKNOWN,
        );
    }
    Some(instead)
}

/// Whether a refusal says something about this worker rather than about one
/// message, so that the next completions will be refused too: Redis refused
/// the whole script call (no permission to run it or to load it, no such
/// command), or a step for lack of permission. A step refused for its key
/// (`WRONGTYPE` on one caller's inbox) is that message's business; it does
/// not make the worker unready.
fn refusal_is_the_workers(step: Option<CompletionStep>, reason: &str) -> bool {
    step.is_none() || error_code(reason) == "NOPERM"
}

/// Redis's error code: the first word of its error text.
fn error_code(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}
