//! `rpc scheduled SERVICE`: the jobs waiting on a service's schedule —
//! delayed calls and retries waiting for their backoff — with when each is
//! due and which attempt it is, soonest first. A table for people,
//! `--json` for scripts. Read-only, through [`rpc_runtime::Inspector`].

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use clap::Args;
use rpc_runtime::Error;

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

pub async fn run(url: &str, prefix: &str, args: ScheduledArgs) -> Result<(), Error> {
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
    let now = rpc_protocol::time::unix_ms(SystemTime::now());
    let mut out = format!(
        "{:<34} {:>12} {:>8}  {}\n",
        "ID", "DUE IN", "ATTEMPT", "JOB"
    );
    for job in &jobs {
        let due_in = if job.due_ms > now {
            format!("{:.1?}", Duration::from_millis(job.due_ms - now))
        } else {
            "due".to_owned()
        };
        let attempt = job.attempt.map_or("?".to_owned(), |a| a.to_string());
        let name = job.job.as_deref().unwrap_or("(unreadable)");
        let _ = writeln!(out, "{:<34} {:>12} {:>8}  {name}", job.id, due_in, attempt);
    }
    print!("{out}");
    Ok(())
}
