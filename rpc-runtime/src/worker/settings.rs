//! A worker's tunables and their defaults.

use std::time::Duration;

use rpc_protocol::Backoff;

/// Tunables of a worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once (default 64).
    pub concurrency: usize,
    /// How long a job's lease may go without renewal before another worker
    /// takes the job over (default 30 s).
    pub visibility_timeout: Duration,
    /// Attempt limit for jobs whose message and schema set none (default 3).
    pub max_attempts: u32,
    /// How long shutdown waits for running jobs (default 30 s).
    pub shutdown_grace: Duration,
    /// Consumer name in the group, also the worker's id in its heartbeat
    /// (default: host-pid-random); 1 to 128 of `A-Z a-z 0-9 _ - . :`.
    pub consumer: String,
    /// How long a caller's inbox lives after a reply is pushed to it
    /// (default 60 s): a client that died with calls in flight leaves an
    /// inbox that expires after this.
    pub inbox_ttl: Duration,
    /// Largest job message the worker runs, in bytes (default 16 MiB);
    /// larger ones are dead-lettered unread.
    pub max_message_bytes: usize,
    /// At start, consumers of the worker's groups idle this long with no
    /// leases are removed from the broker (default 24 h): every worker
    /// process joins under a fresh name, so dead ones would otherwise pile
    /// up. While it runs, the janitor also removes consumers idle longer
    /// than [`beat_ttl`](Self::beat_ttl) whose worker has no live beat.
    pub forget_consumers_after: Duration,
    /// How often the worker writes its heartbeat (default 5 s).
    pub beat_every: Duration,
    /// How long a heartbeat lives (default 30 s): a worker that died is
    /// gone from `rpc workers` at most this long after its last beat.
    pub beat_ttl: Duration,
    /// The version the heartbeat tells (default `rpc-runtime <version>`).
    pub version: String,
    /// Whether a worker that cannot reach the broker at start waits for it,
    /// retrying with a message in the log (default), rather than failing.
    pub wait_for_broker: bool,
    /// The retry policy of jobs whose schema sets none (default
    /// [`Backoff::DEFAULT`], exponential from 100 ms to 30 s with jitter).
    pub backoff: Backoff,
    /// How long a cancelled job's handler may run on after the
    /// cancellation before its future is dropped (default 5 s).
    pub cancel_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 64,
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            consumer: default_consumer_name(),
            inbox_ttl: rpc_protocol::limits::DEFAULT_INBOX_TTL,
            max_message_bytes: 16 * 1024 * 1024,
            forget_consumers_after: Duration::from_secs(24 * 60 * 60),
            beat_every: Duration::from_millis(rpc_protocol::worker::DEFAULT_BEAT_EVERY_MS),
            beat_ttl: Duration::from_millis(rpc_protocol::worker::DEFAULT_BEAT_TTL_MS),
            version: concat!("rpc-runtime ", env!("CARGO_PKG_VERSION")).to_owned(),
            wait_for_broker: true,
            backoff: Backoff::DEFAULT,
            cancel_grace: Duration::from_secs(5),
        }
    }
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    // The name is also the heartbeat's worker id, which ends a Redis key:
    // a host name with other characters is made to fit.
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(96)
        .collect();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..8])
}
