//! The caller's side: send jobs, wait for replies.
//!
//! A [`Client`] owns one reply inbox and one reader: a connection for
//! blocking reads of that inbox. Whoever holds the reader reads for everyone
//! and hands each reply to its waiting call by id through a map of oneshot
//! channels. So a thousand calls in flight cost a thousand map entries, not
//! a thousand connections.
//!
//! Who holds the reader: a call that finds it free *leads*: it sends its job
//! and the blocking read of the inbox as one pipeline on the reader's
//! connection, and reads until its own reply comes (routing any others on
//! the way). That is a lone call's whole cost: one write, one round trip, no
//! hand-off between tasks. Calls that find the reader taken send their job
//! over the shared connection and wait for their reply to be routed to
//! them; when the leader is done and calls still wait, a router task takes
//! the reader and reads for them until none is left. The router stops when
//! the last clone of the client is dropped.
//!
//! Every call has a deadline (its timeout, from the call options, the job's
//! schema attribute or the client default). The deadline travels in the
//! message so workers skip expired jobs, and the caller stops waiting at it.
//!
//! The files, by what they do: `builder.rs` and `config.rs` (settings,
//! connecting), `handle.rs` (what a client holds), `call.rs` (a call
//! before it is sent), `interceptor.rs`, `send.rs` (encoding and sending,
//! leading with `lead.rs`), `routing.rs` (the inbox and its router),
//! `pending.rs` (a call in flight), `reply.rs` and `follow.rs` (reading
//! answers), `place.rs` (when a call is due, its key), `observe.rs` (spans
//! and metrics), `typed.rs`, `untyped.rs`, `by_id.rs`, `cancel.rs`,
//! `dead_letters.rs`, `diagnosis.rs` (why a call timed out), `workers.rs`
//! (asking a worker to be quiet or stop), `bulk.rs`, `bulk_error.rs` and `bulk_send.rs`
//! (many calls in one round trip), `progress.rs` (watching a call's
//! progress).

mod builder;
mod bulk;
mod bulk_error;
mod bulk_send;
mod by_id;
mod call;
mod cancel;
mod config;
mod dead_letters;
mod diagnosis;
mod follow;
mod handle;
mod interceptor;
mod lead;
mod observe;
mod pending;
mod place;
mod progress;
mod reply;
mod routing;
mod send;
mod shard_cache;
mod shard_choice;
mod typed;
mod untyped;
mod workers;

pub use self::builder::ClientBuilder;
pub use self::bulk::{Batch, BatchError, OneWayBatch, Sent};
pub use self::call::{Answered, Call, OneWay, OneWayCall};
pub use self::handle::Client;
pub use self::interceptor::{Interceptor, Outgoing};
pub use self::pending::Pending;
pub use self::progress::{ProgressUpdate, ProgressWatch};
pub use self::untyped::Response;
