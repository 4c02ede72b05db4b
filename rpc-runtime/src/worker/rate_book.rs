//! Which rate limits each job of the mounted services has: the schema's
//! `#[rate]` on a job or a service, or what the worker was built with
//! (`WorkerBuilder::rate_limit`), which wins. Built once when the worker
//! is; `rate_limit.rs` asks the broker with them before a limited job runs.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use rpc_protocol::rate::RateLimit;

use crate::backend::{Limit, RateScope};
use crate::error::Error;
use crate::service::Service;

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
    pub(super) fn new<S: BuildHasher>(
        services: &HashMap<&'static str, Arc<dyn Service>, S>,
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
            // Only services with a limit: most have none, and a job of
            // one then costs no look-up (`limits` runs on every job).
            if limits.service.is_some() || !limits.jobs.is_empty() {
                book.services.insert((*name).to_owned(), limits);
            }
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
    pub(super) fn limits<'a>(&self, service: &str, job: &'a str) -> Vec<Limit<'a>> {
        if self.services.is_empty() {
            return Vec::new();
        }
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
