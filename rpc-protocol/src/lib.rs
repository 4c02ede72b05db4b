//! What every implementation of the protocol must agree on, and nothing
//! else: docs/PROTOCOL.md in code.
//!
//! A client or worker in any language that follows these modules
//! interoperates with rpc-runtime's:
//!
//! * [`keys`]: every Redis key and hash tag, built in one place;
//! * [`job`] and [`reply`]: the JSON envelopes, decoded strictly (a job
//!   message is written by `OutgoingJob::write_json`, `job_write.rs`);
//! * [`limits`]: the ranges of every value a message may carry;
//! * [`stream`]: entry fields, the consumer group, intake elements;
//! * [`time`]: times on the wire (ms since the Unix epoch);
//! * [`backoff`]: the retry policy and its grammar (the schema attribute's);
//! * [`fingerprint`]: the canonical form of an idempotent call's parameters;
//! * [`periodic`]: a tick's id, the stored definition, the tick script's
//!   vocabulary;
//! * [`progress`]: a call's progress value, its bounds and TTL;
//! * [`priority`]: a call's priority, its lanes and their weights;
//! * [`shards`]: a sharded service's queue names, and which shard a call
//!   goes to;
//! * [`worker`]: a worker's heartbeat and the operator's quiet/stop control;
//! * [`scripts`]: the Lua scripts themselves (`scripts/*.lua`), which every
//!   implementation runs as they are.
//!
//! It depends on serde and serde_json, and on the hash functions the
//! protocol names (SHA-256 for fingerprints, SHA-1 for script names).

pub mod backoff;
pub mod fingerprint;
pub mod job;
mod job_write;
mod json_text;
pub mod keys;
pub mod limits;
pub mod periodic;
pub mod priority;
pub mod progress;
pub mod rate;
pub mod reply;
pub mod scripts;
pub mod shards;
pub mod stream;
pub mod time;
pub mod worker;

pub use backoff::{Backoff, ParseBackoffError};
pub use job::{JobMessage, JobName, OutgoingJob, Refused};
pub use job_write::WriteParams;
pub use keys::Keys;
pub use reply::{ErrorKind, ReplyError, ReplyMessage};
