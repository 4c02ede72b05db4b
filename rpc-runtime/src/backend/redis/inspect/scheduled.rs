//! The job lifecycle as an operator sees it: what waits on a service's
//! schedule (delayed calls and retries waiting out their backoff), and
//! whether the service is paused. `rpc scheduled` and the dashboard read it.
//!
//! Keys (see `backend/redis/schedule.rs` and `pause.rs`): `P:{S}:schedule`,
//! a sorted set of entry tokens (a token is the call id) scored by the time
//! they are due (ms, Redis's clock); `P:{S}:scheduled`, a hash of token ->
//! job message; `P:{S}:paused`, a string that exists while the service is
//! paused. Only `ZCARD`, `ZRANGE`, `HMGET` and `EXISTS` are sent, so the
//! read-only operator user of `docs/PROTOCOL.md` needs just those three
//! more commands (`+zcard +zrange +hmget`).
//!
//! The schedule is read in two commands, not one atomic step: a worker may
//! move an entry onto the queue in between. Such an entry is still listed,
//! with an empty message, as is an entry written without one; a message
//! that is no job message is listed with no attempt and no job, for the
//! caller to show as unreadable. Nothing on the schedule can make this fail
//! but Redis itself.

use crate::backend::inspection::scheduled::attempt_and_job;
use redis::Value;

use super::super::read_only::ReadOnlyScript;
use super::excerpts::{array, bytes, excerpt, more_and_items, BYTES_PER_CALL};
use super::view::RedisView;
use crate::backend::inspection::excerpts::{MAX_ENTRIES_PER_READ, MAX_WINDOW_BYTES};
use crate::backend::inspection::scheduled::{ScheduledExcerpt, ScheduledJob};
use crate::error::Error;

/// How much of a scheduled job's token a bounded read takes: a call id is
/// at most `rpc_protocol::limits::MAX_ID_BYTES`, so anything longer is no call id.
const TOKEN_WINDOW_BYTES: usize = 512;

impl RedisView {
    /// Up to `max` jobs on `service`'s schedule, soonest due first, with
    /// their messages (`ZRANGE 0 max-1 WITHSCORES`, then `HMGET`);
    /// `Ok(None)` for an unknown service: one with neither a jobs stream
    /// nor a schedule.
    ///
    /// ```no_run
    /// # async fn f(inspector: rpc_runtime::Inspector) -> Result<(), rpc_runtime::Error> {
    /// for job in inspector.scheduled("Calculator", 20).await?.unwrap_or_default() {
    ///     let what = job.job.as_deref().unwrap_or("(unreadable)");
    ///     let retry = if job.is_retry() { " (retry)" } else { "" };
    ///     println!("{} {what}{retry} due at {} ms", job.id, job.due_ms);
    /// }
    /// # Ok(()) }
    /// ```
    pub(crate) async fn scheduled(
        &self,
        service: &str,
        max: usize,
    ) -> Result<Option<Vec<ScheduledJob>>, Error> {
        let schedule = self.keys.schedule(service);
        if !self.exists(&schedule).await? {
            let known = self.exists(&self.keys.jobs(service)).await?;
            return Ok(known.then(Vec::new));
        }
        if max == 0 {
            return Ok(Some(Vec::new()));
        }
        let last = max.min(1_000_000) - 1;
        let reply: Value = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(&schedule)
                    .arg(0)
                    .arg(last)
                    .arg("WITHSCORES"),
            )
            .await?;
        let entries = scored_members(reply);
        if entries.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(self.keys.scheduled(service));
        for (token, _) in &entries {
            hmget.arg(token.as_slice());
        }
        let messages: Vec<Option<Vec<u8>>> = self.query(&hmget).await?;
        let jobs = entries
            .into_iter()
            .zip(messages.into_iter().chain(std::iter::repeat(None)))
            .map(|((token, due_ms), payload)| {
                let payload = payload.unwrap_or_default();
                let (attempt, job) = attempt_and_job(&payload);
                ScheduledJob {
                    id: String::from_utf8_lossy(&token).into_owned(),
                    due_ms,
                    attempt,
                    job,
                    payload,
                }
            })
            .collect();
        Ok(Some(jobs))
    }

    /// Up to `max` jobs on `service`'s schedule, soonest first, tokens and
    /// messages cut (messages to their first `window` bytes); `Ok(None)`
    /// for a service with neither a schedule nor a jobs stream.
    pub(crate) async fn scheduled_excerpts(
        &self,
        service: &str,
        from: usize,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<ScheduledExcerpt>>, Error> {
        let schedule = self.keys.schedule(service);
        if !self.exists(&schedule).await? {
            let known = self.exists(&self.keys.jobs(service)).await?;
            return Ok(known.then(Vec::new));
        }
        let max = max.min(MAX_ENTRIES_PER_READ);
        let mut jobs = Vec::new();
        let mut read = 0;
        while read < max {
            let first = (from + read).to_string();
            let count = (max - read).to_string();
            let reply = self
                .schedule_script(
                    service,
                    "soonest",
                    0,
                    window,
                    &[first.as_bytes(), count.as_bytes()],
                )
                .await?;
            let (more, items) = more_and_items(reply);
            read += items.len();
            let got = items.len();
            jobs.extend(items.into_iter().filter_map(parse_scheduled));
            if !more || got == 0 {
                break;
            }
        }
        Ok(Some(jobs))
    }

    /// A window of the job `id` on `service`'s schedule: its message's
    /// `len` bytes from `offset` and when it is due; `None` when it is not
    /// on the schedule.
    pub(crate) async fn scheduled_window(
        &self,
        service: &str,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<ScheduledExcerpt>, Error> {
        let reply = self
            .schedule_script(service, "ids", offset, len, &[id.as_bytes()])
            .await?;
        let (_, items) = more_and_items(reply);
        Ok(items.into_iter().next().and_then(parse_scheduled))
    }

    async fn schedule_script(
        &self,
        service: &str,
        mode: &str,
        offset: u64,
        window: usize,
        rest: &[&[u8]],
    ) -> Result<Value, Error> {
        let schedule = self.keys.schedule(service);
        let messages = self.keys.scheduled(service);
        let offset = offset.to_string();
        let window = window.min(MAX_WINDOW_BYTES).to_string();
        let token_window = TOKEN_WINDOW_BYTES.to_string();
        let budget = BYTES_PER_CALL.to_string();
        let mut args: Vec<&[u8]> = vec![
            mode.as_bytes(),
            offset.as_bytes(),
            window.as_bytes(),
            token_window.as_bytes(),
            budget.as_bytes(),
        ];
        args.extend_from_slice(rest);
        self.read_only(
            ReadOnlyScript::ExcerptSchedule,
            &[&schedule, &messages],
            &args,
        )
        .await
    }

    /// How many jobs wait on `service`'s schedule (`ZCARD`; 0 for a service
    /// that has none, or is unknown).
    pub(crate) async fn scheduled_count(&self, service: &str) -> Result<u64, Error> {
        self.query(redis::cmd("ZCARD").arg(self.keys.schedule(service)))
            .await
    }
}

/// `{token_len, token_window, due, message_len, message_window}`.
fn parse_scheduled(job: Value) -> Option<ScheduledExcerpt> {
    let mut parts = array(job).into_iter();
    let token = excerpt(parts.next(), parts.next())?;
    let due_ms = parts.next().and_then(bytes).and_then(|b| {
        let text = String::from_utf8(b).ok()?;
        let score: f64 = match text.as_str() {
            "inf" | "+inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => other.parse().ok()?,
        };
        // `as` saturates: -inf and negatives are 0, +inf is u64::MAX.
        Some(score as u64)
    });
    let message = excerpt(parts.next(), parts.next());
    Some(ScheduledExcerpt {
        token,
        due_ms,
        message,
    })
}

/// The `(member, score)` pairs of a `ZRANGE ... WITHSCORES` reply: a flat
/// array `[member, score, ...]` (RESP2) or an array of pairs (RESP3). A
/// score of `-inf` reads as 0, `+inf` as `u64::MAX`.
fn scored_members(reply: Value) -> Vec<(Vec<u8>, u64)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    let pairs: Vec<(Value, Value)> = if items.iter().all(|i| matches!(i, Value::Array(_))) {
        items
            .into_iter()
            .filter_map(|pair| match pair {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let score = pair.pop()?;
                    Some((pair.pop()?, score))
                }
                _ => None,
            })
            .collect()
    } else {
        let mut items = items.into_iter();
        std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
    };
    pairs
        .into_iter()
        .filter_map(|(member, score)| {
            let member = match member {
                Value::BulkString(bytes) => bytes,
                Value::SimpleString(text) => text.into_bytes(),
                _ => return None,
            };
            let score = match score {
                Value::Double(d) => d,
                Value::Int(n) => n as f64,
                Value::BulkString(bytes) => parse_score(&String::from_utf8_lossy(&bytes))?,
                Value::SimpleString(text) => parse_score(&text)?,
                _ => return None,
            };
            // `as` saturates: -inf and negatives are 0, +inf is u64::MAX.
            Some((member, score as u64))
        })
        .collect()
}

/// A score as Redis writes it (`1700000000000`, `inf`, `-inf`).
fn parse_score(text: &str) -> Option<f64> {
    match text {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn both_protocols_replies_read_alike() {
        // RESP2 answers WITHSCORES flat, RESP3 in pairs with doubles.
        let flat = Value::Array(vec![bulk("a"), bulk("5"), bulk("b"), bulk("inf")]);
        let pairs = Value::Array(vec![
            Value::Array(vec![bulk("a"), Value::Double(5.0)]),
            Value::Array(vec![bulk("b"), Value::Double(f64::INFINITY)]),
        ]);
        let expected = vec![(b"a".to_vec(), 5), (b"b".to_vec(), u64::MAX)];
        assert_eq!(scored_members(flat), expected);
        assert_eq!(scored_members(pairs), expected);
        assert_eq!(
            scored_members(Value::Array(vec![bulk("c"), bulk("-inf")])),
            [(b"c".to_vec(), 0)]
        );
        assert!(scored_members(Value::Nil).is_empty());
    }
}
