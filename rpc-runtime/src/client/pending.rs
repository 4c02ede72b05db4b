//! A call in flight ([`Pending`]) and how a reply envelope becomes the
//! caller's result.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::follow::{holder_of, vouched};
use super::handle::Client;
use super::reply::{decode_reply, timed_out, JobLabel};

use crate::call::JobId;
use crate::error::{CallError, Error, Never};
use crate::sync::lock;

/// A call in flight: await [`Pending::wait`] for its answer, or keep its
/// [`Pending::id`] and fetch the result later (from any process) while it is kept.
pub struct Pending<T, E = Never> {
    pub(super) client: Client,
    pub(super) id: JobId,
    pub(super) job: JobLabel,
    pub(super) rx: Option<oneshot::Receiver<Vec<u8>>>,
    /// For a call whose result is kept: the inbox's failed reads.
    pub(super) failures: Option<tokio::sync::watch::Receiver<u64>>,
    pub(super) timeout: Duration,
    pub(super) deadline: tokio::time::Instant,
    pub(super) _types: PhantomData<fn() -> (T, E)>,
}

impl<T, E> std::fmt::Debug for Pending<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .field("job", &format_args!("{}", self.job))
            .finish()
    }
}

impl<T, E> Drop for Pending<T, E> {
    fn drop(&mut self) {
        if self.rx.is_some() {
            lock(&self.client.inner.inbox.state)
                .waiters
                .remove(self.id.as_str());
        }
    }
}

impl<T, E> Pending<T, E> {
    /// Waits for the reply envelope routed to this call, until its deadline.
    pub(super) async fn wait_reply(mut self) -> Result<Vec<u8>, Error> {
        let Some(mut rx) = self.rx.take() else {
            return Err(Error::Closed);
        };
        let waited = tokio::time::timeout_at(self.deadline, self.reply_or_kept(&mut rx)).await;
        if !matches!(waited, Ok(Ok(_))) {
            // The reader removes the entry when it delivers a reply, so
            // only a call that got none still has one to remove.
            lock(&self.client.inner.inbox.state)
                .waiters
                .remove(self.id.as_str());
        }
        match waited {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(timed_out(self.job, &self.id, self.timeout)),
        }
    }

    /// Waits for the reply envelope: routed to this call, or for a call
    /// re-attached by id, its kept result, polled until the deadline.
    pub(super) async fn wait_body(self) -> Result<Vec<u8>, Error> {
        if self.rx.is_some() {
            return self.wait_reply().await;
        }
        // Boxed: the plain path's future does not carry this loop's state
        // (every call's future is moved as it starts).
        Box::pin(self.poll_kept()).await
    }

    /// Polls the kept result of a call re-attached by id until the
    /// deadline.
    pub(super) async fn poll_kept(self) -> Result<Vec<u8>, Error> {
        let mut delay = Duration::from_millis(20);
        loop {
            // Bounded by the deadline too: a broker that is down must not
            // hold the caller past it.
            let backend = &self.client.inner.backend;
            let fetched =
                tokio::time::timeout_at(self.deadline, backend.get_result(self.id.as_str())).await;
            match fetched {
                Ok(Ok(Some(body))) => return Ok(body),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) | Err(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= self.deadline {
                return Err(timed_out(self.job, &self.id, self.timeout));
            }
            tokio::time::sleep(delay.min(self.deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// The reply routed to `rx`. For a call whose result is kept, also the
    /// kept result once a read of the inbox has failed: Redis may have
    /// popped the reply just before the connection broke (a restart, say),
    /// and then it never comes.
    pub(super) async fn reply_or_kept(
        &mut self,
        rx: &mut oneshot::Receiver<Vec<u8>>,
    ) -> Result<Vec<u8>, oneshot::error::RecvError> {
        let Some(failures) = self.failures.as_mut() else {
            return rx.await;
        };
        tokio::select! {
            reply = &mut *rx => return reply,
            changed = failures.changed() => {
                if changed.is_err() {
                    return rx.await;
                }
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let backend = &self.client.inner.backend;
            tokio::select! {
                reply = &mut *rx => return reply,
                // A broker still down answers with an error: try again later.
                kept = backend.get_result(self.id.as_str()) => {
                    if let Ok(Some(body)) = kept {
                        lock(&self.client.inner.inbox.state)
                            .waiters
                            .remove(self.id.as_str());
                        return Ok(body);
                    }
                }
            }
            tokio::select! {
                reply = &mut *rx => return reply,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

impl<T, E> IntoFuture for Pending<T, E>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    type Output = Result<T, CallError<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Waits for the answer until the call's deadline ([`Pending::wait`]).
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

impl<T: DeserializeOwned, E: DeserializeOwned> Pending<T, E> {
    /// The call id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The key the result is kept under (the old library's `response_key`).
    pub fn response_key(&self) -> String {
        self.client.inner.backend.result_name(self.id.as_str())
    }

    /// Waits for the answer until the call's deadline. A call whose
    /// idempotency key an earlier call holds is answered with that call's
    /// result.
    pub async fn wait(self) -> Result<T, CallError<E>> {
        let (job, client, deadline, timeout) =
            (self.job, self.client.clone(), self.deadline, self.timeout);
        let mut body = match self.wait_body().await {
            Ok(body) => body,
            // Boxed: only a timeout pays for the diagnosis's state.
            Err(e) => return Err(Box::pin(client.explain(job.service(), e)).await.into()),
        };
        if let Some(holder) = holder_of(&body) {
            let attached: Pending<T, E> = Pending {
                client,
                id: holder.id.clone(),
                job,
                rx: None,
                failures: None,
                timeout,
                deadline,
                _types: PhantomData,
            };
            body = vouched(job, &holder, Box::pin(attached.poll_kept()).await?)?;
        }
        decode_reply(job, &body)
    }

    /// Fetches the kept result now: `None` if it is not there (yet). For a
    /// call answered with the call holding its idempotency key, that
    /// call's kept result.
    pub async fn try_fetch(&self) -> Result<Option<Result<T, CallError<E>>>, Error> {
        let backend = &self.client.inner.backend;
        let body = backend.get_result(self.id.as_str()).await?;
        let Some(holder) = body.as_deref().and_then(holder_of) else {
            return Ok(body.map(|b| decode_reply(self.job, &b)));
        };
        let kept = backend.get_result(holder.id.as_str()).await?;
        Ok(kept.map(|kept| {
            let kept = vouched(self.job, &holder, kept)?;
            decode_reply(self.job, &kept)
        }))
    }
}
