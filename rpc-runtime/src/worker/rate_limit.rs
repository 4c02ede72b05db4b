//! Rate limits on the worker: the step a limited job takes before its
//! handler runs (which limits each job has is `rate_book.rs`).
//!
//! The step asks the broker (`backend/rate_limits.rs`): a call over its
//! limit goes onto the schedule until its turn, as it is: not answered, not
//! an attempt, holding no slot. A call whose turn would come after its
//! deadline is answered `deadline_exceeded` at once rather than kept
//! waiting for nothing. A job without a limit costs nothing here: no
//! command is sent.

use std::time::Duration;

use rpc_protocol::job::JobMessage;
use rpc_protocol::limits::MAX_DELAY_MS;

use super::shared::Shared;

use crate::backend::{Limit, RateAnswer, RateScope};

/// How long a call waits on the schedule when the broker could not say
/// whether it may start (it failed: the call is not run unlimited).
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// What a limited job's start must wait for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Start it now.
    Start,
    /// Put it on the schedule for this long: its turn.
    Wait(Duration),
    /// Its turn would come after its deadline: answer it so, with this
    /// message.
    TooLate(String),
    /// The broker refuses to say, for good (a permission missing, a
    /// script it cannot run): dead-letter it with this reason, rather than
    /// ask again every second for ever.
    Refuse(String),
}

/// Whether call `msg` of `service.job` may start (`left`: its time to the
/// deadline, if it has one).
pub(super) async fn gate(
    shared: &Shared,
    service: &str,
    job: &str,
    msg: &JobMessage<'_>,
    left: Option<Duration>,
) -> Gate {
    let limits = shared.rates.limits(service, job);
    if limits.is_empty() {
        return Gate::Start;
    }
    let longest = left.unwrap_or(Duration::from_millis(MAX_DELAY_MS));
    match shared
        .backend
        .admit_rate(service, &msg.id, &limits, longest)
        .await
    {
        Ok(RateAnswer::Start) => Gate::Start,
        Ok(RateAnswer::Turn(wait)) => Gate::Wait(wait),
        Ok(RateAnswer::TooLate(wait)) => Gate::TooLate(format!(
            "the rate limit of {service}.{job} ({}) gives this call its turn in {:.1}s, after its deadline; it did not run",
            describe(&limits),
            wait.as_secs_f64()
        )),
        Ok(RateAnswer::Refused(reason)) => Gate::Refuse(format!(
            "the rate limit of {service}.{job} cannot be asked: Redis refused it ({reason}); the call did not run"
        )),
        Err(e) => {
            tracing::warn!(id = %msg.id, error = %e, "could not ask the rate limit; putting the call back on the schedule");
            Gate::Wait(ASK_AGAIN)
        }
    }
}

fn describe(limits: &[Limit<'_>]) -> String {
    limits
        .iter()
        .map(|l| match l.scope {
            RateScope::Job(_) => l.rate.to_string(),
            RateScope::Service => format!("{} for the service", l.rate),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
