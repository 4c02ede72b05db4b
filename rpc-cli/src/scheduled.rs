//! `rpc scheduled [SERVICE]`: the jobs waiting on a schedule — delayed
//! calls and retries waiting for their backoff — with when each is due and
//! which attempt it is, soonest first, for one service or every one. A
//! table for people, `--format json` for scripts. Read-only, through
//! [`rpc_runtime::Inspector`].

use clap::Args;
use rpc_runtime::inspect::human_time::due_ms;
use rpc_runtime::inspect::ScheduledJob;

use crate::failure::Failure;
use crate::output_format::FormatArg;
use crate::table::{Align, Table};

/// `rpc scheduled [SERVICE] [--max N] [--format table|json]`.
#[derive(Args, Debug)]
pub struct ScheduledArgs {
    /// The service; default: every service.
    pub service: Option<String>,
    /// Show at most this many per service, soonest first.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    #[command(flatten)]
    pub format: FormatArg,
}

pub async fn run(url: &str, prefix: &str, args: ScheduledArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let services = match &args.service {
        Some(service) => {
            crate::known_service::check(&inspector, prefix, service).await?;
            vec![service.clone()]
        }
        None => inspector.services().await?,
    };
    let mut jobs: Vec<(String, ScheduledJob)> = Vec::new();
    for service in services {
        // A service that vanished since it was listed has nothing scheduled.
        let scheduled = inspector.scheduled(&service, args.max).await?;
        jobs.extend(
            scheduled
                .into_iter()
                .flatten()
                .map(|j| (service.clone(), j)),
        );
    }
    if args.format.is_json() {
        for (service, job) in &jobs {
            let line = serde_json::json!({
                "service": service,
                "id": job.id,
                "due_ms": job.due_ms,
                "attempt": job.attempt,
                "job": job.job,
                "retry": job.is_retry(),
            });
            crate::outln!("{line}");
        }
        return Ok(());
    }
    if jobs.is_empty() {
        match &args.service {
            Some(service) => eprintln!("nothing is scheduled for {service}"),
            None => eprintln!("nothing is scheduled under the prefix `{prefix}`"),
        }
        return Ok(());
    }
    // Soonest first across services, as within one.
    jobs.sort_by_key(|(_, job)| job.due_ms);
    // Due times are on Redis's clock: measured against it, not this machine's.
    let now = inspector.broker_time_ms().await?;
    let mut table = Table::new(&[
        ("SERVICE", Align::Left),
        ("ID", Align::Left),
        ("DUE", Align::Left),
        ("ATTEMPT", Align::Right),
        ("JOB", Align::Left),
    ]);
    for (service, job) in &jobs {
        table.row([
            service.clone(),
            job.id.clone(),
            due_ms(job.due_ms, now),
            job.attempt.map_or("?".to_owned(), |a| a.to_string()),
            job.job.clone().unwrap_or_else(|| "(unreadable)".to_owned()),
        ]);
    }
    crate::out!("{table}");
    Ok(())
}
