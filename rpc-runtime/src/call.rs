//! The vocabulary shared by callers, handlers and generated code: call ids,
//! per-call options and the static descriptions of jobs that codegen emits.
//! (The handler's view of a call is [`Context`](crate::Context), in
//! `context.rs`.)

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrayvec::ArrayString;

use rpc_protocol::rate::RateLimit;
use rpc_protocol::Backoff;

/// The id of one call. On the wire it is a string (a UUID when this crate
/// makes it); it doubles as the handle to fetch a kept result.
#[derive(Clone)]
pub struct JobId(Repr);

/// Ids this crate makes (32 hex digits, a shard mark) are kept in place;
/// longer ones (a client's id prefix, ids from elsewhere) are shared. An
/// id is made on every send and read on every job, and its allocation
/// showed on both paths (`rpc-bench --profile typed --bulk`).
#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE_ID_BYTES>),
    Shared(Arc<str>),
}

/// The longest id kept in place.
const INLINE_ID_BYTES: usize = 40;

impl JobId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
        JobId::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut hex))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(s) => s.as_str(),
            Repr::Shared(s) => s,
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobId").field(&self.as_str()).finish()
    }
}

impl PartialEq for JobId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JobId {}

impl std::hash::Hash for JobId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for JobId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JobId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(match ArrayString::from(s) {
            Ok(inline) => Repr::Inline(inline),
            Err(_) => Repr::Shared(s.into()),
        })
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        match ArrayString::from(&s) {
            Ok(inline) => JobId(Repr::Inline(inline)),
            Err(_) => JobId(Repr::Shared(s.into())),
        }
    }
}

/// Options for one call. Unset fields fall back to the job's schema
/// attributes, then to the client's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// How long the caller waits for the reply; also sent as the job's deadline.
    pub timeout: Option<Duration>,
    /// Attempt limit before the job is dead-lettered.
    pub max_attempts: Option<u32>,
    /// How long the worker keeps the result for [`crate::Pending`] handles and
    /// fetch-by-id. `Some(ZERO)` keeps nothing.
    pub result_ttl: Option<Duration>,
    /// Free-form metadata the handler sees in [`Context::metadata`].
    pub metadata: BTreeMap<String, String>,
    /// Run the job no sooner than this long after it is sent (measured on
    /// the broker's clock). The call's timeout counts from when it is due.
    pub delay: Option<Duration>,
    /// Run the job no sooner than this time, read on the broker's clock.
    /// `delay` wins if both are set.
    pub run_at: Option<SystemTime>,
    /// Run the call at most once per key while the key is remembered: a
    /// second send with the same key is queued, does not run, and is
    /// answered with the first call's result; with other parameters it
    /// fails (`idempotency_conflict`).
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is remembered (default
    /// [`CallOptions::DEFAULT_IDEMPOTENCY_TTL`]); the call's result is
    /// kept at least as long, so every duplicate gets it.
    pub idempotency_ttl: Option<Duration>,
    /// The call's group key (a tenant, a customer, a resource): at most the
    /// job's per-key limit of calls with this key run at once across the
    /// fleet, and keys take turns on the workers (docs/PROTOCOL.md,
    /// "Per-key concurrency"). 1 to 128 bytes, no control characters or
    /// braces.
    pub group: Option<String>,
    /// The call's priority, 1 (taken first) to 5 (last); `None`: the job's
    /// `#[priority]`, else 3. Workers share their slots between priorities
    /// by weight, so a less urgent call is delayed, never starved
    /// (docs/PROTOCOL.md, "Priorities"). Out of range is refused when the
    /// call is sent.
    pub priority: Option<u8>,
}

impl CallOptions {
    /// How long an idempotency key is remembered unless the options say.
    pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(60 * 60);

    /// No option set: what a call without options uses, without building
    /// (or carrying) options of its own.
    pub(crate) const NONE: CallOptions = CallOptions {
        timeout: None,
        max_attempts: None,
        result_ttl: None,
        metadata: BTreeMap::new(),
        delay: None,
        run_at: None,
        idempotency_key: None,
        idempotency_ttl: None,
        group: None,
        priority: None,
    };

    /// Options with only a timeout set.
    pub fn timeout(timeout: Duration) -> Self {
        CallOptions::default().with_timeout(timeout)
    }

    /// Options with only a delay set: the job runs `delay` after it is sent.
    pub fn delay(delay: Duration) -> Self {
        CallOptions::default().with_delay(delay)
    }

    /// Options with only a start time set: the job runs at `at` or later.
    pub fn run_at(at: SystemTime) -> Self {
        CallOptions::default().with_run_at(at)
    }

    /// Options with only an idempotency key set.
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        CallOptions::default().with_idempotency_key(key)
    }

    /// These options with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options with a delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// These options with a start time.
    pub fn with_run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// These options with an idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// These options with a group key (see [`CallOptions::group`]).
    pub fn with_group(mut self, key: impl Into<String>) -> Self {
        self.group = Some(key.into());
        self
    }

    /// These options with a priority (see [`CallOptions::priority`]).
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The priority a call of `job` with these options goes at.
    pub fn priority_of(&self, job: &JobRef) -> u8 {
        self.priority
            .or(job.priority)
            .unwrap_or(rpc_protocol::priority::DEFAULT)
    }

    /// These options with an attempt limit.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// How long after sending the job is due (`None`: at once).
    pub fn due_in(&self) -> Option<Duration> {
        self.delay.or_else(|| {
            self.run_at.map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            })
        })
    }
}

/// A job as the generated client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRef {
    /// Wire service name (the queue).
    pub service: &'static str,
    /// Wire job name inside the service.
    pub job: &'static str,
    /// `#[timeout_ms = N]` from the schema.
    pub timeout_ms: Option<u64>,
    /// `#[attempts = N]` from the schema.
    pub max_attempts: Option<u32>,
    /// The service's `#[shards = N]` from the schema (1: unsharded). The
    /// broker's shard count, when an operator set one, wins.
    pub shards: u32,
    /// The job's `#[priority = N]` from the schema (`None`: the default,
    /// 3); a call's own [`CallOptions::priority`] wins.
    pub priority: Option<u8>,
}

/// A job as a mounted service describes it to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobInfo {
    /// Wire job name inside the service.
    pub name: &'static str,
    /// True when nothing comes back.
    pub one_way: bool,
    /// `#[timeout_ms = N]` from the schema.
    pub timeout_ms: Option<u64>,
    /// `#[attempts = N]` from the schema.
    pub max_attempts: Option<u32>,
    /// `#[deprecated]` in the schema.
    pub deprecated: bool,
    /// `#[backoff = "..."]` from the schema: the delay before each retry of
    /// this job (`None`: the worker's default).
    pub backoff: Option<Backoff>,
    /// `#[rate = "..."]` on the job in the schema: at most so many starts
    /// of it across the fleet (`rpc_protocol::rate`; `None`: no limit of
    /// its own). A worker's [`rate_limit`](crate::WorkerBuilder::rate_limit)
    /// overrides it.
    pub rate: Option<RateLimit>,
    /// `#[group_limit = K]` from the schema: calls of one group key that
    /// run at once across the fleet (`None`: 1, unless the worker's
    /// [`group_limit`](crate::WorkerBuilder::group_limit) says).
    pub group_limit: Option<u32>,
    /// `#[priority = N]` from the schema: the priority of the calls the
    /// worker itself sends for the job (its periodic ticks); `None`: 3.
    pub priority: Option<u8>,
}

/// JSON Schemas of one job's request, response and application error.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobSchema {
    pub service: String,
    pub job: String,
    pub request: serde_json::Value,
    pub response: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::JobId;

    #[test]
    fn ids_are_their_text_whether_kept_in_place_or_shared() {
        let in_place = "a".repeat(super::INLINE_ID_BYTES);
        let shared = "a".repeat(super::INLINE_ID_BYTES + 1);
        for text in [&in_place, &shared, &"é~3".to_owned(), &String::new()] {
            let (a, b) = (JobId::from(text.as_str()), JobId::from(text.clone()));
            assert_eq!(a.as_str(), text);
            assert_eq!(a, b);
            assert_eq!(a.to_string(), *text);
            assert_eq!(format!("{a:?}"), format!("JobId({text:?})"));
        }
        let (a, b) = (JobId::from(in_place.as_str()), JobId::from(shared.as_str()));
        assert!(a < b && a != b);
        let set: HashSet<JobId> = [a.clone(), JobId::from(in_place.clone()), b].into();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&a));
        assert_eq!(JobId::new_random().as_str().len(), 32);
    }
}
