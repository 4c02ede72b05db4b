//! The backlog check's findings, grouped per service and job, and their two
//! renderings: a text report for the operator, JSON for CI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::rules::{Reason, Rule, Verdict};

/// Where in Redis a message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// On the schedule: a delayed call or a retry waiting out its backoff
    /// (it will be queued for new workers too).
    Scheduled,
    /// On the jobs stream, not yet delivered.
    Queued,
    /// Delivered and not acked: it will be delivered again, to new workers too.
    Leased,
    /// On the dead-letter stream (what a replay would send to new workers).
    DeadLetter,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::Scheduled => "scheduled",
            Place::Queued => "queued",
            Place::Leased => "leased",
            Place::DeadLetter => "dead letter",
        }
    }
}

/// The whole check.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The schema file checked against.
    pub schema: String,
    /// The Redis read, without its password.
    pub url: String,
    pub prefix: String,
    pub checked: usize,
    pub rejected: usize,
    /// The schema's services, in name order.
    pub services: Vec<ServiceReport>,
    /// Services with a queue under the prefix that the schema does not have.
    pub services_not_in_schema: Vec<String>,
    /// Lists cut short at `--max`.
    pub truncated: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub checked: usize,
    pub rejected: usize,
    /// Per job named by the messages (`Service.job`), in name order;
    /// unreadable messages under `(unreadable)`.
    pub jobs: Vec<JobReport>,
}

#[derive(Debug, Serialize)]
pub struct JobReport {
    pub job: String,
    pub checked: usize,
    pub rejected: usize,
    pub rejections: Vec<Rejection>,
}

#[derive(Debug, Serialize)]
pub struct Rejection {
    #[serde(rename = "where")]
    pub place: Place,
    /// The stream entry id (queue or dead-letter stream), or the call id
    /// for a scheduled job (its member of the schedule).
    pub entry_id: String,
    pub call_id: Option<String>,
    pub rule: Rule,
    pub reasons: Vec<Reason>,
}

/// The job group of a message that names none.
const UNREADABLE: &str = "(unreadable)";

/// Groups one service's verdicts by job.
pub fn service_report(service: &str, verdicts: Vec<(Place, String, Verdict)>) -> ServiceReport {
    let mut jobs: BTreeMap<String, JobReport> = BTreeMap::new();
    for (place, entry_id, verdict) in verdicts {
        let name = verdict.job.unwrap_or_else(|| UNREADABLE.to_owned());
        let job = jobs.entry(name.clone()).or_insert_with(|| JobReport {
            job: name,
            checked: 0,
            rejected: 0,
            rejections: Vec::new(),
        });
        job.checked += 1;
        if let Some((rule, reasons)) = verdict.rejected {
            job.rejected += 1;
            job.rejections.push(Rejection {
                place,
                entry_id,
                call_id: verdict.call_id,
                rule,
                reasons,
            });
        }
    }
    let jobs: Vec<JobReport> = jobs.into_values().collect();
    ServiceReport {
        service: service.to_owned(),
        checked: jobs.iter().map(|j| j.checked).sum(),
        rejected: jobs.iter().map(|j| j.rejected).sum(),
        jobs,
    }
}

impl Report {
    /// The text for people: a header, each service and its jobs with their
    /// rejected messages, then what was not checked and a total.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Backlog of {} (prefix `{}`) against {}",
            self.url, self.prefix, self.schema
        );
        for s in &self.services {
            out.push('\n');
            if s.checked == 0 {
                let _ = writeln!(
                    out,
                    "{}: nothing scheduled, queued, leased or dead-lettered",
                    s.service
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{}: {} checked, {} would be rejected",
                s.service, s.checked, s.rejected
            );
            for job in &s.jobs {
                let _ = writeln!(
                    out,
                    "  {}: {} checked, {} rejected",
                    job.job, job.checked, job.rejected
                );
                for r in &job.rejections {
                    let call = r.call_id.as_deref().unwrap_or("-");
                    let _ = writeln!(
                        out,
                        "    {} {} call {}: {}",
                        r.place.label(),
                        r.entry_id,
                        call,
                        r.rule.label()
                    );
                    for reason in &r.reasons {
                        let at = match (r.rule, reason.path.as_str()) {
                            (Rule::InvalidParams, path) => format!("params{path}: "),
                            (_, "") => String::new(),
                            (_, path) => format!("{path}: "),
                        };
                        let _ = writeln!(out, "      {at}{}", reason.message);
                    }
                }
            }
        }
        out.push('\n');
        if !self.services_not_in_schema.is_empty() {
            let _ = writeln!(
                out,
                "Not in the schema, not checked: {}",
                self.services_not_in_schema.join(", ")
            );
        }
        for cut in &self.truncated {
            let _ = writeln!(out, "Cut short: {cut}");
        }
        let _ = writeln!(
            out,
            "{} of {} messages would be rejected by the new schema",
            self.rejected, self.checked
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_counted_per_job_and_only_rejections_listed() {
        let ok = |job: &str| Verdict {
            job: Some(job.to_owned()),
            call_id: Some("c".to_owned()),
            rejected: None,
        };
        let bad = Verdict {
            job: None,
            call_id: None,
            rejected: Some((
                Rule::Unreadable,
                vec![Reason {
                    path: String::new(),
                    message: "not JSON".to_owned(),
                }],
            )),
        };
        let report = service_report(
            "S",
            vec![
                (Place::Queued, "1-0".to_owned(), ok("S.b")),
                (Place::Leased, "2-0".to_owned(), ok("S.a")),
                (Place::DeadLetter, "3-0".to_owned(), bad),
            ],
        );
        assert_eq!((report.checked, report.rejected), (3, 1));
        let names: Vec<&str> = report.jobs.iter().map(|j| j.job.as_str()).collect();
        assert_eq!(names, [UNREADABLE, "S.a", "S.b"]);
        assert_eq!(report.jobs[0].rejections[0].place, Place::DeadLetter);
        assert!(report.jobs[1].rejections.is_empty());
    }
}
