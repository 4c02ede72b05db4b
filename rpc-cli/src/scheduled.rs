//! `rpc scheduled SERVICE`: the jobs waiting on a service's schedule —
//! delayed calls and retries waiting for their backoff — with when each is
//! due and which attempt it is, soonest first. A table for people,
//! `--json` for scripts. Read-only, through [`rpc_runtime::Inspector`].

use clap::Args;
use rpc_runtime::inspect::human_time::due_ms;

use crate::failure::Failure;
use crate::table::{Align, Table};

/// `rpc scheduled SERVICE [--max N] [--json]`.
#[derive(Args, Debug)]
pub struct ScheduledArgs {
    /// The service.
    pub service: String,
    /// Show at most this many, soonest first.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// One JSON object a line (`id`, `due_ms`, `attempt`, `job`, `retry`).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(url: &str, prefix: &str, args: ScheduledArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let Some(jobs) = inspector.scheduled(&args.service, args.max).await? else {
        let known = inspector.services().await?;
        return Err(crate::lifecycle::no_such_service(&args.service, &known));
    };
    if args.json {
        for job in &jobs {
            let line = serde_json::json!({
                "id": job.id,
                "due_ms": job.due_ms,
                "attempt": job.attempt,
                "job": job.job,
                "retry": job.attempt.is_some_and(|a| a > 1),
            });
            println!("{line}");
        }
        return Ok(());
    }
    if jobs.is_empty() {
        eprintln!("nothing is scheduled for {}", args.service);
        return Ok(());
    }
    // Due times are on Redis's clock: measured against it, not this machine's.
    let now = inspector.broker_time_ms().await?;
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("DUE", Align::Left),
        ("ATTEMPT", Align::Right),
        ("JOB", Align::Left),
    ]);
    for job in &jobs {
        table.row([
            job.id.clone(),
            due_ms(job.due_ms, now),
            job.attempt.map_or("?".to_owned(), |a| a.to_string()),
            job.job.clone().unwrap_or_else(|| "(unreadable)".to_owned()),
        ]);
    }
    print!("{table}");
    Ok(())
}
