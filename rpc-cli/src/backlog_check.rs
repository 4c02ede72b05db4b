//! `rpc backlog-check --schema NEW.rpc`: before a deploy, would the new
//! schema's workers reject anything already waiting in Redis?
//!
//! Messages outlive deploys: what old clients scheduled (delayed calls,
//! retries waiting out their backoff) or queued, what old workers hold
//! leased (and will hand to new workers when their lease runs out) and what
//! sits dead-lettered (what a replay would send) all meet the new workers.
//! This reads every such message of the schema's services, through
//! [`Inspector`](rpc_runtime::Inspector) (scheduled, queued and leased) and
//! [`Client::dead_letters`](rpc_runtime::Client::dead_letters), judges
//! each by the rules in [`rules`], and reports per service and job which
//! would be rejected and why. It only reads. Over a large backlog, a
//! progress line counts the messages checked (on a terminal's stderr only).
//! A sharded service is checked on every one of its shards' queues (`S`,
//! `S~1`, ...), reported as one service, tokens of shard `k >= 1` marked
//! `~k`.
//!
//! Scheduled is read before queued, and queued before leased, so a message
//! moved on in between is seen twice (checked once when its entry id is the
//! same) rather than missed; one acked meanwhile is missed, but then no new
//! worker will see it either.
//!
//! Exit status, by `rpc`'s rule: 0 nothing would be rejected, 1 something
//! would, 2 a usage error, a schema that does not load, or a Redis that
//! does not answer.

mod report;
mod rules;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rpc_runtime::inspect::shards::mark_token;
use rpc_runtime::Error;

use crate::failure::{ANSWER_NO, COULD_NOT_RUN};
use crate::output_format::Format;
use crate::progress::Progress;
use report::{Place, Report};
use rules::NewSchema;

/// `rpc backlog-check --schema NEW.rpc [--format table|json] [--max N]`.
#[derive(Args, Debug)]
#[command(after_long_help = RULES)]
pub struct BacklogCheckArgs {
    /// The new schema file (`.rpc`; its imports are read too).
    #[arg(long, value_name = "NEW.rpc")]
    schema: PathBuf,
    /// Output format: `table` (a report per service and job; `human` is the
    /// same) or `json` (for CI; see the README, "Machine-readable output").
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// At most this many messages read per service from each of the
    /// schedule, the queue, the leases and the dead letters (a cut is reported).
    #[arg(long, default_value_t = 100_000)]
    max: usize,
}

const RULES: &str = "\
A message would be rejected by the new schema when it is:
  unreadable      not a job message a worker can decode (not a JSON object,
                  a field missing or out of range, a protocol version not spoken)
  unknown job     its service is in the schema but the job is not (or it names
                  another service than the queue it is on)
  invalid params  its params do not validate against the job's request JSON
                  Schema (the reasons name the field: params/b); integers are
                  checked as the worker reads them: within their type's range,
                  and written without a fraction (2.0 is not an i64)

Checked: the schema's services' (every shard of a sharded one) scheduled jobs (delayed calls and retries
waiting out their backoff), queued messages (not yet delivered), leased ones
(delivered, not acked: they will be redelivered, to new workers too) and dead
letters (what a replay would send). Services in Redis that the schema does
not have are named, not checked.

Exit status: 0 nothing would be rejected, 1 something would, 2 usage error,
schema error or Redis unreachable.";

/// Runs the check; the exit status as documented above.
pub async fn main(url: &str, prefix: &str, args: BacklogCheckArgs) -> ExitCode {
    let schema = match NewSchema::load(&args.schema) {
        Ok(schema) => schema,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("error: the schema {} does not load", args.schema.display());
            return ExitCode::from(COULD_NOT_RUN);
        }
    };
    let report = match check(url, prefix, &args, &schema).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(COULD_NOT_RUN);
        }
    };
    match args.format {
        Format::Table => crate::out!("{}", report.render()),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => crate::outln!("{json}"),
            Err(e) => {
                eprintln!("error: write the report as JSON: {e}");
                return ExitCode::from(COULD_NOT_RUN);
            }
        },
    }
    if report.rejected > 0 {
        ExitCode::from(ANSWER_NO)
    } else {
        ExitCode::SUCCESS
    }
}

async fn check(
    url: &str,
    prefix: &str,
    args: &BacklogCheckArgs,
    schema: &NewSchema,
) -> Result<Report, Error> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let client = crate::broker::client(url, prefix).await?;
    let max = args.max;
    let mut services = Vec::new();
    let mut truncated = Vec::new();
    let mut cut = |service: &str, what: &str, read: usize| {
        if read >= max {
            truncated.push(format!(
                "read only the first {max} {what} messages of {service} (raise --max)"
            ));
        }
    };
    let mut progress = Progress::new("checked", None);
    for service in schema.services() {
        let mut verdicts = Vec::new();
        // A sharded service's messages are on every one of its shards'
        // queues; a token is one shard's, so it is shown marked (`~k`).
        for (shard, queue) in inspector.shard_queues(service).await? {
            // This shard's queue alone (`S` itself names every shard).
            let one = inspector.per_queue();
            let mut seen = HashSet::new();
            let scheduled = one.scheduled(&queue, max).await?.unwrap_or_default();
            cut(&queue, "scheduled", scheduled.len());
            progress.add(scheduled.len());
            for job in scheduled {
                let verdict = schema.judge(service, &job.payload);
                verdicts.push((Place::Scheduled, job.id, verdict));
            }
            let queued = one.queued(&queue, max).await?.unwrap_or_default();
            cut(&queue, "queued", queued.len());
            progress.add(queued.len());
            for job in queued {
                let verdict = schema.judge(service, &job.payload);
                seen.insert(job.token.clone());
                verdicts.push((Place::Queued, mark_token(&job.token, shard), verdict));
            }
            let leased = one.leased(&queue, max).await?.unwrap_or_default();
            cut(&queue, "leased", leased.len());
            progress.add(leased.len());
            for job in leased {
                // No payload: acked and deleted since XPENDING listed it.
                let Some(payload) = job.payload else { continue };
                if seen.insert(job.token.clone()) {
                    let verdict = schema.judge(service, &payload);
                    verdicts.push((Place::Leased, mark_token(&job.token, shard), verdict));
                }
            }
            let dead = client.dead_letters(&queue, max).await?;
            cut(&queue, "dead-lettered", dead.len());
            progress.add(dead.len());
            for letter in dead {
                let verdict = schema.judge(service, &letter.payload);
                verdicts.push((Place::DeadLetter, mark_token(&letter.token, shard), verdict));
            }
        }
        services.push(report::service_report(service, verdicts));
    }
    let in_schema: HashSet<&str> = schema.services().collect();
    let services_not_in_schema = inspector
        .services()
        .await?
        .into_iter()
        .filter(|s| !in_schema.contains(s.as_str()))
        .collect();
    progress.finish();
    Ok(Report {
        schema: args.schema.display().to_string(),
        url: inspector.url().to_owned(),
        prefix: prefix.to_owned(),
        checked: services.iter().map(|s| s.checked).sum(),
        rejected: services.iter().map(|s| s.rejected).sum(),
        services,
        services_not_in_schema,
        truncated,
    })
}
