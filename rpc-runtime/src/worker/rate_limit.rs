//! Rate limits on the worker: which limits each job of the mounted services
//! has (the schema's `#[rate]`, or what the worker was built with), and the
//! step a limited job takes before its handler runs.
//!
//! The step asks the broker (`backend/rate_limits.rs`): a call over its
//! limit goes onto the schedule until its turn, as it is: not answered, not
//! an attempt, holding no slot. A call whose turn would come after its
//! deadline is answered `deadline_exceeded` at once rather than kept
//! waiting for nothing. A job without a limit costs nothing here: no
//! command is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::job::JobMessage;
use rpc_protocol::limits::MAX_DELAY_MS;
use rpc_protocol::rate::RateLimit;

use crate::backend::{Broker, Limit, RateAnswer, RateScope};
use crate::error::Error;
use crate::service::Service;

/// How long a call waits on the schedule when the broker could not say
/// whether it may start (it failed: the call is not run unlimited).
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// The limits of every mounted job, by service: the service's own, and
/// each job's.
#[derive(Default, Debug)]
pub(super) struct RateBook {
    services: HashMap<String, Limits>,
}

#[derive(Default, Debug)]
struct Limits {
    service: Option<RateLimit>,
    jobs: HashMap<String, RateLimit>,
}

impl RateBook {
    /// The schema's limits of `services`, then `overrides` (`Service` or
    /// `Service.job`, as given to the builder); an override naming no
    /// mounted service or job is an error.
    pub(super) fn new(
        services: &HashMap<&'static str, Arc<dyn Service>>,
        overrides: &[(String, RateLimit)],
    ) -> Result<RateBook, Error> {
        let mut book = RateBook::default();
        for (name, service) in services {
            let limits = Limits {
                service: service.rate(),
                jobs: service
                    .jobs()
                    .iter()
                    .filter_map(|job| Some((job.name.to_owned(), job.rate?)))
                    .collect(),
            };
            book.services.insert((*name).to_owned(), limits);
        }
        for (target, rate) in overrides {
            let (service, job) = match target.split_once('.') {
                Some((service, job)) => (service, Some(job)),
                None => (target.as_str(), None),
            };
            let Some(mounted) = services.get(service) else {
                return Err(Error::config(format_args!(
                    "rate limit for `{target}`: no service `{service}` is mounted on this worker"
                )));
            };
            let limits = book.services.entry(service.to_owned()).or_default();
            match job {
                None => limits.service = Some(*rate),
                Some(job) if mounted.jobs().iter().any(|j| j.name == job) => {
                    limits.jobs.insert(job.to_owned(), *rate);
                }
                Some(job) => {
                    return Err(Error::config(format_args!(
                        "rate limit for `{target}`: service `{service}` has no job `{job}`"
                    )))
                }
            }
        }
        Ok(book)
    }

    /// The limits a start of `service.job` must pass: the job's own first
    /// (its turns are kept there), then the service's.
    fn limits<'a>(&self, service: &str, job: &'a str) -> Vec<Limit<'a>> {
        let Some(limits) = self.services.get(service) else {
            return Vec::new();
        };
        let own = limits.jobs.get(job).map(|&rate| Limit {
            scope: RateScope::Job(job),
            rate,
        });
        let all = limits.service.map(|rate| Limit {
            scope: RateScope::Service,
            rate,
        });
        own.into_iter().chain(all).collect()
    }
}

/// What a limited job's start must wait for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Start it now.
    Start,
    /// Put it on the schedule for this long: its turn.
    Wait(Duration),
    /// Its turn would come after its deadline: answer it so, with this
    /// message.
    TooLate(String),
    /// The broker refuses to say, for good (a permission missing, a
    /// script it cannot run): dead-letter it with this reason, rather than
    /// ask again every second for ever.
    Refuse(String),
}

/// Whether call `msg` of `service.job` may start (`left`: its time to the
/// deadline, if it has one).
/// Takes the worker's `rates` and `backend` (not the whole `Shared`, which
/// holds the book: the two modules stay out of a circle).
pub(super) async fn gate(
    rates: &RateBook,
    backend: &dyn Broker,
    service: &str,
    job: &str,
    msg: &JobMessage<'_>,
    left: Option<Duration>,
) -> Gate {
    let limits = rates.limits(service, job);
    if limits.is_empty() {
        return Gate::Start;
    }
    let longest = left.unwrap_or(Duration::from_millis(MAX_DELAY_MS));
    match backend
        .admit_rate(service, &msg.id, &limits, longest)
        .await
    {
        Ok(RateAnswer::Start) => Gate::Start,
        Ok(RateAnswer::Turn(wait)) => Gate::Wait(wait),
        Ok(RateAnswer::TooLate(wait)) => Gate::TooLate(format!(
            "the rate limit of {service}.{job} ({}) gives this call its turn in {:.1}s, after its deadline; it did not run",
            describe(&limits),
            wait.as_secs_f64()
        )),
        Ok(RateAnswer::Refused(reason)) => Gate::Refuse(format!(
            "the rate limit of {service}.{job} cannot be asked: Redis refused it ({reason}); the call did not run"
        )),
        Err(e) => {
            tracing::warn!(id = %msg.id, error = %e, "could not ask the rate limit; putting the call back on the schedule");
            Gate::Wait(ASK_AGAIN)
        }
    }
}

fn describe(limits: &[Limit<'_>]) -> String {
    limits
        .iter()
        .map(|l| match l.scope {
            RateScope::Job(_) => l.rate.to_string(),
            RateScope::Service => format!("{} for the service", l.rate),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DynamicService;

    fn mounted() -> HashMap<&'static str, Arc<dyn Service>> {
        let svc = DynamicService::new("Mail")
            .job(
                "send",
                |req| async move { req.respond(serde_json::Value::Null) },
            )
            .job("digest", |req| async move {
                req.respond(serde_json::Value::Null)
            })
            .rate_limit(Some("send"), "10/s".parse().unwrap());
        HashMap::from([("Mail", Arc::new(svc) as Arc<dyn Service>)])
    }

    #[test]
    fn a_job_passes_its_own_limit_then_its_services() {
        let services = mounted();
        let book = RateBook::new(&services, &[("Mail".into(), "100/m".parse().unwrap())])
            .expect("valid overrides");
        let send = book.limits("Mail", "send");
        assert_eq!(send.len(), 2);
        assert_eq!(send[0].scope, RateScope::Job("send"));
        assert_eq!(send[0].rate.to_string(), "10/s");
        assert_eq!(send[1].scope, RateScope::Service);
        let digest = book.limits("Mail", "digest");
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].rate.to_string(), "100/m");
        assert!(book.limits("Other", "send").is_empty());
    }

    #[test]
    fn an_override_replaces_the_schemas_limit_and_must_name_a_mounted_job() {
        let services = mounted();
        let book = RateBook::new(&services, &[("Mail.send".into(), "2/s".parse().unwrap())])
            .expect("valid overrides");
        assert_eq!(book.limits("Mail", "send")[0].rate.to_string(), "2/s");
        for (target, why) in [
            ("Mail.nope", "service `Mail` has no job `nope`"),
            ("Nope", "no service `Nope` is mounted"),
            ("Nope.send", "no service `Nope` is mounted"),
        ] {
            let e = RateBook::new(&services, &[(target.into(), "1/s".parse().unwrap())])
                .expect_err(target)
                .to_string();
            assert!(e.contains(why), "{target}: {e}");
        }
    }
}
