//! Periodic jobs checked against the worker they were given to, at build:
//! a bad name, schedule, job or parameters is refused with what to do,
//! before the worker runs. What passes is [`Prepared`]: what the ticker
//! (`periodic.rs`) stores and enqueues.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;

use crate::error::Error;
use crate::periodic::{
    is_periodic_name, tick_id, MissedTicks, Periodic, Schedule, Spec, DEFAULT_TIMEOUT,
    MAX_NAME_LEN, MIN_INTERVAL,
};
use crate::service::Service;
use rpc_protocol::limits;

/// A periodic job checked against the worker it was given to.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub name: String,
    pub service: &'static str,
    /// The job's name within its service.
    pub job: String,
    pub schedule: Schedule,
    pub params: Box<RawValue>,
    pub missed: MissedTicks,
    pub timeout: Duration,
    /// The job's `#[priority]`: the lane its ticks go onto.
    pub priority: Option<u8>,
}

impl Prepared {
    /// The definition stored beside a tick, with the tick after it.
    pub(crate) fn definition(&self, next_ms: Option<u64>) -> Vec<u8> {
        let (cron, every_ms) = match &self.schedule {
            Schedule::Cron { expression, .. } => (Some(expression.as_str()), None),
            Schedule::Every { ms } => (None, Some(*ms)),
        };
        let stored = rpc_protocol::periodic::Definition {
            v: rpc_protocol::job::PROTOCOL_VERSION,
            name: &self.name,
            service: self.service,
            job: format!("{}.{}", self.service, self.job),
            cron,
            every_ms,
            params: &self.params,
            timeout_ms: self.timeout.as_millis() as u64,
            missed: self.missed,
            next_ms,
        };
        // Plain data with a valid RawValue: serializing cannot fail.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// The job message of one tick: a one-way job with the tick's
    /// deterministic id and `meta.periodic` = the name.
    pub(crate) fn message(&self, tick_ms: u64) -> Vec<u8> {
        let id = tick_id(&self.name, tick_ms);
        let meta = std::collections::BTreeMap::from([("periodic".to_owned(), self.name.clone())]);
        let message = rpc_protocol::job::OutgoingJob {
            v: rpc_protocol::job::PROTOCOL_VERSION,
            id: &id,
            job: rpc_protocol::job::JobName {
                service: self.service,
                job: &self.job,
            },
            params: &*self.params,
            reply_to: None,
            deadline_ms: Some(rpc_protocol::time::unix_ms(
                SystemTime::now() + self.timeout,
            )),
            timeout_ms: Some(self.timeout.as_millis() as u64),
            attempt: 1,
            max_attempts: None,
            result_ttl_ms: 0,
            meta: &meta,
            sent_ms: None,
            run_at_ms: None,
            idempotency_key: None,
            idempotency_ttl_ms: None,
            group: None,
            // Last in the message, where `tick.lua` reads it.
            priority: self
                .priority
                .filter(|p| *p != rpc_protocol::priority::DEFAULT),
        };
        serde_json::to_vec(&message).unwrap_or_default()
    }
}

/// Checks every periodic job against the services mounted on the worker.
pub(super) fn prepare(
    periodic: Vec<Periodic>,
    services: &[Arc<dyn Service>],
) -> Result<Vec<Prepared>, Error> {
    let mut names = HashSet::new();
    let mut prepared = Vec::with_capacity(periodic.len());
    for p in periodic {
        let refuse =
            |reason: String| Error::config(format_args!("periodic job `{}`: {reason}", p.name));
        if !is_periodic_name(&p.name) {
            return Err(refuse(format!(
                "a name is 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - ."
            )));
        }
        if !names.insert(p.name.clone()) {
            return Err(refuse("the name is given twice".to_owned()));
        }
        let schedule = match &p.schedule {
            Spec::Cron(expression) => Schedule::cron(expression).map_err(|e| {
                refuse(format!(
                    "`{expression}` is not a cron expression ({e}); write five fields \
                     (min hour day month weekday) or six with seconds first"
                ))
            })?,
            Spec::Every(interval) if *interval < MIN_INTERVAL => {
                return Err(refuse(format!(
                    "the interval {interval:?} is under the shortest, {MIN_INTERVAL:?}"
                )))
            }
            Spec::Every(interval) => Schedule::Every {
                ms: interval.as_millis().min(u64::MAX as u128) as u64,
            },
        };
        let now = rpc_protocol::time::unix_ms(SystemTime::now());
        if schedule.next_after(now).is_none() {
            return Err(refuse(format!(
                "`{}` never fires after now",
                schedule.describe()
            )));
        }
        let Some((service_name, job)) = p.job.split_once('.') else {
            return Err(refuse(format!("the job `{}` is not `Service.job`", p.job)));
        };
        let Some(service) = services.iter().find(|s| s.name() == service_name) else {
            let mounted: Vec<&str> = services.iter().map(|s| s.name()).collect();
            return Err(refuse(format!(
                "its job `{}` belongs to no service mounted on this worker (mounted: {}); \
                 mount `{service_name}` on the worker that runs the schedule",
                p.job,
                if mounted.is_empty() {
                    "none".to_owned()
                } else {
                    mounted.join(", ")
                }
            )));
        };
        let Some(info) = service.jobs().iter().find(|j| j.name == job) else {
            return Err(refuse(format!(
                "the service `{service_name}` has no job `{job}`"
            )));
        };
        if !p.params.is_object() {
            return Err(refuse(
                "the parameters must be a JSON object keyed by parameter name".to_owned(),
            ));
        }
        let timeout = p
            .timeout
            .or(info.timeout_ms.map(Duration::from_millis))
            .unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout.as_millis() > u128::from(limits::MAX_TTL_MS) {
            return Err(refuse(format!(
                "the timeout {timeout:?} is not between 1 ms and 366 days"
            )));
        }
        let params = serde_json::value::to_raw_value(&p.params)
            .map_err(|e| refuse(format!("the parameters do not encode: {e}")))?;
        prepared.push(Prepared {
            name: p.name,
            service: service.name(),
            job: job.to_owned(),
            schedule,
            params,
            missed: p.missed,
            timeout,
            priority: info.priority,
        });
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::periodic::Periodic;
    use crate::DynamicService;
    use serde_json::json;

    fn services() -> Vec<Arc<dyn Service>> {
        let files = DynamicService::new("Files")
            .job("sweep", |req| async move { req.respond(json!(null)) });
        vec![Arc::new(files)]
    }

    fn refused(p: Periodic) -> String {
        prepare(vec![p], &services())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_bad_definition_is_refused_at_build_with_what_to_do() {
        let every =
            |name: &str, job: &str| Periodic::every(name, Duration::from_secs(1), job, json!({}));
        let why = refused(every("has space", "Files.sweep"));
        assert!(
            why.contains("`has space`") && why.contains("A-Z a-z 0-9 _ - ."),
            "{why}"
        );
        assert!(refused(every("", "Files.sweep")).contains("1 to 128"));
        let why = refused(Periodic::cron("c", "every day", "Files.sweep", json!({})));
        assert!(
            why.contains("not a cron expression") && why.contains("five fields"),
            "{why}"
        );
        let why = refused(Periodic::cron(
            "c",
            "0 0 0 30 2 *",
            "Files.sweep",
            json!({}),
        ));
        assert!(why.contains("never fires"), "{why}");
        let why = refused(every("x", "Mail.send"));
        assert!(
            why.contains("mounted: Files") && why.contains("mount `Mail`"),
            "{why}"
        );
        assert!(refused(every("x", "Files.nope")).contains("no job `nope`"));
        assert!(refused(every("x", "sweep")).contains("`Service.job`"));
        let why = refused(Periodic::every(
            "x",
            Duration::from_millis(5),
            "Files.sweep",
            json!({}),
        ));
        assert!(why.contains("shortest"), "{why}");
        let why = refused(Periodic::every(
            "x",
            Duration::from_secs(1),
            "Files.sweep",
            json!([1]),
        ));
        assert!(why.contains("JSON object"), "{why}");
        let twice = vec![every("x", "Files.sweep"), every("x", "Files.sweep")];
        let why = prepare(twice, &services()).unwrap_err().to_string();
        assert!(why.contains("given twice"), "{why}");
    }

    #[test]
    fn a_tick_is_a_one_way_job_message_with_the_ticks_id() {
        let prepared = prepare(
            vec![Periodic::every(
                "beat",
                Duration::from_millis(200),
                "Files.sweep",
                json!({"a": 1}),
            )
            .timeout(Duration::from_secs(5))],
            &services(),
        )
        .unwrap()
        .remove(0);
        let message = prepared.message(1_000);
        let decoded = rpc_protocol::job::JobMessage::decode(&message).expect("a valid job message");
        assert_eq!(decoded.id, "periodic:beat:1000");
        assert_eq!(decoded.job, "Files.sweep");
        assert_eq!(decoded.params.get(), r#"{"a":1}"#);
        assert_eq!(decoded.reply_to, None);
        assert_eq!(decoded.timeout_ms, Some(5_000));
        assert_eq!(decoded.meta.get("periodic").map(|v| &**v), Some("beat"));
        let definition: serde_json::Value =
            serde_json::from_slice(&prepared.definition(Some(1_200))).unwrap();
        assert_eq!(
            definition,
            json!({"v": 1, "name": "beat", "service": "Files", "job": "Files.sweep",
                   "every_ms": 200, "params": {"a": 1}, "timeout_ms": 5000,
                   "missed": "run_once", "next_ms": 1200})
        );
    }

    #[test]
    fn a_tick_of_a_prioritised_job_names_its_priority_last() {
        let mut prepared = prepare(
            vec![Periodic::every(
                "sweep-often",
                Duration::from_secs(60),
                "Files.sweep",
                json!({}),
            )],
            &services(),
        )
        .expect("prepared")
        .remove(0);
        assert!(!String::from_utf8_lossy(&prepared.message(0)).contains("priority"));
        prepared.priority = Some(1);
        let message = String::from_utf8(prepared.message(0)).unwrap();
        // `tick.lua` reads it from the end (PROTOCOL.md, "Priorities").
        assert!(message.ends_with(r#","priority":1}"#), "{message}");
    }
}
