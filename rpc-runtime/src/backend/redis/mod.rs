//! The Redis backend: one stream per service, consumed through a consumer
//! group, plus one reply list per client. `docs/PROTOCOL.md` is the normative
//! description of the keys and commands; this module implements it.
//!
//! Why streams: a consumer group gives each job a lease (the pending entries
//! list) that survives the worker, so a job taken by a worker that dies is
//! still known to Redis and can be claimed by another once it has been idle
//! for the visibility timeout (`XPENDING` + `XCLAIM`). `XACK` + `XDEL` end a
//! job for good, so acked jobs take no memory.
//!
//! Keys (`P` is the configurable prefix; `{...}` are Cluster hash tags so all
//! keys of one queue, one inbox or one result live in one slot):
//!
//! | key                  | type   | what                                   |
//! |----------------------|--------|----------------------------------------|
//! | `P:{Service}:jobs`   | stream | jobs of a service, group `workers`     |
//! | `P:{Service}:intake`, `:moving` | list | calls of clients that may not `XADD` (`intake.rs`) |
//! | `P:{Service}:dead`   | stream | dead letters of a service (capped)     |
//! | `P:inbox:{client}`   | list   | replies to one client (expires)        |
//! | `P:result:{call}`    | string | a kept reply (expires)                 |
//! | `P:progress:{call}`  | string | a call's newest progress (expires; `progress.rs`) |
//! | `P:{Service}:schedule`, `:scheduled` | zset, hash | delayed jobs and retries (`schedule.rs`) |
//! | `P:{Service}:cancelled` | zset | cancelled calls (`cancel.rs`)           |
//! | `P:{Service}:paused` | string | the pause flag (`pause.rs`)              |
//! | `P:{Service}:once:<key>` | string | an idempotency key (`once.rs`)     |
//! | `P:{Service}:rate[:<job>]`, `P:{Service}:turns[:<job>]` | hash, zset | a rate limit's state and turns (`rate_limits.rs`) |
//! | `P:{Q}:group:<job>:<key>:running`, `:waiting`, `P:{Q}:groups` | zset, list, set | per-key concurrency (`group_slots.rs`) |
//! | `P:{Service}:periodic` (`:last`) | hash | periodic jobs (`periodic.rs`)  |
//! | `P:{Service}:workers` | zset | worker id -> last beat (`presence.rs`) |
//! | `P:worker:{id}` (`:control`) | string | a worker's beat, an operator's control (`presence.rs`) |
//! | `P:{Service}:ready` | shard channel | on a Cluster, a queue's doorbell (`doorbell.rs`, `cluster_reader.rs`) |
//!
//! Every key is built by `rpc_protocol::Keys`. [`RedisBackend`] and how it
//! connects are in `connect.rs`; `capabilities.rs` wires the broker traits
//! to the files that implement them; `inspect/` is the operator's
//! read-only view.
//!
//! Connections. Ordinary commands go over one shared connection that
//! reconnects by itself: a `ConnectionManager` on a single Redis, a
//! `cluster_async::ClusterConnection` on a Cluster. Blocking reads get a
//! connection of their own per reader, because a blocking command would
//! stall every command queued behind it on a shared connection, and the
//! `redis` crate's default response timeout is shorter than a blocking read
//! (DESIGN.md, "Known pitfalls"). On a single Redis over plain TCP or a Unix
//! socket that connection is a `RespConnection`: the reader writes and
//! parses on it itself, with no driver task in between (the hot path of
//! every call; see `resp.rs` for why). Over TLS it is the `redis` crate's
//! multiplexed connection with the response timeout turned off, on a
//! Cluster a cluster connection.
//!
//! URLs: `redis://`, `rediss://` (TLS), `redis+unix://`, and for a Cluster
//! `redis+cluster://[user:pass@]host:port,host:port[/db]` (or
//! `rediss+cluster://`): the listed nodes are seeds, the slot map is learned
//! from them. A TLS URL may carry `?ca=/path/ca.pem` to trust a private CA,
//! and `client_cert=` / `client_key=` for mutual TLS.
//!
//! On a Cluster a completion touches keys in up to three slots (the queue,
//! the caller's inbox, the kept result), so it is sent as one pipeline per
//! slot, reply first and ack last: a crash in between redelivers the job
//! (at-least-once) rather than losing its reply.

mod bulk;
mod cancel;
mod capabilities;
mod cluster_commands;
mod cluster_completion;
mod cluster_reader;
mod cluster_slots;
mod coalesce;
mod commands;
mod completion;
mod completion_batch;
mod connect;
mod consumers;
mod daily_counts;
mod dead_letters;
mod doorbell;
mod failures;
mod group_slots;
mod inbox_pop;
mod inspect;
mod intake;
mod leases;
mod once;
mod pause;
mod periodic;
mod presence;
mod progress;
mod rate_limits;
mod read_only;
mod reader;
mod resp;
mod scan;
mod schedule;
mod scripts;
mod shard_counts;
mod shards_found;
mod shared_rings;
mod unreadable_queues;
mod url;
mod values;

pub use self::connect::RedisBackend;
