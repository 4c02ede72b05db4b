//! The bench's output: a markdown table (pasteable into the README) and the
//! same figures as JSON.

use serde::Serialize;

/// Where the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub redis: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let redis = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| {
                s.split_whitespace()
                    .find(|w| w.starts_with("v="))
                    .map(str::to_owned)
            })
            .map(|v| v.trim_start_matches("v=").to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name"),
            mem_total: field(&meminfo, "MemTotal"),
            redis,
        }
    }
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// One figure, side by side with the floor's.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub floor: f64,
    pub rpc: f64,
    /// `rpc / floor`.
    pub ratio: f64,
    pub better: Better,
}

/// A memory figure before and after many calls.
#[derive(Debug, Clone, Serialize)]
pub struct MemRow {
    pub metric: String,
    pub unit: &'static str,
    pub before: f64,
    /// After half of the calls: a one-time step (a buffer grown to the
    /// load) shows as halfway == after; a leak as after > halfway.
    pub halfway: f64,
    pub after: f64,
}

/// A target of issue 5 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub pass: bool,
}

/// The targets as a markdown table (after a blank line): what, measured,
/// met.
pub fn targets_markdown(targets: &[Target]) -> String {
    let mut out = String::from("\n| target | measured | met |\n|---|---|---|\n");
    for t in targets {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            t.what,
            t.measured,
            if t.pass { "yes" } else { "NO" }
        ));
    }
    out
}

/// Prints a run's `markdown` and, with `json`, writes `report` there.
pub fn publish<R: Serialize>(
    markdown: &str,
    report: &R,
    json: Option<&std::path::Path>,
) -> Result<(), String> {
    println!("{markdown}");
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("rpc-bench: wrote {}", path.display());
    }
    Ok(())
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub mode: String,
    pub command: String,
    pub rows: Vec<Row>,
    pub memory_calls: u64,
    pub memory: Vec<MemRow>,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn row(
        &mut self,
        metric: impl Into<String>,
        unit: &'static str,
        floor: f64,
        rpc: f64,
        better: Better,
    ) {
        self.rows.push(Row {
            metric: metric.into(),
            unit,
            floor,
            rpc,
            ratio: if floor > 0.0 { rpc / floor } else { f64::NAN },
            better,
        });
    }

    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "Machine: {} CPUs ({}), {} RAM, redis-server {}. Mode: {}. Command: `{}`\n\n",
            m.nproc, m.cpu_model, m.mem_total, m.redis, self.mode, self.command
        ));
        out.push_str("| figure | floor (raw Redis) | rpc-runtime (typed) | ratio rpc/floor |\n");
        out.push_str("|---|---:|---:|---:|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} ({}, {} is better) | {} | {} | {:.2}x |\n",
                r.metric,
                r.unit,
                match r.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                },
                fmt_num(r.floor),
                fmt_num(r.rpc),
                r.ratio
            ));
        }
        out.push_str(&format!(
            "\nMemory of the runtime (1 worker process, 64 in flight), before and after {} calls:\n\n",
            self.memory_calls
        ));
        out.push_str(
            "| figure | before | after half | after | change |\n|---|---:|---:|---:|---:|\n",
        );
        for r in &self.memory {
            out.push_str(&format!(
                "| {} ({}) | {} | {} | {} | {:+.1}% |\n",
                r.metric,
                r.unit,
                fmt_num(r.before),
                fmt_num(r.halfway),
                fmt_num(r.after),
                (r.after / r.before - 1.0) * 100.0
            ));
        }
        out.push_str(&targets_markdown(&self.targets));
        out
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
