//! Sending a job back rather than ending it: as a new entry with its
//! count moved on (a retry, a hand-back: [`requeue`]), or onto the
//! schedule as it is (a delayed call that came early, a claim to try
//! again: [`later`]). Both keep the call's deadline: a new entry is
//! stamped with a new time by the broker, and the time left must not
//! start over from it.

use std::time::Duration;

use rpc_protocol::job::JobMessage;

use crate::backend::{Completion, Delivery};

/// The completion that queues `next` again as a new entry, at once or on
/// the schedule after `delay` (a backoff, or a hand-back's delay). The new
/// entry gets a new broker timestamp (when it is queued, or due), so it
/// carries the time left from then to `due` as its `timeout_ms`: it keeps
/// the call's deadline.
pub(super) fn requeue(
    mut next: JobMessage,
    due: Option<tokio::time::Instant>,
    delay: Duration,
) -> Completion {
    if let (Some(due), Some(_)) = (due, next.timeout_ms) {
        let left = due.saturating_duration_since(tokio::time::Instant::now() + delay);
        next.timeout_ms = Some(left.as_millis() as u64);
    }
    // The new entry's own timestamp is where its time left counts from.
    next.sent_ms = None;
    next.run_at_ms = None;
    let requeue_after = (!delay.is_zero()).then(|| (next.id.to_string(), delay));
    match serde_json::to_vec(&next) {
        Ok(payload) => Completion {
            requeue: Some(payload),
            requeue_after,
            requeue_at_ms: None,
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

/// The completion that puts a delivery back on the schedule after
/// `delay`, or at `at` on the broker's clock (a delayed call that came
/// early: its own `run_at_ms`).
///
/// A delayed call goes as it is, byte for byte: its time counts from
/// `run_at_ms`, and a copy of it sent again finds itself already
/// scheduled and is only acked (complete.lua, step `S`). Anything else
/// (a claim the broker could not answer) gets the entry's timestamp as
/// its `sent_ms` when it has none: the entry a worker adds when the call
/// comes back is stamped later, and the call's time left, counted from
/// there, would start over on every trip and never run out.
pub(super) fn later(
    delivery: &Delivery,
    msg: JobMessage<'_>,
    delay: Duration,
    at: Option<u64>,
) -> Completion {
    let id = msg.id.to_string();
    let payload = match (at, msg.sent_ms, delivery.enqueued_ms) {
        (None, None, Some(entry)) => {
            let pinned = JobMessage {
                sent_ms: Some(entry),
                ..msg
            };
            serde_json::to_vec(&pinned).unwrap_or_else(|e| {
                // Cannot happen (it was decoded from JSON); if it did, the
                // call goes back as it came.
                tracing::error!(error = %e, %id, "could not re-encode a job to keep its start time");
                delivery.payload.clone()
            })
        }
        _ => delivery.payload.clone(),
    };
    Completion {
        requeue: Some(payload),
        requeue_after: Some((id, delay.max(Duration::from_millis(1)))),
        requeue_at_ms: at,
        ..Completion::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &str) -> Delivery {
        Delivery {
            queue: "S".into(),
            token: "1700000000000-0".into(),
            payload: payload.as_bytes().to_vec(),
            deliveries: 1,
            enqueued_ms: Some(1_700_000_000_000),
            cancelled: false,
        }
    }

    fn sent_back(completion: &Completion) -> serde_json::Value {
        serde_json::from_slice(completion.requeue.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn a_call_sent_back_to_claim_its_key_again_keeps_its_start() {
        // Without `sent_ms`, its time left would count from the new
        // entry's stamp on every trip through the schedule, for ever.
        let text =
            r#"{"v":2,"id":"c","job":"S.j","params":{},"timeout_ms":5000,"idempotency_key":"k"}"#;
        let d = delivery(text);
        let msg = JobMessage::decode(text.as_bytes()).unwrap();
        let back = later(&d, msg, Duration::from_secs(1), None);
        assert_eq!(sent_back(&back)["sent_ms"], 1_700_000_000_000u64);
        assert_eq!(
            back.requeue_after,
            Some(("c".to_owned(), Duration::from_secs(1)))
        );
        // One that says when it was sent keeps that, byte for byte.
        let text = r#"{"v":2,"id":"c","job":"S.j","params":{},"sent_ms":1600000000000}"#;
        let d = delivery(text);
        let msg = JobMessage::decode(text.as_bytes()).unwrap();
        let back = later(&d, msg, Duration::from_secs(1), None);
        assert_eq!(back.requeue.as_deref(), Some(text.as_bytes()));
    }

    #[test]
    fn a_delayed_call_goes_on_the_schedule_byte_for_byte() {
        // So that a second copy of it finds itself already scheduled.
        let text = r#"{"v":2,"id":"c","job":"S.j","params":{},"run_at_ms":1800000000000}"#;
        let d = delivery(text);
        let msg = JobMessage::decode(text.as_bytes()).unwrap();
        let back = later(&d, msg, Duration::from_secs(60), Some(1_800_000_000_000));
        assert_eq!(back.requeue.as_deref(), Some(text.as_bytes()));
        assert_eq!(back.requeue_at_ms, Some(1_800_000_000_000));
    }
}
