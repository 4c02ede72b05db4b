//! The memory broker's blocking reads: a worker's take of jobs and a
//! client's pop of replies, woken by the broker's notifications instead of
//! blocking a connection, with the same pipelined shapes as on Redis
//! (`complete_and_take`, `push_and_pop`).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::registry::MemoryBackend;
use super::state::{token, Lease};
use crate::backend::delivery::{Completion, Delivery};
use crate::backend::queue::Queue;
use crate::backend::reader::{complete_each, CompletedAndTaken, PushedAndPopped, Reader};
use crate::error::Error;

#[async_trait]
impl Reader for MemoryBackend {
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a reply pushed between the
            // look and the wait still wakes us.
            let notified = self.shared.replies_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(ib) = state.inboxes.get_mut(inbox) {
                    if !ib.replies.is_empty() {
                        let n = max.min(ib.replies.len());
                        let out: Vec<_> = ib.replies.drain(..n).collect();
                        if ib.replies.is_empty() {
                            state.inboxes.remove(inbox);
                        }
                        return Ok(out);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.shared.jobs_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let now = Instant::now();
                let mut out = Vec::new();
                for name in queues {
                    state.seen(name, consumer);
                    let Some(q) = state.queues.get_mut(name) else {
                        continue;
                    };
                    while out.len() < max {
                        let Some(ready) = q.ready.pop_front() else {
                            break;
                        };
                        q.leased.insert(
                            ready.token,
                            Lease {
                                payload: ready.payload.clone(),
                                cancelled: ready.cancelled,
                                consumer: consumer.to_owned(),
                                since: now,
                                deliveries: 1,
                                enqueued_ms: ready.enqueued_ms,
                            },
                        );
                        out.push(Delivery {
                            queue: name.clone(),
                            token: token(ready.enqueued_ms, ready.token),
                            payload: ready.payload,
                            deliveries: 1,
                            enqueued_ms: Some(ready.enqueued_ms),
                            cancelled: ready.cancelled,
                        });
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn complete_and_take(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken {
        let not_completed = complete_each(done, |d, c| Queue::complete(&*self, d, c)).await;
        CompletedAndTaken {
            not_completed,
            taken: self.take_jobs(queues, consumer, max, wait).await,
        }
    }

    async fn push_and_pop(
        &mut self,
        queue: &str,
        payload: &[u8],
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> PushedAndPopped {
        let pushed = self.push_job(queue, payload).await;
        PushedAndPopped {
            pushed,
            popped: self.pop_replies(inbox, max, wait).await,
        }
    }
}
