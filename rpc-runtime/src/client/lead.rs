//! The leading call: a lone call sends its job and the blocking read of
//! the inbox as one round trip, and reads until its own reply comes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::handle::Client;
use super::routing::{ReaderLease, REPLY_BATCH, REPLY_POLL};

use crate::call::JobId;

/// How long the read sent along with a leading call's job blocks. A job
/// that Redis refused is only reported when that read returns, so it is
/// short; a slower job's leader just reads again.
const LEAD_FIRST_WAIT: Duration = Duration::from_millis(100);

/// How a leading call ended.
pub(super) enum Led {
    /// Its reply.
    Reply(Vec<u8>),
    /// The job went out but the read failed: the reply will be routed here.
    Waiting(oneshot::Receiver<Vec<u8>>),
    /// The job may not be queued (Redis refused it, or the connection
    /// failed first); here is the message to send again.
    NotSent(Vec<u8>),
    /// The deadline passed with no reply.
    TimedOut,
}

/// A leading call: its job and the read of the inbox, run to the end even
/// if the caller goes away. Dropped unfinished (the caller timed out or was
/// cancelled), it finishes in a task of its own, so a blocking read in
/// flight, which may already have popped replies of other calls, is always
/// read to its end and routed.
pub(super) struct Lead {
    pub(super) run: Option<std::pin::Pin<Box<dyn Future<Output = Led> + Send>>>,
}

impl Lead {
    pub(super) fn new(
        client: Client,
        lease: ReaderLease,
        queue: Arc<str>,
        payload: Vec<u8>,
        id: JobId,
        deadline: tokio::time::Instant,
    ) -> Lead {
        Lead {
            run: Some(Box::pin(lead(client, lease, queue, payload, id, deadline))),
        }
    }
}

impl Future for Lead {
    type Output = Led;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Led> {
        let Some(run) = self.run.as_mut() else {
            return std::task::Poll::Pending;
        };
        let led = std::task::ready!(run.as_mut().poll(cx));
        self.run = None;
        std::task::Poll::Ready(led)
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(run);
                }
                // No runtime left to finish it: dropping the lease gives
                // the reader back (its connection goes with it).
                Err(_) => drop(run),
            }
        }
    }
}

pub(super) async fn lead(
    client: Client,
    mut lease: ReaderLease,
    queue: Arc<str>,
    payload: Vec<u8>,
    id: JobId,
    deadline: tokio::time::Instant,
) -> Led {
    let inbox = &client.inner.inbox;
    let backend = &*client.inner.backend;
    let wait = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(LEAD_FIRST_WAIT);
    // One reply is what a lone call waits for, and popping one is cheaper
    // for Redis; later reads, if any, take what has piled up.
    let sent = match lease.push_and_pop(backend, &queue, &payload, 1, wait).await {
        Ok(sent) => sent,
        Err(e) => {
            tracing::debug!(error = %e, "reply reader cannot connect; sending the ordinary way");
            return Led::NotSent(payload);
        }
    };
    if let Err(e) = sent.pushed {
        tracing::debug!(error = %e, "sending along with the read failed; sending the ordinary way");
        if let Ok(replies) = sent.popped {
            inbox.route(replies, None);
        }
        return Led::NotSent(payload);
    }
    let mut popped = sent.popped;
    loop {
        match popped {
            Ok(replies) => {
                if let Some(body) = inbox.route(replies, Some(id.as_str())) {
                    return Led::Reply(body);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reply reader failed; the router reads on");
                client.ensure_router();
                return Led::Waiting(lease.release_waiting(&id));
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left < Duration::from_millis(1) {
            return Led::TimedOut;
        }
        popped = lease.pop(backend, REPLY_BATCH, left.min(REPLY_POLL)).await;
    }
}
