//! The intake mover's turn on the blocking reader: `BLMOVE` what clients
//! without `XADD` rights pushed, then `intake.lua` moves it onto the
//! stream (docs/PROTOCOL.md, "The intake"). Apart from the reads of jobs
//! and replies, which share the connection but not the concern.

use std::time::Duration;

use redis::{RedisError, Value};

use super::super::connect::ReaderSource;
use super::super::intake::{move_pipeline, parse_moved, report};
use super::{ReadFailure, RedisReader};
use crate::error::Error;

impl RedisReader {
    /// One turn of the mover: see [`Reader::move_intake`](crate::backend::Reader::move_intake).
    pub(super) async fn move_intake_once(
        &mut self,
        queue: &str,
        wait: Duration,
        max_message_bytes: usize,
    ) -> Result<usize, Error> {
        let pipe = move_pipeline(&self.keys, queue, wait, max_message_bytes);
        let cluster = matches!(self.source, ReaderSource::Cluster(..));
        let script = if cluster {
            // A cluster connection may split a pipeline by node; the keys
            // share a slot, but send the two one after the other.
            let mut cmds = pipe.cmd_iter();
            let (Some(blmove), Some(evalsha)) = (cmds.next(), cmds.next()) else {
                return Ok(0);
            };
            self.run(blmove, wait).await?;
            match self.run(evalsha, Duration::ZERO).await {
                Ok(v) => v,
                Err(ReadFailure::Redis(e)) if e.code() == Some("NOSCRIPT") => {
                    self.load_intake_script().await?;
                    return Ok(0);
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let mut replies = self.run_pipeline(&pipe, wait).await?.into_iter();
            if let Some(Value::ServerError(e)) = replies.next() {
                return Err(RedisError::from(e).into());
            }
            match replies.next() {
                Some(Value::ServerError(e)) if e.code() == "NOSCRIPT" => {
                    // Redis lost its scripts (a restart): load it; what
                    // BLMOVE took waits in `moving` for the next turn.
                    self.load_intake_script().await?;
                    return Ok(0);
                }
                Some(Value::ServerError(e)) => return Err(RedisError::from(e).into()),
                Some(v) => v,
                None => return Ok(0),
            }
        };
        let moved = parse_moved(&script).ok_or_else(|| {
            let shown: String = format!("{script:?}").chars().take(200).collect();
            Error::Broker(format!("unexpected answer to intake.lua: {shown}"))
        })?;
        if moved.messages > 0 {
            // Jobs landed on the stream: on a Cluster, wake the workers
            // waiting on this queue's doorbell (a hint).
            self.doorbell.ring(queue).await;
        }
        report(queue, &moved, max_message_bytes)
    }

    /// Loads `intake.lua` after Redis said it lost its scripts.
    async fn load_intake_script(&self) -> Result<(), Error> {
        let load = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(rpc_protocol::scripts::INTAKE.source)
            .to_owned();
        self.commands.query::<Value>(&load).await?;
        Ok(())
    }
}
