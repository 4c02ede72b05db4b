//! Where a call's message goes: onto the queue at once (the plain path),
//! onto the service's schedule (a delayed call), or through an idempotency
//! key (sent only if no call holds the key). All three are bounded by the
//! call's deadline.

use super::*;
use crate::backend::{OnceKey, OnceSent};

/// How a message is put on the broker.
#[derive(Debug, Clone)]
pub(super) enum Placement {
    /// Onto the queue now.
    Now,
    /// Onto the schedule, due after the delay.
    After(Duration),
    /// Under an idempotency key, now or after a delay (boxed: the plain
    /// path carries a placement through every call's future).
    Once(Box<OnceKey>, Option<Duration>),
}

/// What placing a message did.
pub(super) enum Placed {
    /// It was enqueued (or scheduled).
    Sent,
    /// An idempotency key is held by this call, for the same job and
    /// parameters: nothing was sent; attach to it.
    Attached(JobId),
}

/// The longest idempotency key, in bytes.
const MAX_KEY_BYTES: usize = 200;

impl Placement {
    /// The placement `options` ask for; `params` serializes the call's
    /// parameters, for an idempotency key's fingerprint.
    pub(super) fn of<Req: Serialize + ?Sized>(
        job: &JobRef,
        request: &Req,
        options: &CallOptions,
    ) -> Result<Placement, Error> {
        let delay = options.due_in();
        let Some(key) = &options.idempotency_key else {
            return Ok(delay.map_or(Placement::Now, Placement::After));
        };
        if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(Error::Codec {
                what: format!("use idempotency key {key:?}"),
                reason: format!("a key is 1 to {MAX_KEY_BYTES} bytes without control characters"),
            });
        }
        let params = serde_json::to_vec(request)
            .map_err(|e| Error::codec(format!("encode the request for `{}`", label(job)), e))?;
        Ok(Placement::Once(
            Box::new(OnceKey {
                key: key.clone(),
                fingerprint: fingerprint(job, &params),
                ttl: idempotency_ttl(options),
            }),
            delay,
        ))
    }

    /// How long after sending the job is due.
    pub(super) fn delay(&self) -> Duration {
        match self {
            Placement::Now | Placement::Once(_, None) => Duration::ZERO,
            Placement::After(d) | Placement::Once(_, Some(d)) => *d,
        }
    }
}

/// How long `options`' idempotency key is remembered.
pub(super) fn idempotency_ttl(options: &CallOptions) -> Duration {
    options
        .idempotency_ttl
        .unwrap_or(CallOptions::DEFAULT_IDEMPOTENCY_TTL)
}

/// An idempotent call's fingerprint: SHA-1 (hex) of `Service.job`, a
/// newline and the parameters' JSON (docs/PROTOCOL.md, "Idempotency keys").
pub(super) fn fingerprint(job: &JobRef, params: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(job.service.as_bytes());
    sha.update(b".");
    sha.update(job.job.as_bytes());
    sha.update(b"\n");
    sha.update(params);
    sha.digest().to_string()
}

/// Puts a job message where `placement` says, giving up at the call's
/// deadline (a broker that is down may otherwise keep a reconnecting
/// command waiting for seconds). Each backend call is a boxed future, so
/// awaiting it in place keeps every call's future as small as the plain
/// push needs.
pub(super) async fn place_until(
    backend: &dyn Backend,
    job: &JobRef,
    id: &JobId,
    payload: &[u8],
    placement: &Placement,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Placed, Error> {
    let within = |placed: Result<Result<Placed, Error>, _>| match placed {
        Ok(placed) => placed,
        Err(_) => Err(timed_out(label(job), id, timeout)),
    };
    match placement {
        Placement::Now => {
            let push = backend.push_job(job.service, payload);
            within(
                tokio::time::timeout_at(deadline, push)
                    .await
                    .map(|r| r.map(|()| Placed::Sent)),
            )
        }
        Placement::After(delay) => {
            let schedule = backend.schedule_job(job.service, id.as_str(), payload, *delay);
            within(
                tokio::time::timeout_at(deadline, schedule)
                    .await
                    .map(|r| r.map(|_| Placed::Sent)),
            )
        }
        Placement::Once(key, delay) => {
            let send = backend.push_job_once(job.service, key, id.as_str(), payload, *delay);
            let sent = tokio::time::timeout_at(deadline, send).await;
            within(sent.map(|r| r.and_then(|sent| attached(sent, job, key))))
        }
    }
}

/// What an idempotent send's answer means for the call: sent, attached to
/// the call holding the key, or a conflict (the key holds other parameters).
fn attached(sent: OnceSent, job: &JobRef, key: &OnceKey) -> Result<Placed, Error> {
    match sent {
        OnceSent::New => Ok(Placed::Sent),
        OnceSent::Held {
            id: holder,
            same: true,
        } => Ok(Placed::Attached(JobId::from(holder))),
        OnceSent::Held {
            id: holder,
            same: false,
        } => Err(Error::IdempotencyConflict {
            job: label(job).to_string(),
            key: key.key.clone(),
            holder,
        }),
    }
}
