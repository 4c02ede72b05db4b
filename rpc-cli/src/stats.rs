//! `rpc stats`: how each service's queue stands right now — jobs queued,
//! leased, dead-lettered, the workers and how long each has been quiet, the
//! age of the oldest lease. A table for people, `--format json` for scripts.
//!
//! The figures come from [`rpc_runtime::Inspector`], which only reads; `rpc
//! top` shows the same ones refreshed, with rates. A sharded service is one
//! line, its figures summed over its shards (SHARDS says how many);
//! `--shards` adds a line per shard under it, where a hot or stuck shard
//! shows. A service with rate limits gets a line per limit: the limit,
//! starts in the last second, calls waiting for their turn, and the
//! starts allowed and turns given in all (`rate_limits` in JSON, left out
//! for a service without limits).
//!
//! Priorities and group keys: a service with calls waiting at a priority
//! other than the default gets a line of its lanes, how many wait at each
//! (`lanes` in JSON, always); one with group keys gets a line for each of
//! its busiest keys, at most ten, with the calls running and parked
//! (`group_keys` in JSON, left out for a service without), found in a
//! look at no more than 1,000 keys, which the output says when it stopped
//! there.

use clap::Args;
use rpc_runtime::inspect::human_time::duration;
use rpc_runtime::inspect::shards::ShardFigures;
use rpc_runtime::inspect::{
    any_other_lane, BusyGroupKeys, GroupKeyLoad, LaneDepth, ServiceRateLimit, ServiceStats,
};
use rpc_runtime::Inspector;

use crate::failure::Failure;
use crate::output_format::FormatArg;
use crate::table::{Align, Table};

/// `rpc stats [SERVICE...] [--format table|json]`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Services to show; default: every service with a queue under the prefix.
    pub services: Vec<String>,
    /// Also show each shard of a sharded service: queued, leased, scheduled, dead.
    #[arg(long)]
    pub shards: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

pub async fn run(url: &str, prefix: &str, args: StatsArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let stats = collect(&inspector, prefix, &args.services).await?;
    let live = live_workers(&inspector, &stats).await?;
    let mut per_shard = std::collections::BTreeMap::new();
    if args.shards {
        for s in &stats {
            per_shard.insert(
                s.service.clone(),
                inspector.shard_figures(&s.service).await?,
            );
        }
    }
    // Every service's limits in one pass, or the named services' each.
    let mut limits = if args.services.is_empty() {
        inspector.every_rate_limit().await?
    } else {
        std::collections::BTreeMap::new()
    };
    for s in &stats {
        if !limits.contains_key(&s.service) {
            let listed = if args.services.is_empty() {
                Vec::new()
            } else {
                inspector.rate_limits(&s.service).await?
            };
            limits.insert(s.service.clone(), listed);
        }
    }
    let groups = group_keys(&inspector, &args.services, &stats).await?;
    if args.format.is_json() {
        let rows: Vec<_> = stats
            .iter()
            .map(|s| WithLive {
                stats: s,
                live_workers: live[&s.service],
                per_shard: per_shard.get(&s.service),
                rate_limits: &limits[&s.service],
                group_keys: groups.get(&s.service),
            })
            .collect();
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| Failure::cannot("write the stats as JSON", e))?;
        crate::outln!("{json}");
    } else if stats.is_empty() {
        let stream = rpc_protocol::Keys::new(prefix).jobs("Service");
        eprintln!("no queues under the prefix `{prefix}` (no stream {stream})");
    } else {
        let notes = Notes {
            per_shard: &per_shard,
            limits: &limits,
            groups: &groups,
        };
        crate::out!("{}", table(&stats, &live, &notes));
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
) -> Result<Vec<ServiceStats>, Failure> {
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
                let known = crate::known_service::known(inspector).await?;
                return Err(crate::known_service::unknown(&service, prefix, &known));
            }
        }
    }
    Ok(out)
}

/// A service's figures with its live workers (from their heartbeats).
#[derive(serde::Serialize)]
struct WithLive<'a> {
    #[serde(flatten)]
    stats: &'a ServiceStats,
    live_workers: u64,
    /// With `--shards`: each shard's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    per_shard: Option<&'a Vec<ShardFigures>>,
    /// The service's rate limits with state on the broker, if any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rate_limits: &'a [ServiceRateLimit],
    /// Its busiest group keys, if it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_keys: Option<&'a BusyGroupKeys>,
}

/// The busiest group keys of each service shown that has any: every
/// service's in one pass, or the named services' each.
async fn group_keys(
    inspector: &Inspector,
    named: &[String],
    stats: &[ServiceStats],
) -> Result<std::collections::BTreeMap<String, BusyGroupKeys>, Failure> {
    let mut all = if named.is_empty() {
        inspector.every_busy_group_key().await?
    } else {
        let mut each = std::collections::BTreeMap::new();
        for s in stats {
            each.insert(
                s.service.clone(),
                inspector.busy_group_keys(&s.service).await?,
            );
        }
        each
    };
    all.retain(|_, g| !g.keys.is_empty() || g.capped);
    Ok(all)
}

/// What `rpc stats` notes under a service's line besides its consumers.
struct Notes<'a> {
    per_shard: &'a std::collections::BTreeMap<String, Vec<ShardFigures>>,
    limits: &'a std::collections::BTreeMap<String, Vec<ServiceRateLimit>>,
    groups: &'a std::collections::BTreeMap<String, BusyGroupKeys>,
}

/// How many workers with a live heartbeat serve each service shown.
pub async fn live_workers(
    inspector: &Inspector,
    stats: &[ServiceStats],
) -> Result<std::collections::BTreeMap<String, u64>, Failure> {
    let services: Vec<String> = stats.iter().map(|s| s.service.clone()).collect();
    Ok(inspector.live_worker_counts(&services).await?)
}

/// The human table: one line per service (WORKERS: live heartbeats), then
/// one per shard with `--shards`, one of its priority lanes when any but
/// the default has calls, one per rate limit, one per busy group key, then
/// one per consumer of its group(s).
fn table(
    stats: &[ServiceStats],
    live: &std::collections::BTreeMap<String, u64>,
    notes: &Notes<'_>,
) -> Table {
    let mut table = Table::new(&[
        ("SERVICE", Align::Left),
        ("SHARDS", Align::Right),
        ("QUEUED", Align::Right),
        ("LEASED", Align::Right),
        ("DEAD", Align::Right),
        ("WORKERS", Align::Right),
        ("OLDEST LEASE", Align::Right),
    ]);
    for s in stats {
        table.row([
            s.service.clone(),
            s.shards.to_string(),
            s.queued.to_string(),
            s.leased.to_string(),
            s.dead_letters.to_string(),
            live[&s.service].to_string(),
            s.oldest_leased_age.map_or("-".to_owned(), duration),
        ]);
        for f in notes.per_shard.get(&s.service).into_iter().flatten() {
            let oldest = f.oldest_leased_age_ms.map_or(String::new(), |ms| {
                format!(
                    ", oldest lease {}",
                    duration(std::time::Duration::from_millis(ms))
                )
            });
            table.note(&format!(
                "shard {} ({}): {} queued, {} leased, {} scheduled, {} dead, {} consumers{oldest}",
                f.shard, f.queue, f.queued, f.leased, f.scheduled, f.dead_letters, f.consumers
            ));
        }
        if any_other_lane(&s.lanes) {
            table.note(&lanes_line(&s.lanes));
        }
        for limit in notes.limits.get(&s.service).into_iter().flatten() {
            table.note(&rate_limit_line(limit));
        }
        if let Some(groups) = notes.groups.get(&s.service) {
            for key in &groups.keys {
                table.note(&group_key_line(key));
            }
            if groups.capped {
                table.note(&format!(
                    "group keys: the look stopped after {} keys; busier ones may exist",
                    groups.visited
                ));
            }
        }
        for c in &s.consumers {
            let inactive = c.inactive.map_or(String::new(), |d| {
                format!(", last read {} ago", duration(d))
            });
            table.note(&format!(
                "consumer {}: {} leased, idle {}{inactive}",
                c.name,
                c.pending,
                duration(c.idle)
            ));
        }
    }
    table
}

/// One rate limit, as `rpc stats` notes it under its service.
fn rate_limit_line(limit: &ServiceRateLimit) -> String {
    let of = match &limit.job {
        Some(job) => format!("job {job}"),
        None => "the service".to_owned(),
    };
    let l = &limit.state;
    format!(
        "rate limit {} ({of}): {} started in the last second, {} waiting, {} allowed, {} waited",
        l.rate.as_deref().unwrap_or("?"),
        l.last_second,
        l.waiting,
        l.allowed,
        l.waited
    )
}

/// A service's priority lanes, most urgent first: `priority lanes: 1: 4,
/// 2: 0, 3 (default): 7, 4: unreadable, 5: 0`.
fn lanes_line(lanes: &[LaneDepth]) -> String {
    let each: Vec<String> = lanes
        .iter()
        .map(|l| {
            let default = if l.priority == rpc_protocol::priority::DEFAULT {
                " (default)"
            } else {
                ""
            };
            let depth = match (l.unreadable, l.queued) {
                (true, 0) => "unreadable".to_owned(),
                (true, n) => format!("{n} + unreadable"),
                (false, n) => n.to_string(),
            };
            format!("{}{default}: {depth}", l.priority)
        })
        .collect();
    format!("priority lanes (queued): {}", each.join(", "))
}

/// One busy group key, as `rpc stats` notes it under its service.
fn group_key_line(k: &GroupKeyLoad) -> String {
    let count = |n: Option<u64>| n.map_or("unreadable".to_owned(), |n| n.to_string());
    format!(
        "group key {} (job {}): {} running, {} waiting",
        k.key,
        k.job,
        count(k.running),
        count(k.waiting)
    )
}
