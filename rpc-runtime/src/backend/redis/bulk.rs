//! Many jobs onto one queue in one round trip: an `XADD` per job in one
//! pipeline, or, for a client that may not add to streams (the client ACL
//! role), one `RPUSH` of them all onto the service's intake. The first
//! `NOPERM` turns this client to the intake for good, as a single send's
//! does (`intake.rs`), and the refused jobs go again that way.
//!
//! The client keeps each call here to a size Redis reads in one go
//! (`client/bulk_send.rs`); so does a Cluster, where one pipeline goes to
//! one slot: every job of a call is for one queue, under one hash tag. On
//! a Cluster one ring of the queue's doorbell (`doorbell.rs`) follows the
//! pipeline, for all its jobs.

use redis::{RedisError, RedisResult, Value};

use super::commands::Commands;
use super::commands::{is_connection_failure, retry_once};
use super::connect::RedisBackend;
use super::doorbell::RingIfDropped;
use super::intake::{push_cmd_to, push_key};
use crate::error::Error;

impl RedisBackend {
    /// See [`Queue::push_jobs`](crate::backend::Queue::push_jobs).
    pub(super) async fn push_many(
        &self,
        queue: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        if self.enqueue.via_intake() {
            return self.push_to_intake(queue, payloads).await;
        }
        let key = push_key(false, &self.keys, queue);
        let mut pipe = redis::Pipeline::with_capacity(payloads.len());
        for payload in payloads {
            pipe.add_command(push_cmd_to(false, &key, payload));
        }
        pipe.ignore_errors();
        // A caller dropped mid-pipeline (the batch's deadline) may leave
        // jobs queued: they are rung all the same.
        let guard = RingIfDropped::new(&self.doorbell, queue);
        let answers = self.query_pipe(&pipe).await;
        guard.disarm();
        let answers: Vec<RedisResult<Value>> = answers?;
        if answers.iter().any(Result::is_ok) {
            self.doorbell.ring(queue).await;
        }
        if answers.len() != payloads.len() {
            return Err(Error::Broker(format!(
                "{} answers to a pipeline of {} jobs",
                answers.len(),
                payloads.len()
            )));
        }
        let mut fates = Vec::with_capacity(payloads.len());
        let mut refused_to_client = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(_) => fates.push(Ok(())),
                Err(e) if self.enqueue.turn_to_intake_after(&e) => {
                    refused_to_client.push(i);
                    fates.push(Ok(()));
                }
                Err(e) => fates.push(Err(e.into())),
            }
        }
        if !refused_to_client.is_empty() {
            // Not allowed to add to the stream: the same jobs, in order,
            // through the intake.
            let again: Vec<&[u8]> = refused_to_client.iter().map(|&i| payloads[i]).collect();
            let pushed = self.push_to_intake(queue, &again).await?;
            for (i, fate) in refused_to_client.into_iter().zip(pushed) {
                fates[i] = fate;
            }
        }
        Ok(fates)
    }

    /// One `RPUSH` of every payload onto `queue`'s intake: all of them are
    /// queued, or (Redis refused the command) none.
    async fn push_to_intake(
        &self,
        queue: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut push = redis::cmd("RPUSH");
        push.arg(push_key(true, &self.keys, queue));
        for payload in payloads {
            push.arg(*payload);
        }
        match self.doorbell.push_and_ring(queue, push).await {
            Ok(_) => Ok(payloads.iter().map(|_| Ok(())).collect()),
            Err(e) if is_connection_failure(&e) => Err(e.into()),
            Err(e) => Ok(payloads.iter().map(|_| Err(refusal(&e))).collect()),
        }
    }

    /// Runs a pipeline whose answers are read one by one (errors
    /// included), once more if the connection failed: a duplicate is
    /// harmless under at-least-once delivery, as for a single send.
    async fn query_pipe(&self, pipe: &redis::Pipeline) -> Result<Vec<RedisResult<Value>>, Error> {
        let answers = match &self.commands {
            Commands::Single(con) => {
                retry_once(|| async { pipe.query_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        };
        Ok(answers?)
    }
}

/// Redis's refusal of a command, as each job's error.
fn refusal(e: &RedisError) -> Error {
    Error::Broker(e.to_string())
}
