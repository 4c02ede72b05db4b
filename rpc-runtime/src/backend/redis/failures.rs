//! Recent failures on Redis: one stream per service (`P:{S}:failures`),
//! added with `XADD ... MAXLEN ~` and kept with `PEXPIRE`, read newest
//! first with `XREVRANGE` (the operator's role reads every key).
//!
//! An `XADD` retried after a dropped connection may record an attempt
//! twice: it is a record for people, not accounting.

use async_trait::async_trait;
use redis::Value;
use rpc_protocol::limits::{FAILURES_CAP, FAILURES_KEPT};
use rpc_protocol::stream as field;

use super::connect::RedisBackend;
use super::values::as_string;
use crate::backend::failures::{Failure, Failures, RecordedFailure};
use crate::error::Error;

#[async_trait]
impl Failures for RedisBackend {
    async fn record_failure(&self, queue: &str, failure: &Failure) -> Result<(), Error> {
        let key = self.keys.failures(queue);
        let _: Value = self
            .commands
            .query(
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(FAILURES_CAP)
                    .arg("*")
                    .arg(field::FAILURE_ID)
                    .arg(&failure.id)
                    .arg(field::FAILURE_JOB)
                    .arg(&failure.job)
                    .arg(field::FAILURE_ATTEMPT)
                    .arg(failure.attempt)
                    .arg(field::FAILURE_KIND)
                    .arg(&failure.kind)
                    .arg(field::FAILURE_MESSAGE)
                    .arg(&failure.message)
                    .arg(field::FAILURE_WORKER)
                    .arg(&failure.worker)
                    .arg(field::FAILURE_DURATION_MS)
                    .arg(failure.duration_ms)
                    .arg(field::FAILURE_RETRIED)
                    .arg(u8::from(failure.retried)),
            )
            .await?;
        let kept = u64::try_from(FAILURES_KEPT.as_millis()).unwrap_or(u64::MAX);
        let _: i64 = self
            .commands
            .query(redis::cmd("PEXPIRE").arg(&key).arg(kept))
            .await?;
        Ok(())
    }

    async fn recent_failures(
        &self,
        queue: &str,
        before: Option<&str>,
        max: usize,
    ) -> Result<Vec<RecordedFailure>, Error> {
        // A cursor is echoed from a page: anything but a stream id is
        // refused rather than sent to Redis.
        let end = match before {
            None => "+".to_owned(),
            Some(id) if is_stream_id(id) => format!("({id}"),
            Some(id) => {
                return Err(Error::Codec {
                    what: "read recent failures".to_owned(),
                    reason: format!("{id:?} is not a failure entry id (`<ms>-<seq>`)"),
                })
            }
        };
        let v: Value = match self
            .commands
            .query(
                redis::cmd("XREVRANGE")
                    .arg(self.keys.failures(queue))
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(max.clamp(1, FAILURES_CAP)),
            )
            .await
        {
            Ok(v) => v,
            Err(e) if e.code() == Some("WRONGTYPE") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let Value::Array(entries) = v else {
            return Ok(Vec::new());
        };
        Ok(entries.iter().filter_map(parse_entry).collect())
    }
}

/// Whether `id` is a stream entry id, `<ms>-<seq>`.
fn is_stream_id(id: &str) -> bool {
    id.split_once('-')
        .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

/// One `XREVRANGE` entry; `None` for one that is not an entry at all.
fn parse_entry(entry: &Value) -> Option<RecordedFailure> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let entry = parts.first().and_then(as_string)?;
    let Some(Value::Array(fields)) = parts.get(1) else {
        return None;
    };
    let mut failure = Failure {
        id: String::new(),
        job: String::new(),
        attempt: 0,
        kind: String::new(),
        message: String::new(),
        worker: String::new(),
        duration_ms: 0,
        retried: false,
    };
    for pair in fields.chunks(2) {
        let (Some(name), Some(value)) = (pair.first().and_then(as_string), pair.get(1)) else {
            continue;
        };
        let value = as_string(value).unwrap_or_default();
        match name.as_str() {
            field::FAILURE_ID => failure.id = value,
            field::FAILURE_JOB => failure.job = value,
            field::FAILURE_ATTEMPT => failure.attempt = value.parse().unwrap_or(0),
            field::FAILURE_KIND => failure.kind = value,
            field::FAILURE_MESSAGE => {
                failure.message = crate::backend::failures::cut_message(&value)
            }
            field::FAILURE_WORKER => failure.worker = value,
            field::FAILURE_DURATION_MS => failure.duration_ms = value.parse().unwrap_or(0),
            field::FAILURE_RETRIED => failure.retried = value == "1",
            _ => {}
        }
    }
    let at_ms = entry
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or(0);
    Some(RecordedFailure {
        entry,
        at_ms,
        failure,
    })
}
