//! A sequential caller's reply, pushed on its own: when a worker's read
//! carries one completion and it is a plain reply, the reply goes first as
//! a bare `RPUSH`, and the inbox's TTL and the job's ack ride on the read
//! that follows, once the push is seen to have succeeded.
//!
//! The caller blocked on its inbox then wakes after one `RPUSH` instead of
//! after `reply_and_ack.lua`, whose script call cost Redis about 8 µs on top
//! of the four commands it runs (rpc-bench `--profile typed`), all of it on
//! the sequential call's path. What a completion promises still holds: the
//! job is acked only after its reply was written, a refused push leaves it
//! leased, and the TTL is set only after a push that succeeded. The price
//! is one more round trip for the worker, made while the caller reads its
//! answer, and a lease held one round trip longer: a worker that dies in
//! between has its job run again, as one dying just before the script would.

use redis::{RedisError, Value};

use super::completion::{inbox_ttl_ms, reply_pushed};
use super::completion_batch::batches;
use crate::backend::{CompleteError, Completion, Delivery};

/// The one reply of a read's completions.
pub(super) struct LoneReply<'a> {
    inbox: &'a str,
    body: &'a [u8],
    ttl_ms: u64,
}

impl<'a> LoneReply<'a> {
    /// The reply, when `done` is one completion that pushes a reply and
    /// acks, and does nothing else (no kept result, retry or dead letter).
    pub(super) fn of(done: &'a [(Delivery, Completion)]) -> Option<LoneReply<'a>> {
        let [(_, completion)] = done else {
            return None;
        };
        if !batches(completion) {
            return None;
        }
        let (Some(body), Some(inbox)) = (&completion.reply, &completion.reply_to) else {
            return None;
        };
        Some(LoneReply {
            inbox,
            body,
            ttl_ms: inbox_ttl_ms(completion),
        })
    }

    /// The push, sent alone.
    pub(super) fn push(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(self.inbox).arg(self.body);
        cmd
    }

    /// What the push's answer means for the job: a refusal is the reply
    /// step's (nothing was written, the job stays leased).
    pub(super) fn pushed(answer: Result<Value, RedisError>) -> Result<(), CompleteError> {
        reply_pushed(answer)
    }

    /// The inbox's TTL, for the read after a push that succeeded.
    pub(super) fn expire(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(self.inbox).arg(self.ttl_ms);
        cmd
    }

    /// `done` once its reply is written: the same job, to be acked alone.
    pub(super) fn acked(done: &[(Delivery, Completion)]) -> Vec<(Delivery, Completion)> {
        done.iter()
            .map(|(delivery, _)| (delivery.clone(), Completion::default()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CompletionStep;
    use std::time::Duration;

    fn delivery() -> Delivery {
        Delivery {
            queue: "Calc".into(),
            token: "1-1".into(),
            payload: Vec::new(),
            deliveries: 1,
            enqueued_ms: None,
            cancelled: false,
        }
    }

    /// A reply to client `to`'s inbox.
    fn reply(to: &str) -> Completion {
        Completion {
            reply: Some(b"r".to_vec()),
            reply_to: Some(rpc_protocol::Keys::new("rpc").inbox(to)),
            inbox_ttl: Some(Duration::from_secs(5)),
            ..Completion::default()
        }
    }

    #[test]
    fn only_a_single_plain_reply_goes_alone() {
        let one = [(delivery(), reply("a"))];
        let lone = LoneReply::of(&one).expect("a lone reply");
        assert_eq!(lone.ttl_ms, 5000);
        assert_eq!(lone.push().args_iter().count(), 3);

        let two = [one[0].clone(), (delivery(), reply("b"))];
        assert!(LoneReply::of(&two).is_none(), "several completions batch");
        let ack_only = [(delivery(), Completion::default())];
        assert!(LoneReply::of(&ack_only).is_none(), "nothing to push");
        let mut kept = reply("a");
        kept.keep_result = Some(("id".into(), Duration::from_secs(60)));
        assert!(
            LoneReply::of(&[(delivery(), kept)]).is_none(),
            "a kept result is a script's"
        );
    }

    #[test]
    fn a_refused_push_is_the_reply_steps() {
        let wrong = redis::parse_redis_value(b"-WRONGTYPE Operation against a key\r\n").unwrap();
        match LoneReply::pushed(Ok(wrong)) {
            Err(CompleteError::Refused { step, reason }) => {
                assert_eq!(step, Some(CompletionStep::Reply));
                assert!(reason.starts_with("WRONGTYPE"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let gone = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            LoneReply::pushed(Err(gone)),
            Err(CompleteError::Transient(_))
        ));
        assert!(LoneReply::pushed(Ok(Value::Int(1))).is_ok());
    }
}
