//! What Redis itself spent on a stretch of the bench: its CPU time (`INFO
//! cpu`, `used_cpu_user` + `used_cpu_sys`, the whole server process) and
//! the commands it ran (`INFO commandstats`, commands run by scripts
//! included), read before and after and divided by the calls or jobs.
//!
//! Redis CPU per job is what decides how many jobs one Redis core carries,
//! and commands per job say where it goes; both are read over the same
//! connection-free window as the figure they belong to, so a background
//! command (a worker's lifecycle poll, a heartbeat) is charged to whatever
//! ran at the time, as it is in production.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

/// Commands only the bench itself sends while measuring (`INFO`, and the
/// drain polls' `XLEN` and `XINFO`): not charged to either side.
const BENCH_OWN: [&str; 3] = ["info", "xlen", "xinfo|groups"];

/// One reading of Redis's counters.
#[derive(Debug, Clone, Default)]
pub struct RedisStats {
    /// `used_cpu_user` + `used_cpu_sys`, in seconds.
    pub cpu_s: f64,
    /// Calls per command name (lower case, as `INFO` spells them).
    pub calls: BTreeMap<String, u64>,
}

impl RedisStats {
    /// Reads the counters now.
    pub async fn read(con: &mut MultiplexedConnection) -> Result<RedisStats, String> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
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
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, fields)) = rest.split_once(':') else {
                    continue;
                };
                let calls = fields
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                stats.calls.insert(name.to_owned(), calls);
            }
        }
        stats
    }

    /// What Redis did between `self` (earlier) and `later`, per unit of
    /// work (`per` calls or jobs).
    pub fn per(&self, later: &RedisStats, per: u64) -> RedisCost {
        let n = per.max(1) as f64;
        let mut commands = BTreeMap::new();
        for (name, &after) in &later.calls {
            let before = self.calls.get(name).copied().unwrap_or(0);
            // The bench's own readings and polls do not count.
            if BENCH_OWN.contains(&name.as_str()) || after <= before {
                continue;
            }
            commands.insert(name.clone(), (after - before) as f64 / n);
        }
        RedisCost {
            cpu_us: (later.cpu_s - self.cpu_s).max(0.0) * 1e6 / n,
            commands,
        }
    }
}

/// Redis's work per call or per job over one stretch.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedisCost {
    /// CPU time of the redis-server process, in µs.
    pub cpu_us: f64,
    /// Commands run, by name (scripts' own commands included).
    pub commands: BTreeMap<String, f64>,
}

impl RedisCost {
    /// Every command per unit, summed.
    pub fn total_commands(&self) -> f64 {
        self.commands.values().sum()
    }

    /// `xadd 1.00, xack 1.00, ...`, the commands per unit that add up to at
    /// least 0.005 each, the most frequent first.
    pub fn describe(&self) -> String {
        let mut by_count: Vec<_> = self.commands.iter().filter(|(_, &n)| n >= 0.005).collect();
        by_count.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        by_count
            .iter()
            .map(|(name, n)| format!("{name} {n:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_command_counts_and_divides_them() {
        let before = RedisStats::parse(
            "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.000000\r\n# Commandstats\r\n\
             cmdstat_xadd:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let after = RedisStats::parse(
            "used_cpu_sys:1.600000\r\nused_cpu_user:2.100000\r\n\
             cmdstat_xadd:calls=110,usec=220,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_xack:calls=50,usec=20,usec_per_call=0.40,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let cost = before.per(&after, 100);
        assert!((cost.cpu_us - 2_000.0).abs() < 1e-6, "{cost:?}");
        assert_eq!(cost.commands.get("xadd"), Some(&1.0));
        assert_eq!(cost.commands.get("xack"), Some(&0.5));
        assert!(!cost.commands.contains_key("info"));
        assert_eq!(cost.total_commands(), 1.5);
        assert_eq!(cost.describe(), "xadd 1.00, xack 0.50");
    }
}
