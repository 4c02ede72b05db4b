//! A call in flight ([`Pending`]) and how a reply envelope becomes the
//! caller's result.

use std::future::IntoFuture;
use std::pin::Pin;

use super::*;

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
        let mut body = self.wait_body().await?;
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

/// The error of a call that got no answer by its deadline.
pub(super) fn timed_out(job: JobLabel, id: &JobId, after: Duration) -> Error {
    Error::Timeout {
        job: job.to_string(),
        id: id.to_string(),
        after,
    }
}

pub(super) fn label(job: &JobRef) -> JobLabel {
    JobLabel(Some(JobName {
        service: job.service,
        job: job.job,
    }))
}

/// The job a call is for, for error messages: kept as two static names and
/// formatted only when a message is actually made.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct JobLabel(Option<JobName<'static>>);

impl JobLabel {
    /// The service, when known.
    pub(super) fn service(&self) -> Option<&'static str> {
        self.0.map(|name| name.service)
    }
}

impl std::fmt::Display for JobLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(name) => name.fmt(f),
            None => Ok(()),
        }
    }
}

/// The result of a reply in exactly the shape [`rpc_protocol::reply::encode_ok_reply`]
/// writes, `{"v":1,"id":"<id without escapes>","ok":<result>}`, sliced out
/// without parsing the envelope; `None` for any other shape.
pub(super) fn ok_result(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(b"{\"v\":1,\"id\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    if rest[..end].contains(&b'\\') {
        return None;
    }
    rest[end + 1..]
        .strip_prefix(b",\"ok\":")?
        .strip_suffix(b"}")
}

pub(super) fn decode_reply<T: DeserializeOwned, E: DeserializeOwned>(
    job: JobLabel,
    body: &[u8],
) -> Result<T, CallError<E>> {
    // Fast path for the usual reply. Anything it cannot read (another
    // shape, more fields after `ok`, a result of the wrong type) goes
    // through the full parse below, which also makes the error message.
    if let Some(Ok(value)) = ok_result(body).map(serde_json::from_slice::<T>) {
        return Ok(value);
    }
    let reply =
        ReplyMessage::decode(body).map_err(|e| Error::codec("decode a reply envelope", e))?;
    if let Some(holder) = &reply.holder {
        // Never read as a result (it has none): only `holder_of` and
        // `vouched` may turn one into the holder's answer.
        return Err(Error::codec(
            format!("read the answer of `{job}`"),
            format!(
                "the reply names call {holder} as holding its idempotency key; it is no answer"
            ),
        )
        .into());
    }
    if let Some(ok) = reply.ok {
        return serde_json::from_str(ok.get())
            .map_err(|e| Error::codec(format!("decode the result of `{job}`"), e).into());
    }
    let Some(err) = reply.error else {
        // `"ok": null` is a result (`Some("null")`); no `ok` at all is not.
        return Err(Error::codec(
            format!("read the answer of `{job}`"),
            "the reply has neither `ok` nor `error`",
        )
        .into());
    };
    if err.kind == ErrorKind::App {
        if let Some(data) = err.data {
            return match serde_json::from_str::<E>(data.get()) {
                Ok(app) => Err(CallError::App(app)),
                Err(e) => {
                    Err(Error::codec(format!("decode the application error of `{job}`"), e).into())
                }
            };
        }
    }
    if err.kind == ErrorKind::IdempotencyConflict {
        // `{"key"}`; older workers also named the holder, which is not
        // passed on.
        #[derive(serde::Deserialize)]
        struct Held {
            key: String,
        }
        if let Some(held) = err
            .data
            .and_then(|d| serde_json::from_str::<Held>(d.get()).ok())
        {
            return Err(Error::IdempotencyConflict {
                job: job.to_string(),
                key: held.key,
            }
            .into());
        }
    }
    Err(Error::Remote {
        job: job.to_string(),
        kind: err.kind,
        message: err.message.into_owned(),
        data: err.data.and_then(|d| serde_json::from_str(d.get()).ok()),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn reply_id_fast_path_and_fallback() {
        let ok = rpc_protocol::reply::encode_ok_reply("abc123", "5");
        assert!(matches!(
            reply_id(&ok),
            Some(std::borrow::Cow::Borrowed("abc123"))
        ));
        let escaped = rpc_protocol::reply::encode_ok_reply("a\"b", "5");
        assert_eq!(reply_id(&escaped).as_deref(), Some("a\"b"));
        let err = rpc_protocol::reply::encode_error_reply("e1", ErrorKind::Handler, "m", None);
        assert_eq!(reply_id(&err).as_deref(), Some("e1"));
        let reordered = br#"{"id":"x9","v":1,"ok":1}"#;
        assert_eq!(ok_result(&ok), Some(&b"5"[..]));
        assert_eq!(ok_result(&escaped), None);
        assert_eq!(ok_result(&err), None);
        assert_eq!(ok_result(reordered), None);
        assert_eq!(reply_id(reordered).as_deref(), Some("x9"));
        assert!(reply_id(b"garbage").is_none());
    }

    #[test]
    pub(super) fn replies_decode_by_the_fast_path_or_the_full_parse() {
        let decode = |body: &[u8]| decode_reply::<i64, Never>(JobLabel::default(), body);
        assert_eq!(
            decode(&rpc_protocol::reply::encode_ok_reply("a", "5")).ok(),
            Some(5)
        );
        // More fields after `ok`: not the fast path's shape; still read.
        assert_eq!(decode(br#"{"v":1,"id":"a","ok":5,"x":1}"#).ok(), Some(5));
        assert_eq!(decode(br#"{"ok":7,"id":"a","v":1}"#).ok(), Some(7));
        // A result of the wrong type is a codec error, whichever path.
        let wrong = decode(&rpc_protocol::reply::encode_ok_reply("a", "\"five\""));
        assert!(
            matches!(wrong, Err(CallError::Rpc(Error::Codec { .. }))),
            "{wrong:?}"
        );
    }

    #[test]
    fn a_holder_answer_or_an_envelope_without_an_answer_is_never_a_null_result() {
        let decode =
            |body: &[u8]| decode_reply::<serde_json::Value, Never>(JobLabel::default(), body);
        assert_eq!(
            decode(br#"{"v":1,"id":"a","ok":null}"#).ok(),
            Some(serde_json::Value::Null)
        );
        for nothing in [
            &br#"{"v":1,"id":"a"}"#[..],
            br#"{"v":1,"id":"a","fingerprint":"f"}"#,
            br#"{"v":1,"id":"a","holder":"b"}"#,
            br#"{"v":1,"id":"a","holder":"b","fingerprint":"f"}"#,
        ] {
            let read = decode(nothing);
            assert!(
                matches!(read, Err(CallError::Rpc(Error::Codec { .. }))),
                "{}: {read:?}",
                String::from_utf8_lossy(nothing)
            );
        }
        // A conflict names the key only (older workers also sent the holder,
        // which is not passed on).
        let conflict = br#"{"v":1,"id":"a","error":{"kind":"idempotency_conflict","message":"m","data":{"holder":"h","key":"k"}}}"#;
        let read = decode(conflict);
        assert!(
            matches!(&read, Err(CallError::Rpc(Error::IdempotencyConflict { key, .. })) if key == "k"),
            "{read:?}"
        );
        assert!(!format!("{read:?}").contains("\"h\""), "{read:?}");
    }
}
