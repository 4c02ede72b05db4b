//! `rpc stats`: how each service's queue stands right now — jobs queued,
//! leased, dead-lettered, the workers and how long each has been quiet, the
//! age of the oldest lease. A table for people, `--json` for scripts.
//!
//! The figures come from [`rpc_runtime::Inspector`], which only reads; `rpc
//! top` shows the same ones refreshed, with rates.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use rpc_runtime::inspect::ServiceStats;
use rpc_runtime::{Error, Inspector};

/// `rpc stats [SERVICE...] [--json]`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Services to show; default: every service with a queue under the prefix.
    pub services: Vec<String>,
    /// Print one JSON array (durations in milliseconds) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(url: &str, prefix: &str, args: StatsArgs) -> Result<(), Error> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let stats = collect(&inspector, prefix, &args.services).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&stats).map_err(|e| Error::Codec {
            what: "write the stats as JSON".to_owned(),
            reason: e.to_string(),
        })?;
        println!("{json}");
    } else if stats.is_empty() {
        eprintln!("no queues under the prefix `{prefix}` (no stream {prefix}:{{Service}}:jobs)");
    } else {
        print!("{}", table(&stats));
    }
    Ok(())
}

/// The stats of the named services, or of every service found when none is
/// named. A named service without a queue is an error (a typo must not look
/// like an idle queue); one found by the scan that vanished since is skipped.
pub async fn collect(
    inspector: &Inspector,
    prefix: &str,
    named: &[String],
) -> Result<Vec<ServiceStats>, Error> {
    let services = if named.is_empty() {
        inspector.services().await?
    } else {
        named.to_vec()
    };
    let mut out = Vec::with_capacity(services.len());
    for service in services {
        match inspector.service_stats(&service).await? {
            Some(stats) => out.push(stats),
            None if named.is_empty() => {}
            None => {
                let known = inspector.services().await?;
                return Err(unknown_service(&service, prefix, &known));
            }
        }
    }
    Ok(out)
}

fn unknown_service(service: &str, prefix: &str, known: &[String]) -> Error {
    let known = if known.is_empty() {
        "there are none".to_owned()
    } else {
        format!("there are: {}", known.join(", "))
    };
    Error::Codec {
        what: format!("find the service `{service}`"),
        reason: format!(
            "no queue {} under the prefix `{prefix}` ({known}; is --prefix right?)",
            rpc_protocol::Keys::new(prefix).jobs(service)
        ),
    }
}

/// The human table: one line per service, then one per worker under it.
fn table(stats: &[ServiceStats]) -> String {
    let header = [
        "SERVICE",
        "QUEUED",
        "LEASED",
        "DEAD",
        "WORKERS",
        "OLDEST LEASE",
    ];
    let rows: Vec<[String; 6]> = stats
        .iter()
        .map(|s| {
            [
                s.service.clone(),
                s.queued.to_string(),
                s.leased.to_string(),
                s.dead_letters.to_string(),
                s.consumers.len().to_string(),
                s.oldest_leased_age.map_or("-".to_owned(), human),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6]| {
        let _ = write!(out, "{:<w$}", cells[0], w = widths[0]);
        for (cell, width) in cells[1..].iter().zip(&widths[1..]) {
            let _ = write!(out, "  {cell:>width$}");
        }
        out.push('\n');
    };
    line(&mut out, header);
    for (s, row) in stats.iter().zip(&rows) {
        line(&mut out, row.each_ref().map(String::as_str));
        for c in &s.consumers {
            let inactive = c
                .inactive
                .map_or(String::new(), |d| format!(", last read {} ago", human(d)));
            let _ = writeln!(
                out,
                "  worker {}: {} leased, idle {}{inactive}",
                c.name,
                c.pending,
                human(c.idle)
            );
        }
    }
    out
}

/// A duration as a person reads it: `850ms`, `4.2s`, `3m05s`, `2h10m`, `3d04h`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 600)), "2h10m");
        assert_eq!(human(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d04h");
    }
}
