//! `rpc periodic`: the periodic jobs workers enqueue on a schedule, per
//! service: name, schedule, job, when each last ran and when it runs next
//! (measured on Redis's clock). A table for people, `--format json` for scripts.
//!
//! A next run in the past ("overdue") means no worker has enqueued that
//! tick: none that runs the job is up. Values that are not what workers
//! write list as unreadable, with the reason; they never fail the listing.

use std::time::Duration;

use clap::Args;
use rpc_runtime::inspect::human_time::{duration, relative_ms};
use rpc_runtime::periodic::PeriodicState;
use rpc_runtime::Inspector;

use crate::failure::Failure;
use crate::output_format::FormatArg;
use crate::table::{Align, Table};

/// A next run this far in the past is overdue, not merely being enqueued.
const OVERDUE_AFTER_MS: u64 = 1_000;

/// `rpc periodic [SERVICE...] [--format table|json]`.
#[derive(Args, Debug)]
pub struct PeriodicArgs {
    /// Services to show; default: every service with periodic jobs under the prefix.
    pub services: Vec<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

pub async fn run(url: &str, prefix: &str, args: PeriodicArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let states = collect(&inspector, prefix, &args.services).await?;
    if args.format.is_json() {
        let json = serde_json::to_string_pretty(&states)
            .map_err(|e| Failure::cannot("write the periodic jobs as JSON", e))?;
        crate::outln!("{json}");
    } else if states.is_empty() {
        eprintln!(
            "no periodic jobs under the prefix `{prefix}` (no hash {prefix}:{{Service}}:periodic; \
             a worker writes it when it starts with WorkerBuilder::periodic)"
        );
    } else {
        let now = inspector.broker_time_ms().await?;
        crate::out!("{}", table(&states, now));
    }
    Ok(())
}

/// The periodic jobs of the named services, or of every service that has
/// some when none is named. A named service Redis knows nothing of is an
/// error (a typo must not look like a service without periodic jobs).
async fn collect(
    inspector: &Inspector,
    prefix: &str,
    named: &[String],
) -> Result<Vec<PeriodicState>, Failure> {
    let services = if named.is_empty() {
        inspector.periodic_services().await?
    } else {
        named.to_vec()
    };
    let mut out = Vec::new();
    for service in services {
        match inspector.periodic(&service).await? {
            Some(states) => out.extend(states),
            None if named.is_empty() => {}
            None => {
                let known = crate::known_service::known(inspector).await?;
                return Err(crate::known_service::unknown(&service, prefix, &known));
            }
        }
    }
    Ok(out)
}

/// When it last ran, as a person reads it.
fn last_run(last_ms: Option<u64>, now: u64) -> String {
    last_ms.map_or("never".to_owned(), |ms| relative_ms(ms, now))
}

/// When it runs next, as a person reads it; overdue when no worker
/// enqueued it.
fn next_run(next_ms: Option<u64>, now: u64) -> String {
    match next_ms {
        None => "-".to_owned(),
        Some(ms) if ms.saturating_add(OVERDUE_AFTER_MS) < now => {
            format!(
                "overdue {} (no worker?)",
                duration(Duration::from_millis(now - ms))
            )
        }
        Some(ms) if ms <= now => "now".to_owned(),
        Some(ms) => relative_ms(ms, now),
    }
}

/// The human table: one line per periodic job, and one more under a job
/// whose stored values could not all be read.
fn table(states: &[PeriodicState], now: u64) -> Table {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("SERVICE", Align::Left),
        ("SCHEDULE", Align::Left),
        ("JOB", Align::Left),
        ("LAST RUN", Align::Left),
        ("NEXT RUN", Align::Left),
    ]);
    let unknown = || "?".to_owned();
    for s in states {
        table.row([
            s.name.clone(),
            s.service.clone(),
            s.schedule.clone().unwrap_or_else(unknown),
            s.job.clone().unwrap_or_else(unknown),
            last_run(s.last_ms, now),
            next_run(s.next_ms, now),
        ]);
        if let Some(why) = &s.unreadable {
            table.note(&format!("unreadable: {why}"));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_and_next_runs_read_relative_to_the_brokers_clock() {
        let now = 1_000_000;
        assert_eq!(last_run(None, now), "never");
        assert_eq!(last_run(Some(now - 4_200), now), "4.2s ago");
        assert_eq!(last_run(Some(now + 1_000), now), "in 1s");
        assert_eq!(next_run(Some(now + 185_000), now), "in 3m05s");
        assert_eq!(next_run(Some(now - 300), now), "now");
        assert_eq!(
            next_run(Some(now - 65_000), now),
            "overdue 1m05s (no worker?)"
        );
        assert_eq!(next_run(None, now), "-");
    }
}
