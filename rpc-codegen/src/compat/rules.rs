//! Services and jobs of the old schema against the new: what was removed,
//! renamed or added, how each job's parameters, result and application
//! error are read in each direction, and which defaults changed.
//!
//! Parameters are written by clients and read by workers; results and
//! application errors the other way round. So each is checked in two flows,
//! and each flow stands for the directions where that writer meets that
//! reader (see the module docs of `compat`).

use std::collections::BTreeSet;

use super::types::{ty_text, Checker, Flow, Site};
use super::{Change, Direction, Rule, Severity, Spot};
use crate::model::{Job, Returns, Schema, Service, Ty, TypeRef};
use crate::source::{Pos, Span};

use Direction::{NewClientOldWorker, OldClientNewWorker, QueuedBeforeDeploy};

/// Old clients' parameters read by new workers (now and from the queue).
const PARAMS_OLD_WRITE: &[Direction] = &[OldClientNewWorker, QueuedBeforeDeploy];
/// New clients' parameters read by old workers.
const PARAMS_NEW_WRITE: &[Direction] = &[NewClientOldWorker];
/// New workers' replies read by old clients.
const RESULT_NEW_WRITE: &[Direction] = &[OldClientNewWorker];
/// Old workers' replies (and kept results) read by new clients.
const RESULT_OLD_WRITE: &[Direction] = &[NewClientOldWorker, QueuedBeforeDeploy];

/// Every change from `old` to `new`, breaking ones first.
pub(crate) fn compare(old: &Schema, new: &Schema) -> Vec<Change> {
    let mut checker = Checker::new(old, new);
    let old_services = services(old);
    let new_services = services(new);
    let new_file = start_of(new);

    let mut added: Vec<&Service> = new_services
        .iter()
        .copied()
        .filter(|n| !old_services.iter().any(|o| o.wire == n.wire))
        .collect();
    for o in &old_services {
        if let Some(n) = new_services.iter().find(|n| n.wire == o.wire) {
            compare_service(&mut checker, o, n);
            continue;
        }
        let renamed = added.iter().position(|n| same_jobs(o, n));
        match renamed.map(|at| added.remove(at)) {
            Some(n) => checker.breaking(
                Rule::RenamedService,
                format!("service `{}` is renamed to `{}`", o.wire, n.wire),
                Spot::new(o.span, format!("jobs were sent to the `{}` queue", o.wire)),
                Spot::new(n.span, format!("and now to the `{}` queue", n.wire)),
                &dirs(&[OldClientNewWorker, NewClientOldWorker, QueuedBeforeDeploy]),
                Some(format!(
                    "the service name is the queue and has no `#[rename]`: keep `{}`, or run \
                     workers for both until the old queue is empty",
                    o.wire
                )),
            ),
            None => checker.breaking(
                Rule::RemovedService,
                format!("service `{}` was removed", o.wire),
                Spot::new(o.span, "removed"),
                Spot::new(new_file, format!("no service `{}` in this schema", o.wire)),
                &dirs(&[OldClientNewWorker, QueuedBeforeDeploy]),
                Some(
                    "old clients' calls, and jobs already queued, wait for a worker that never comes"
                        .into(),
                ),
            ),
        }
    }
    checker.findings.into_sorted()
}

fn compare_service(checker: &mut Checker, old: &Service, new: &Service) {
    let mut added: Vec<&Job> = new
        .jobs
        .iter()
        .filter(|n| !old.jobs.iter().any(|o| o.wire == n.wire))
        .collect();
    for o in &old.jobs {
        if let Some(n) = new.jobs.iter().find(|n| n.wire == o.wire) {
            compare_job(checker, &old.wire, o, n);
            continue;
        }
        let signature = signature(checker.old, o);
        let renamed = added
            .iter()
            .position(|n| signature == self::signature(checker.new, n));
        match renamed.map(|at| added.remove(at)) {
            Some(n) => checker.breaking(
                Rule::RenamedJob,
                format!(
                    "job `{0}.{1}` is renamed to `{0}.{2}` on the wire",
                    old.wire, o.wire, n.wire
                ),
                Spot::new(o.span, format!("`{}` on the wire", o.wire)),
                Spot::new(n.span, format!("`{}` on the wire", n.wire)),
                &dirs(&[OldClientNewWorker, NewClientOldWorker, QueuedBeforeDeploy]),
                Some(format!(
                    "keep the wire name: `#[rename = \"{}\"] fn {}(..)`",
                    o.wire, n.schema_name
                )),
            ),
            None => checker.breaking(
                Rule::RemovedJob,
                format!("job `{}.{}` was removed", old.wire, o.wire),
                Spot::new(o.span, "removed"),
                Spot::new(new.span, format!("no job `{}` here any more", o.wire)),
                &dirs(&[OldClientNewWorker, QueuedBeforeDeploy]),
                Some(
                    "new workers answer it with `unknown_job`; keep it (it may be deprecated)"
                        .into(),
                ),
            ),
        }
    }
    for n in added {
        checker.findings.push(Change {
            rule: Rule::NewJob,
            severity: Severity::Warning,
            message: format!("new job `{}.{}`", new.wire, n.wire),
            old: Spot::new(old.span, format!("old workers know no `{}`", n.wire)),
            new: Spot::new(n.span, "added"),
            breaks: dirs(&[NewClientOldWorker]),
            hint: Some(
                "old workers answer it with `unknown_job`: deploy the workers before the clients that call it"
                    .into(),
            ),
        });
    }
}

fn compare_job(checker: &mut Checker, service: &str, old: &Job, new: &Job) {
    let name = format!("{service}.{}", new.wire);
    let owner = format!("job `{name}`");
    let site = Site {
        subject: owner.clone(),
        old: old.span,
        new: new.span,
    };
    for flow in [
        Flow::old_writes(PARAMS_OLD_WRITE),
        Flow::new_writes(PARAMS_NEW_WRITE),
    ] {
        checker.fields(&old.params, &new.params, &flow, &site, "parameter", &owner);
    }

    match (answer(&old.returns), answer(&new.returns)) {
        (None, None) => {}
        (Some(ok), None) => checker.breaking(
            Rule::ReplyToOneWay,
            format!("job `{name}` became one-way"),
            Spot::new(old.span, format!("answered `{}`", ty_text(checker.old, ok))),
            Spot::new(new.span, "one-way now"),
            &dirs(&[OldClientNewWorker]),
            Some(
                "old clients wait for a value and get `null`: add a new one-way job instead".into(),
            ),
        ),
        (None, Some(ok)) => checker.breaking(
            Rule::OneWayToReply,
            format!("one-way job `{name}` now answers"),
            Spot::new(old.span, "one-way here"),
            Spot::new(
                new.span,
                format!("answers `{}` now", ty_text(checker.new, ok)),
            ),
            &dirs(&[NewClientOldWorker]),
            Some(
                "old workers answer `null`, which new clients cannot read: add a new job instead"
                    .into(),
            ),
        ),
        (Some(a), Some(b)) => {
            let result = Site {
                subject: format!("the result of job `{name}`"),
                ..site.clone()
            };
            for flow in [
                Flow::new_writes(RESULT_NEW_WRITE),
                Flow::old_writes(RESULT_OLD_WRITE),
            ] {
                checker.ty(a, b, &flow, &result);
            }
        }
    }

    match (app_error(&old.returns), app_error(&new.returns)) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            for flow in [
                Flow::new_writes(RESULT_NEW_WRITE),
                Flow::old_writes(RESULT_OLD_WRITE),
            ] {
                checker.named(a, b, &flow, &site);
            }
        }
        (None, Some(b)) => checker.breaking(
            Rule::ChangedErrorType,
            format!(
                "job `{name}` now fails with the application error `{}`",
                checker.new.type_def(b).schema_name
            ),
            Spot::new(old.span, "no application error here"),
            Spot::new(new.span, "`Result<_, E>` now"),
            &dirs(&[OldClientNewWorker]),
            Some("old clients cannot read the error: add a new job instead".into()),
        ),
        (Some(a), None) => checker.breaking(
            Rule::ChangedErrorType,
            format!(
                "job `{name}` no longer fails with the application error `{}`",
                checker.old.type_def(a).schema_name
            ),
            Spot::new(old.span, "`Result<_, E>` here"),
            Spot::new(new.span, "no application error now"),
            &dirs(&[NewClientOldWorker, QueuedBeforeDeploy]),
            Some("new clients cannot read the errors old workers still send".into()),
        ),
    }

    // `#[backoff]` is not compared: only workers read it, each from its own
    // build, and nothing about it travels in a message.
    let defaults = [
        (
            Rule::ChangedTimeout,
            "timeout_ms",
            old.timeout_ms,
            new.timeout_ms,
            "old clients keep their old default deadline until they are rebuilt",
        ),
        (
            Rule::ChangedAttempts,
            "attempts",
            old.attempts.map(u64::from),
            new.attempts.map(u64::from),
            "messages already queued, and old clients, keep the old limit",
        ),
    ];
    for (rule, attribute, before, after, hint) in defaults {
        if before == after {
            continue;
        }
        let text = |value: Option<u64>| match value {
            Some(n) => format!("`#[{attribute} = {n}]`"),
            None => "the default".to_string(),
        };
        checker.findings.push(Change {
            rule,
            severity: Severity::Warning,
            message: format!(
                "job `{name}`: `{attribute}` changed from {} to {}",
                text(before),
                text(after)
            ),
            old: Spot::new(old.span, text(before)),
            new: Spot::new(new.span, text(after)),
            breaks: BTreeSet::new(),
            hint: Some(hint.to_string()),
        });
    }
}

/// The services of the files asked for (not of the files they import).
fn services(schema: &Schema) -> Vec<&Service> {
    schema
        .roots
        .iter()
        .flat_map(|&id| schema.module(id).services.iter())
        .collect()
}

/// The first position of the first root file: where "not in this schema" points.
fn start_of(schema: &Schema) -> Span {
    let file = schema
        .roots
        .first()
        .map(|&id| schema.module(id).file)
        .unwrap_or_else(|| schema.modules[0].file);
    let start = Pos { line: 1, col: 0 };
    Span {
        file,
        start,
        end: start,
    }
}

fn same_jobs(old: &Service, new: &Service) -> bool {
    let names = |s: &Service| {
        let mut names: Vec<String> = s.jobs.iter().map(|j| j.wire.clone()).collect();
        names.sort();
        names
    };
    !old.jobs.is_empty() && names(old) == names(new)
}

/// A job's parameters and result as text, to recognise a renamed job.
fn signature(schema: &Schema, job: &Job) -> String {
    let params: Vec<String> = job
        .params
        .iter()
        .map(|p| format!("{}: {}", p.wire, ty_text(schema, &p.ty)))
        .collect();
    let returns = match &job.returns {
        Returns::Nothing => String::new(),
        Returns::Value(ty) => ty_text(schema, ty),
        Returns::Result { ok, err } => format!(
            "Result<{}, {}>",
            ty_text(schema, ok),
            schema.type_def(*err).schema_name
        ),
    };
    format!("({}) -> {returns}", params.join(", "))
}

fn answer(returns: &Returns) -> Option<&Ty> {
    match returns {
        Returns::Nothing => None,
        Returns::Value(ty) | Returns::Result { ok: ty, .. } => Some(ty),
    }
}

fn app_error(returns: &Returns) -> Option<TypeRef> {
    match returns {
        Returns::Result { err, .. } => Some(*err),
        _ => None,
    }
}

fn dirs(list: &[Direction]) -> BTreeSet<Direction> {
    list.iter().copied().collect()
}
