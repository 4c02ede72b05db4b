//! The job-lifecycle subcommands: `cancel`, `pause`, `resume`. They act on
//! the broker through the client (`Client::cancel_in`, `pause`, `resume`),
//! after checking the service exists (an operator's typo must not pause a
//! service nobody serves) and, for a cancel, that the call is there to
//! cancel (scheduled, queued or running: looked up with the inspector,
//! newest first); they exit non-zero with a clear message on a bad id, a
//! call that does not exist or has finished, an unknown service or an
//! unreachable Redis.

use std::time::{Duration, Instant};

use clap::Subcommand;
use rpc_runtime::inspect::Stream;
use rpc_runtime::{Cancelled, Client, Error, JobId};

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
    pub async fn run(self, client: &Client, url: &str, prefix: &str) -> Result<(), Error> {
        match self {
            Lifecycle::Cancel { id, service } => {
                let id = JobId::from(id);
                if id.as_str().is_empty() || id.as_str().len() > 256 {
                    return Err(refused(
                        format!("cancel call {id:?}"),
                        "a call id is 1 to 256 bytes",
                    ));
                }
                if client.fetch_result(&id).await?.is_some() {
                    return Err(refused(
                        format!("cancel call {id}"),
                        "it has finished (its result is kept)",
                    ));
                }
                let service = match service {
                    Some(service) => {
                        known_service(url, prefix, &service).await?;
                        Some(service)
                    }
                    None => None,
                };
                let Some(service) = find_call(url, prefix, service, &id).await? else {
                    return Err(refused(
                        format!("cancel call {id}"),
                        "no such call is scheduled, queued or running here (it never existed, finished without a kept result, or belongs to another service)",
                    ));
                };
                match client.cancel_in(&service, &id).await? {
                    Cancelled::Unscheduled => {
                        println!("cancelled {id}: it was scheduled and will never run")
                    }
                    Cancelled::Marked => {
                        println!("cancelled {id}: a worker skips it if queued, stops it if running")
                    }
                    Cancelled::Requested => {
                        println!("asked the workers to cancel {id} (this user may not cancel directly): a worker skips it if queued, stops it if running")
                    }
                }
            }
            Lifecycle::Pause { service } => {
                known_service(url, prefix, &service).await?;
                if client.pause(&service).await? {
                    println!("paused {service}: workers take none of its jobs within a second");
                } else {
                    println!("{service} was already paused");
                }
            }
            Lifecycle::Resume { service } => {
                known_service(url, prefix, &service).await?;
                if client.resume(&service).await? {
                    println!("resumed {service}");
                } else {
                    println!("{service} was not paused");
                }
            }
        }
        Ok(())
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
) -> Result<Option<String>, Error> {
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

/// Fails unless `service` has a queue on the broker, or calls waiting on
/// its schedule or intake (no worker made its stream yet).
async fn known_service(url: &str, prefix: &str, service: &str) -> Result<(), Error> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    if inspector.has_service(service).await? {
        return Ok(());
    }
    Err(no_such_service(service, &inspector.services().await?))
}

/// The error for a service with no queue here, naming those that have one.
pub fn no_such_service(service: &str, known: &[String]) -> Error {
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    refused(
        format!("find service `{service}`"),
        &format!("no such service has a queue here (services: {known})"),
    )
}

fn refused(what: String, reason: &str) -> Error {
    Error::Codec {
        what,
        reason: reason.to_owned(),
    }
}
