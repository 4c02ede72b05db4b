//! The job-lifecycle subcommands: `cancel`, `pause`, `resume`. They act on
//! the broker through the client (`Client::cancel_in`, `pause`, `resume`),
//! after checking the service exists (an operator's typo must not pause a
//! service nobody serves) and, for a cancel, that the call is there to
//! cancel (scheduled, queued or running: looked up with the inspector,
//! newest first); they exit non-zero with a clear message on a bad id, a
//! call that does not exist or has finished, an unknown service or an
//! unreachable Redis.
//!
//! Looking needs the operator's reads. A user Redis refuses them
//! (`NOPERM`: the client role, which may cancel through the intake but
//! not read the queues) cannot look, so its cancel goes out unchecked,
//! with a note on stderr that says so, into the service it names.
//!
//! A call of a sharded service waits on one of its shards. An id marked
//! with its shard (`...~k`) goes through `Client::cancel_in`, which routes
//! by the mark; an id without one is cancelled in every shard of the
//! service (a cancel where the call is not is harmless).

use std::time::{Duration, Instant};

use crate::failure::Failure;
use clap::Subcommand;
use rpc_runtime::inspect::Stream;
use rpc_runtime::{Cancelled, Client, JobId};

/// How long a cancel looks for the call in the queues before it gives up
/// (it then cancels where it could not finish looking, to be safe).
const LOOK_FOR: Duration = Duration::from_secs(10);

#[derive(Subcommand, Debug)]
pub enum Lifecycle {
    /// Cancel a call: a scheduled or queued one never runs, a running one
    /// is told to stop; its caller gets the error kind `cancelled`.
    Cancel {
        /// The call id.
        id: String,
        /// The call's service (else every service is searched).
        #[arg(long)]
        service: Option<String>,
    },
    /// Stop taking a service's jobs (running ones finish; new ones queue up).
    Pause {
        /// The service.
        service: String,
    },
    /// Take a paused service's jobs again.
    Resume {
        /// The service.
        service: String,
    },
}

impl Lifecycle {
    pub async fn run(self, client: &Client, url: &str, prefix: &str) -> Result<(), Failure> {
        match self {
            Lifecycle::Cancel { id, service } => {
                let id = JobId::from(id);
                if id.as_str().is_empty() || id.as_str().len() > 256 {
                    return Err(Failure::cannot(
                        format!("cancel call {id:?}"),
                        "a call id is 1 to 256 bytes",
                    ));
                }
                let outcome = match look_for_call(client, url, prefix, service, &id).await? {
                    Looked::Found(service) => {
                        cancel_in_shards(client, url, prefix, &service, &id).await?
                    }
                    Looked::NotAllowed { service, why } => {
                        eprintln!(
                            "note: this user may not read the queues ({why}), so whether call {id} exists in `{service}` was not checked; the cancellation is sent anyway"
                        );
                        client.cancel_in(&service, &id).await?
                    }
                };
                match outcome {
                    Cancelled::Unscheduled => {
                        crate::outln!("cancelled {id}: it was scheduled and will never run")
                    }
                    Cancelled::Marked => {
                        crate::outln!(
                            "cancelled {id}: a worker skips it if queued, stops it if running"
                        )
                    }
                    Cancelled::Requested => {
                        crate::outln!("asked the workers to cancel {id} (this user may not cancel directly): a worker skips it if queued, stops it if running")
                    }
                }
            }
            Lifecycle::Pause { service } => {
                known_service(url, prefix, &service).await?;
                if client.pause(&service).await? {
                    crate::outln!(
                        "paused {service}: workers take none of its jobs within a second"
                    );
                } else {
                    crate::outln!("{service} was already paused");
                }
            }
            Lifecycle::Resume { service } => {
                known_service(url, prefix, &service).await?;
                if client.resume(&service).await? {
                    crate::outln!("resumed {service}");
                } else {
                    crate::outln!("{service} was not paused");
                }
            }
        }
        Ok(())
    }
}

/// What looking for a call to cancel found.
enum Looked {
    /// It waits or runs in this service (or the look ran out of time).
    Found(String),
    /// Redis refused this user the reads (`why`); `service` is the one the
    /// user named.
    NotAllowed { service: String, why: String },
}

/// Looks for call `id` before it is cancelled: it must not have finished
/// (a kept result), and must wait or run in `service` (or, not named, in
/// any service). Fails when it is not there, and when the user may not
/// look and named no service (nowhere to send the cancellation).
async fn look_for_call(
    client: &Client,
    url: &str,
    prefix: &str,
    service: Option<String>,
    id: &JobId,
) -> Result<Looked, Failure> {
    let looked = async {
        if client.fetch_result(id).await?.is_some() {
            return Err(Failure::no(
                format!("call {id} was not cancelled"),
                "it has finished (its result is kept)",
            ));
        }
        if let Some(service) = &service {
            known_service(url, prefix, service).await?;
        }
        find_call(url, prefix, service.clone(), id).await
    };
    match (looked.await, service) {
        (Ok(Some(found)), _) => Ok(Looked::Found(found)),
        (Ok(None), _) => Err(Failure::no(
            format!("call {id} was not cancelled"),
            "no such call is scheduled, queued or running here (it never existed, finished without a kept result, or belongs to another service)",
        )),
        (Err(e), Some(service)) if e.is_permission_denied() => Ok(Looked::NotAllowed {
            service,
            why: e.to_string(),
        }),
        (Err(e), None) if e.is_permission_denied() => Err(Failure::cannot(
            format!("cancel call {id}"),
            format!("this user may not read the queues ({e}), so the call's service cannot be looked up: name it with --service"),
        )),
        (Err(e), _) => Err(e),
    }
}

/// The service call `id` waits or runs in: on its schedule, or in its
/// jobs stream (queued or leased), looked for in `only` or in every
/// service. `None`: in none of them. A search the time ran out on counts
/// as found (cancelling a call that is not there is harmless).
async fn find_call(
    url: &str,
    prefix: &str,
    only: Option<String>,
    id: &JobId,
) -> Result<Option<String>, Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let services = match only {
        Some(service) => vec![service],
        None => inspector.services().await?,
    };
    let deadline = Instant::now() + LOOK_FOR;
    for service in services {
        if inspector
            .scheduled_window(&service, id.as_str(), 0, 0)
            .await?
            .is_some()
        {
            return Ok(Some(service));
        }
        let found = inspector
            .find_call(&service, Stream::Jobs, id.as_str(), 1, deadline)
            .await?;
        if !found.tokens.is_empty() || !found.finished {
            return Ok(Some(service));
        }
    }
    Ok(None)
}

/// Cancels call `id` in `service`: through the client, which routes an
/// id marked with its shard; an unmarked one in each of the service's
/// shards the inspector finds (its kept count and the scan), the
/// strongest outcome reported.
async fn cancel_in_shards(
    client: &Client,
    url: &str,
    prefix: &str,
    service: &str,
    id: &JobId,
) -> Result<Cancelled, Failure> {
    if rpc_protocol::shards::shard_of_id(id.as_str()).is_some() {
        return Ok(client.cancel_in(service, id).await?);
    }
    let inspector = crate::broker::inspector(url, prefix).await?;
    let mut outcome = Cancelled::Marked;
    // Each shard's queue itself: `cancel_in` of a shard's queue would
    // search the service's kept shards again, and miss one the scan found
    // beyond them.
    for (_, queue) in inspector.shard_queues(service).await? {
        match client.backend().cancel_job(&queue, id.as_str()).await? {
            Cancelled::Unscheduled => outcome = Cancelled::Unscheduled,
            Cancelled::Requested if outcome == Cancelled::Marked => outcome = Cancelled::Requested,
            _ => {}
        }
    }
    Ok(outcome)
}

/// Fails unless `service` is known (see [`crate::known_service`]).
async fn known_service(url: &str, prefix: &str, service: &str) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    crate::known_service::check(&inspector, prefix, service).await
}
