//! Cancellation: a call id added to its service's cancelled set, which
//! workers poll (a queued call is skipped, a running one stopped), and a
//! call waiting on the schedule moved onto the queue flagged cancelled, so
//! that it never runs and its caller is still answered.
//!
//! Key: `P:{Service}:cancelled`, a sorted set of call id -> when it was
//! cancelled (ms, Redis's clock), under the service's hash tag so that
//! `scripts/cancel.lua` touches one slot with the schedule and the stream
//! (Cluster too). Entries are kept for [`CANCEL_MEMORY`], then pruned.
//!
//! A client ACL role may not run scripts or write these keys (it could
//! blind the workers with made-up entries or unschedule others' calls), so
//! a client that Redis refuses (`NOPERM`) asks through the service's intake
//! instead (`cancel <id>`, applied by the worker that moves it: see
//! `intake.rs`).

use redis::{Script, Value};

use super::intake::cancel_request_cmd;
use super::RedisBackend;
use crate::backend::{Cancelled, CANCEL_MEMORY};
use crate::error::Error;

fn cancel_script() -> &'static Script {
    super::scripts::compiled(&rpc_protocol::scripts::CANCEL)
}

impl RedisBackend {
    /// Cancels call `id` of `queue` (see `scripts/cancel.lua`), or asks
    /// the workers to through the intake when this client may not.
    pub(super) async fn cancel(&self, queue: &str, id: &str) -> Result<Cancelled, Error> {
        if !self.enqueue.via_intake() {
            match self.run_cancel(queue, id).await {
                Err(e) if e.code() == Some("NOPERM") => self.enqueue.turn_to_intake(),
                other => return Ok(other?),
            }
        }
        let _: Value = self
            .commands
            .query(&cancel_request_cmd(&self.keys, queue, id))
            .await?;
        Ok(Cancelled::Requested)
    }

    /// When call `id` was cancelled (`ZSCORE`), if the set remembers.
    pub(super) async fn cancelled_score(
        &self,
        queue: &str,
        id: &str,
    ) -> Result<Option<u64>, Error> {
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(self.keys.cancelled(queue)).arg(id);
        let score: Option<f64> = self.commands.query(&cmd).await?;
        Ok(score.filter(|s| s.is_finite()).map(|s| s.max(0.0) as u64))
    }

    async fn run_cancel(&self, queue: &str, id: &str) -> redis::RedisResult<Cancelled> {
        let mut invocation = cancel_script().prepare_invoke();
        invocation
            .key(self.keys.schedule(queue))
            .key(self.keys.scheduled(queue))
            .key(self.keys.jobs(queue))
            .key(self.keys.cancelled(queue))
            .arg(id)
            .arg(CANCEL_MEMORY.as_millis() as u64);
        match self.commands.invoke(&invocation).await? {
            Value::Int(1) => Ok(Cancelled::Unscheduled),
            Value::Int(_) => Ok(Cancelled::Marked),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected answer to cancel.lua",
                format!("{other:?}"),
            ))),
        }
    }
}
