//! What a worker asks of the broker for a periodic job's tick, and what it
//! hears back ([`Backend::enqueue_tick`](super::Backend::enqueue_tick)).
//!
//! The broker, not the worker, decides whether a tick is enqueued: it
//! keeps the last tick enqueued per periodic job and enqueues a tick only if
//! it is newer, in one atomic step, so N workers offering the same tick
//! enqueue it once. It also refuses a tick that lies in its own future, so
//! a worker whose clock runs ahead cannot enqueue ticks early (and so make
//! the on-time ticks look done).

pub use rpc_protocol::periodic::{TickMode, TickOutcome};

/// One tick of a periodic job, offered to the broker.
#[derive(Debug, Clone, Copy)]
pub struct TickRequest<'a> {
    /// The periodic job's name.
    pub name: &'a str,
    /// The tick, ms since the Unix epoch.
    pub tick_ms: u64,
    /// Why it is offered.
    pub mode: TickMode,
    /// The job message to enqueue (id `periodic:<name>:<tick ms>`).
    pub message: &'a [u8],
    /// The definition JSON to store under the name.
    pub definition: &'a [u8],
}

/// The broker's answer to a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickAnswer {
    /// What happened.
    pub outcome: TickOutcome,
    /// The broker's clock when it answered, ms since the Unix epoch.
    pub broker_now_ms: u64,
    /// The last tick enqueued before this call, if one was recorded.
    pub previous_ms: Option<u64>,
    /// A recorded last tick that was not a number (written by hand), which
    /// was treated as none.
    pub unreadable_previous: Option<String>,
}
