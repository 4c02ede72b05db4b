//! The `--shards` mode's report ([`crate::shards`]): a markdown summary
//! and the same figures as JSON.

use serde::Serialize;

use crate::redis_stats::RedisCost;
use crate::report::{Machine, Target};

/// One configuration's measured slice, as it went (the spread between
/// rounds is part of the result).
#[derive(Debug, Clone, Serialize)]
pub struct RoundFigure {
    pub calls_per_s: f64,
    /// Redis CPU per call, every node, µs.
    pub redis_cpu_us: f64,
    /// Commands per call, every node.
    pub commands: f64,
    /// Times per call the nodes' threads were put on a CPU, every node.
    pub wakeups: f64,
}

/// One node's (master's) part of a configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Master {
    /// The node's own URL.
    pub node: String,
    /// Shard queues of the service this node holds.
    pub shards_held: u32,
    /// Whether it holds the client's inbox, where every reply is pushed
    /// (each round's fresh client has it on shard 0's node).
    pub holds_inbox: bool,
    /// Times per call its threads were put on a CPU.
    pub wakeups: f64,
    /// Its share of every node's commands, %.
    pub command_share: f64,
    /// Its share of every node's CPU time, %.
    pub cpu_share: f64,
    /// Its CPU time and commands per call.
    pub redis: RedisCost,
}

/// One shard count's figures, pooled over its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    pub shards: u32,
    pub calls_per_s: f64,
    /// Redis CPU per call, summed over every node, µs.
    pub redis_cpu_us: f64,
    /// Commands per call, summed over every node.
    pub commands: f64,
    /// Times per call the nodes' threads were put on a CPU (woken),
    /// summed: each is an event-loop turn that reads, runs and answers
    /// whatever arrived meanwhile (`/proc/<pid>/task/*/schedstat`).
    pub wakeups: f64,
    /// Calls per second one Redis core would carry at this CPU per call.
    pub calls_per_redis_core: f64,
    /// Calls per second the nodes would carry with a core each, bound by
    /// the busiest node (on one server: the same as the above).
    pub calls_per_busiest_core: f64,
    /// Every node's work per call, added up.
    pub redis: RedisCost,
    pub masters: Vec<Master>,
    pub rounds: Vec<RoundFigure>,
}

/// 1 shard against N, either each as fast as it goes or both paced to
/// one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Calls per second both configurations were paced to (`None`: each
    /// as fast as it is answered).
    pub rate: Option<f64>,
    /// 1 shard, then N shards.
    pub configurations: Vec<Configuration>,
    /// Redis CPU per call of N shards over 1 shard, pooled over the rounds.
    pub cpu_ratio: f64,
    /// The same ratio in each round (the two counts back to back).
    pub round_ratios: Vec<f64>,
    /// Their median: what the target is judged on.
    pub cpu_ratio_median: f64,
}

/// Everything a `--shards` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ShardsReport {
    pub machine: Machine,
    pub command: String,
    /// The shard count compared with 1.
    pub shards: u32,
    /// Masters (1 without `--cluster`).
    pub masters: usize,
    pub cluster: bool,
    /// Whether the client's inbox was on another master than shard 0's.
    pub inbox_apart: bool,
    pub in_flight: usize,
    /// Configurations of each shard count.
    pub rounds: usize,
    /// Seconds measured per configuration.
    pub slice_s: f64,
    /// Each node's CPU per second with nothing running but the bench's
    /// connections (its cron; on a Cluster, the bus), µs: part of every
    /// figure per call, whatever the shards.
    pub idle_cpu_us_per_s: Vec<f64>,
    /// Each configuration as fast as it goes.
    pub saturated: Comparison,
    /// Both again at one rate, 90% of the slower one's above: what a call
    /// costs Redis falls as batches grow with the rate, so this is what
    /// sharding itself costs.
    pub paced: Comparison,
    /// Both comparisons' targets.
    pub targets: Vec<Target>,
}

impl ShardsReport {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Machine: {} CPUs ({}), {} RAM, redis-server {}; shared with other work: \
             absolute rates are noisy, CPU per call much less so. Command: `{}`\n\n",
            m.nproc, m.cpu_model, m.mem_total, m.redis, self.command
        );
        out.push_str(&format!(
            "Typed `Bench.add`, {} calls in flight (one client, one worker process), on {}; \
             {} rounds of {:.2} s per configuration, alternating, each from an empty Redis \
             with a fresh worker process and client.\n\n",
            self.in_flight,
            if self.cluster {
                format!("a {}-master Redis Cluster", self.masters)
            } else {
                "one redis-server".to_owned()
            },
            self.rounds,
            self.slice_s
        ));
        for (title, c) in [
            ("Each configuration as fast as it goes", &self.saturated),
            ("Both at one rate", &self.paced),
        ] {
            out.push_str(&format!("### {title}"));
            if let Some(rate) = c.rate {
                out.push_str(&format!(
                    ": {rate:.0} calls/s, 90% of the slower one's rate above (what a call \
                     costs Redis falls as its batches grow, and they grow with the rate)"
                ));
            }
            out.push_str("\n\n");
            out.push_str(&self.comparison(&c.configurations));
        }
        out.push_str(&crate::report::targets_markdown(&self.targets));
        out
    }

    /// One comparison's tables: the configurations, each node's share and
    /// the commands per call.
    fn comparison(&self, configurations: &[Configuration]) -> String {
        let mut out = String::new();
        out.push_str(
            "| shards | calls/s | Redis CPU per call, all nodes (µs) | commands per call | \
             Redis wake-ups per call, all nodes | calls/s per Redis core | \
             calls/s, a core per master (busiest bounds) | rounds: calls/s, µs |\n\
             |---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for c in configurations {
            let rounds: Vec<String> = c
                .rounds
                .iter()
                .map(|r| format!("{:.0}, {:.1}", r.calls_per_s, r.redis_cpu_us))
                .collect();
            out.push_str(&format!(
                "| {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {} |\n",
                c.shards,
                c.calls_per_s,
                c.redis_cpu_us,
                c.commands,
                c.wakeups,
                c.calls_per_redis_core,
                c.calls_per_busiest_core,
                rounds.join("; ")
            ));
        }
        let idle: f64 = self.idle_cpu_us_per_s.iter().sum();
        let idle_per_call: Vec<String> = configurations
            .iter()
            .map(|c| {
                format!(
                    "{:.2} µs at {} shard(s)",
                    idle / c.calls_per_s.max(f64::EPSILON),
                    c.shards
                )
            })
            .collect();
        out.push_str(&format!(
            "\nIdle, the nodes use {idle:.0} µs of CPU per second together ({}), which is in \
             the figures per call: {} of it.\n",
            self.idle_cpu_us_per_s
                .iter()
                .map(|us| format!("{us:.0}"))
                .collect::<Vec<_>>()
                .join(" + "),
            idle_per_call.join(", ")
        ));
        out.push_str(
            "\nEach node's share (commands % / CPU %; CPU µs and wake-ups per call; shard queues held, and whether it holds the client's inbox):\n\n| node |",
        );
        for c in configurations {
            out.push_str(&format!(" {} shard(s) |", c.shards));
        }
        out.push('\n');
        out.push_str(&format!("|---|{}\n", "---|".repeat(configurations.len())));
        let nodes = configurations.first().map_or(0, |c| c.masters.len());
        for i in 0..nodes {
            let name = &configurations[0].masters[i].node;
            out.push_str(&format!("| {name} |"));
            for c in configurations {
                let n = &c.masters[i];
                out.push_str(&format!(
                    " {:.0}% / {:.0}%; {:.1} µs, {:.2} wake-ups; {} held{} |",
                    n.command_share,
                    n.cpu_share,
                    n.redis.cpu_us,
                    n.wakeups,
                    n.shards_held,
                    if n.holds_inbox { ", the inbox" } else { "" }
                ));
            }
            out.push('\n');
        }
        out.push_str(
            "\nRedis commands per call, all nodes (Redis's time in each per call; a script's \
             time includes the commands it runs, also counted under their own names):\n\n",
        );
        for c in configurations {
            out.push_str(&format!(
                "* {} shard(s): {}\n",
                c.shards,
                c.redis.describe()
            ));
        }
        if let [one, many] = configurations {
            out.push_str(&format!(
                "\nCommands per call, {} shards over 1: {:.3}x.\n",
                many.shards,
                many.commands / one.commands
            ));
        }
        out.push('\n');
        out
    }
}
