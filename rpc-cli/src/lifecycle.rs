//! The job-lifecycle subcommands: `cancel`, `pause`, `resume`. They act on
//! the broker through the client (`Client::cancel_in`, `pause`, `resume`),
//! after checking the service exists (an operator's typo must not pause a
//! service nobody serves), and exit non-zero with a clear message on a bad
//! id, an unknown service or an unreachable Redis.

use clap::Subcommand;
use rpc_runtime::{Cancelled, Client, Error, Inspector, JobId};

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
                if client.fetch_result(&id).await?.is_some() {
                    return Err(refused(
                        format!("cancel call {id}"),
                        "it has finished (its result is kept)",
                    ));
                }
                let done = match service {
                    Some(service) => {
                        known_service(url, prefix, &service).await?;
                        client.cancel_in(&service, &id).await?
                    }
                    None => client.cancel(&id).await?,
                };
                match done {
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

/// Fails unless `service` has a queue on the broker, or calls waiting on
/// its schedule or intake (no worker made its stream yet).
async fn known_service(url: &str, prefix: &str, service: &str) -> Result<(), Error> {
    if url.trim().starts_with("memory://") {
        return Ok(());
    }
    let inspector = Inspector::connect(url, prefix).await?;
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
