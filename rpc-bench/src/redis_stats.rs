//! What Redis itself spent on a stretch of the bench: its CPU time (`INFO
//! cpu`, `used_cpu_user` + `used_cpu_sys`, the whole server process) and
//! the commands it ran (`INFO commandstats`, commands run by scripts
//! included), read before and after and divided by the calls or jobs.
//!
//! It also counts Redis's reads of client sockets (`INFO stats`,
//! `total_reads_processed`): each pass of its event loop costs a few
//! system calls, on this kind of VM more than a small command, so reads
//! per job often explain a difference in CPU that commands do not.
//!
//! Redis CPU per job is what decides how many jobs one Redis core carries,
//! and commands per job say where it goes; both are read over the same
//! connection-free window as the figure they belong to, so a background
//! command (a worker's lifecycle poll, a heartbeat) is charged to whatever
//! ran at the time, as it is in production.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

/// Commands only the bench itself sends while measuring (`INFO`, the
/// drain polls' `XLEN` and `XINFO`, the placement checks' `XINFO`): not
/// charged to either side.
const BENCH_OWN: [&str; 4] = ["info", "xlen", "xinfo|groups", "xinfo|stream"];

/// One reading of Redis's counters.
#[derive(Debug, Clone, Default)]
pub struct RedisStats {
    /// `used_cpu_user` + `used_cpu_sys`, in seconds.
    pub cpu_s: f64,
    /// Calls per command name (lower case, as `INFO` spells them).
    pub calls: BTreeMap<String, u64>,
    /// Microseconds Redis spent in each command (`usec`).
    pub usec: BTreeMap<String, u64>,
    /// Reads from client sockets (`total_reads_processed`).
    pub reads: u64,
}

impl RedisStats {
    /// Reads the counters now.
    pub async fn read(con: &mut MultiplexedConnection) -> Result<RedisStats, String> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .arg("stats")
            .arg("commandstats")
            .query_async(con)
            .await
            .map_err(|e| format!("INFO: {e}"))?;
        Ok(RedisStats::parse(&info))
    }

    /// The counters in an `INFO` answer.
    pub fn parse(info: &str) -> RedisStats {
        let mut stats = RedisStats::default();
        for line in info.lines().map(str::trim) {
            if let Some(v) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                stats.cpu_s += v.parse::<f64>().unwrap_or(0.0);
            } else if let Some(v) = line.strip_prefix("total_reads_processed:") {
                stats.reads = v.parse().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, fields)) = rest.split_once(':') else {
                    continue;
                };
                let field = |key: &str| {
                    fields
                        .split(',')
                        .find_map(|f| f.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                stats.calls.insert(name.to_owned(), field("calls="));
                stats.usec.insert(name.to_owned(), field("usec="));
            }
        }
        stats
    }

    /// What Redis did between `self` (earlier) and `later`, per unit of
    /// work (`per` calls or jobs).
    pub fn per(&self, later: &RedisStats, per: u64) -> RedisCost {
        let n = per.max(1) as f64;
        let mut commands = BTreeMap::new();
        let mut command_us = BTreeMap::new();
        for (name, &after) in &later.calls {
            let before = self.calls.get(name).copied().unwrap_or(0);
            // The bench's own readings and polls do not count.
            if BENCH_OWN.contains(&name.as_str()) || after <= before {
                continue;
            }
            commands.insert(name.clone(), (after - before) as f64 / n);
            let usec = |s: &RedisStats| s.usec.get(name).copied().unwrap_or(0);
            let spent = usec(later).saturating_sub(usec(self));
            command_us.insert(name.clone(), spent as f64 / n);
        }
        RedisCost {
            cpu_us: (later.cpu_s - self.cpu_s).max(0.0) * 1e6 / n,
            reads: later.reads.saturating_sub(self.reads) as f64 / n,
            commands,
            command_us,
        }
    }
}

/// Redis's work per call or per job over one stretch.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedisCost {
    /// CPU time of the redis-server process, in µs.
    pub cpu_us: f64,
    /// Reads from client sockets (passes of the event loop that found
    /// something to read).
    pub reads: f64,
    /// Commands run, by name (scripts' own commands included).
    pub commands: BTreeMap<String, f64>,
    /// Redis's time in each command (`INFO commandstats` `usec`), in µs;
    /// a script's time includes the commands it runs, which are counted
    /// under their own names too.
    pub command_us: BTreeMap<String, f64>,
}

impl RedisCost {
    /// The work of several servers (a Cluster's masters) over the same
    /// stretch and units, added up.
    pub fn sum<'a>(costs: impl IntoIterator<Item = &'a RedisCost>) -> RedisCost {
        let mut total = RedisCost::default();
        for cost in costs {
            total.cpu_us += cost.cpu_us;
            total.reads += cost.reads;
            for (name, n) in &cost.commands {
                *total.commands.entry(name.clone()).or_default() += n;
            }
            for (name, us) in &cost.command_us {
                *total.command_us.entry(name.clone()).or_default() += us;
            }
        }
        total
    }

    /// Every command per unit, summed.
    pub fn total_commands(&self) -> f64 {
        self.commands.values().sum()
    }

    /// `xadd 1.00 (2.10 µs), ...`, the commands per unit (and Redis's time
    /// in them per unit) that add up to at
    /// least 0.005 each, the most frequent first.
    pub fn describe(&self) -> String {
        let mut by_count: Vec<_> = self.commands.iter().filter(|(_, &n)| n >= 0.005).collect();
        by_count.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        by_count
            .iter()
            .map(|(name, n)| {
                let us = self.command_us.get(*name).copied().unwrap_or(0.0);
                format!("{name} {n:.2} ({us:.2} µs)")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Redis's work over several stretches, pooled: weighted by each
/// stretch's calls or jobs.
#[derive(Debug, Default)]
pub struct CostPool {
    units: u64,
    cpu_us: f64,
    reads: f64,
    commands: BTreeMap<String, f64>,
    command_us: BTreeMap<String, f64>,
}

impl CostPool {
    /// Adds a stretch of `units` calls or jobs that cost `cost` each.
    pub fn add(&mut self, cost: &RedisCost, units: u64) {
        let w = units as f64;
        self.units += units;
        self.cpu_us += cost.cpu_us * w;
        self.reads += cost.reads * w;
        for (name, n) in &cost.commands {
            *self.commands.entry(name.clone()).or_default() += n * w;
        }
        for (name, us) in &cost.command_us {
            *self.command_us.entry(name.clone()).or_default() += us * w;
        }
    }

    /// The cost per call or job over every stretch added.
    pub fn cost(&self) -> RedisCost {
        let n = self.units.max(1) as f64;
        let per = |m: &BTreeMap<String, f64>| m.iter().map(|(k, v)| (k.clone(), v / n)).collect();
        RedisCost {
            cpu_us: self.cpu_us / n,
            reads: self.reads / n,
            commands: per(&self.commands),
            command_us: per(&self.command_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_command_counts_and_divides_them() {
        let before = RedisStats::parse(
            "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.000000\r\n\
             # Stats\r\ntotal_reads_processed:1000\r\n# Commandstats\r\n\
             cmdstat_xadd:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let after = RedisStats::parse(
            "used_cpu_sys:1.600000\r\nused_cpu_user:2.100000\r\ntotal_reads_processed:1050\r\n\
             cmdstat_xadd:calls=110,usec=220,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_xack:calls=50,usec=20,usec_per_call=0.40,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let cost = before.per(&after, 100);
        assert!((cost.cpu_us - 2_000.0).abs() < 1e-6, "{cost:?}");
        assert_eq!(cost.reads, 0.5);
        assert_eq!(cost.commands.get("xadd"), Some(&1.0));
        assert_eq!(cost.commands.get("xack"), Some(&0.5));
        assert!(!cost.commands.contains_key("info"));
        assert_eq!(cost.total_commands(), 1.5);
        assert_eq!(cost.command_us.get("xadd"), Some(&2.0));
        assert_eq!(cost.describe(), "xadd 1.00 (2.00 µs), xack 0.50 (0.20 µs)");
    }
}
