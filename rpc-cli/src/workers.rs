//! `rpc workers`: the workers that say they are alive, from their
//! heartbeats — id, host, pid, version, services, concurrency, jobs in
//! flight, uptime, last beat, memory — and the ones that are gone (their
//! beat expired: they died, were killed, or lost Redis). `rpc workers quiet
//! ID` asks a worker to take no new jobs and finish the running ones, `rpc
//! workers stop ID` to drain and exit; it acts on its next beat.
//!
//! Reads go through [`rpc_runtime::Inspector::workers`]; the controls are
//! written with [`rpc_runtime::Client::control_worker`] (the operator's
//! ACL role may, a client's may not).

use clap::{Args, Subcommand, ValueEnum};
use rpc_runtime::inspect::human_time::duration;
use rpc_runtime::inspect::{Liveness, WorkerControl, WorkerInfo};
use rpc_runtime::Inspector;
use serde::Serialize;

use crate::failure::Failure;
use crate::table::{Align, Table};

/// `rpc workers [SERVICE] [--format table|json]`, `rpc workers quiet|stop ID`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    #[command(subcommand)]
    pub action: Option<WorkerAction>,
    /// Only the workers of this service; default: every service under the prefix.
    pub service: Option<String>,
    /// `table` for people, `json` for scripts (one array; times in ms since
    /// the epoch on Redis's clock, durations in ms).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How a listing is printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum WorkerAction {
    /// Ask a worker to take no new jobs and finish the running ones (it stays up).
    Quiet {
        /// The worker's id, as `rpc workers` lists it.
        id: String,
    },
    /// Ask a worker to stop: take no new jobs, finish the running ones, exit.
    Stop {
        /// The worker's id, as `rpc workers` lists it.
        id: String,
    },
}

pub async fn run(url: &str, prefix: &str, args: WorkersArgs) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    match args.action {
        Some(WorkerAction::Quiet { id }) => {
            control(url, prefix, &inspector, &id, WorkerControl::Quiet).await
        }
        Some(WorkerAction::Stop { id }) => {
            control(url, prefix, &inspector, &id, WorkerControl::Stop).await
        }
        None => list(&inspector, prefix, args.service.as_deref(), args.format).await,
    }
}

async fn list(
    inspector: &Inspector,
    prefix: &str,
    service: Option<&str>,
    format: Format,
) -> Result<(), Failure> {
    if let Some(service) = service {
        if !inspector.has_service(service).await? {
            let known = inspector.services().await?;
            let known = if known.is_empty() {
                "there are none".to_owned()
            } else {
                format!("there are: {}", known.join(", "))
            };
            return Err(Failure::cannot(
                format!("find the service `{service}`"),
                format!("no queue of it under the prefix `{prefix}` ({known}; is --prefix right?)"),
            ));
        }
    }
    let workers = inspector.workers(service).await?;
    let now_ms = inspector.broker_time_ms().await?;
    match format {
        Format::Json => {
            let rows: Vec<JsonRow> = workers.iter().map(|w| JsonRow::new(w, now_ms)).collect();
            let json = serde_json::to_string_pretty(&rows)
                .map_err(|e| Failure::cannot("write the workers as JSON", e))?;
            println!("{json}");
        }
        Format::Table if workers.is_empty() => {
            let whose = service.map_or(String::new(), |s| format!(" of `{s}`"));
            eprintln!("no worker{whose} has beaten in the last day under the prefix `{prefix}`");
        }
        Format::Table => print!("{}", table(&workers, now_ms)),
    }
    Ok(())
}

async fn control(
    url: &str,
    prefix: &str,
    inspector: &Inspector,
    id: &str,
    control: WorkerControl,
) -> Result<(), Failure> {
    let workers = inspector.workers(None).await?;
    let Some(worker) = workers.iter().find(|w| w.id == id) else {
        return Err(Failure::cannot(
            format!("{} worker `{id}`", control.as_str()),
            "no worker with this id has beaten in the last day (see `rpc workers`)",
        ));
    };
    if worker.liveness != Liveness::Live {
        return Err(Failure::cannot(
            format!("{} worker `{id}`", control.as_str()),
            format!(
                "it is gone (last beat {} ago)",
                duration(std::time::Duration::from_millis(worker.last_beat_age_ms))
            ),
        ));
    }
    let client = crate::broker::client(url, prefix).await?;
    client.control_worker(id, control).await?;
    let every = worker.beat.as_ref().map_or(0, |b| b.every_ms);
    let what = match control {
        WorkerControl::Quiet => "to take no new jobs",
        WorkerControl::Stop => "to finish its jobs and exit",
    };
    println!(
        "asked worker {id} {what}; it acts on its next beat (within {})",
        duration(std::time::Duration::from_millis(every))
    );
    Ok(())
}

/// The state word of a worker: what its beat says, or `gone`.
fn state(w: &WorkerInfo) -> &'static str {
    match (w.liveness, &w.beat) {
        (Liveness::Live, Some(beat)) => beat.state.as_str(),
        (Liveness::Unreadable, _) => "unreadable",
        _ => "gone",
    }
}

fn table(workers: &[WorkerInfo], now_ms: u64) -> Table {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("STATE", Align::Left),
        ("HOST", Align::Left),
        ("PID", Align::Right),
        ("VERSION", Align::Left),
        ("SERVICES", Align::Left),
        ("CONC", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("UPTIME", Align::Right),
        ("LAST BEAT", Align::Right),
        ("MEMORY", Align::Right),
    ]);
    let ms = |ms: u64| duration(std::time::Duration::from_millis(ms));
    for w in workers {
        let beat = w.beat.as_ref().filter(|_| w.liveness == Liveness::Live);
        let or_dash = |f: &dyn Fn(&rpc_runtime::inspect::WorkerBeat) -> String| {
            beat.map_or("-".to_owned(), f)
        };
        table.row([
            w.id.clone(),
            state(w).to_owned(),
            or_dash(&|b| b.host.clone()),
            or_dash(&|b| b.pid.to_string()),
            or_dash(&|b| b.version.clone()),
            w.services.join(","),
            or_dash(&|b| b.concurrency.to_string()),
            or_dash(&|b| b.in_flight.to_string()),
            beat.map_or("-".to_owned(), |b| ms(now_ms.saturating_sub(b.started_ms))),
            format!("{} ago", ms(w.last_beat_age_ms)),
            beat.and_then(|b| b.rss_bytes).map_or("-".to_owned(), bytes),
        ]);
        if let Some(error) = &w.error {
            table.note(&format!("unreadable beat: {error}"));
        }
    }
    table
}

/// `812 KiB`, `41.3 MiB`, `1.2 GiB`.
fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n < KIB * KIB {
        format!("{:.0} KiB", n / KIB)
    } else if n < KIB * KIB * KIB {
        format!("{:.1} MiB", n / (KIB * KIB))
    } else {
        format!("{:.1} GiB", n / (KIB * KIB * KIB))
    }
}

/// One worker in `--format json`: flat, every field always present
/// (`null` where a gone worker's beat no longer tells it).
#[derive(Serialize)]
struct JsonRow<'a> {
    id: &'a str,
    /// `running`, `quiet`, `stopping`, `gone` or `unreadable`.
    state: &'static str,
    live: bool,
    host: Option<&'a str>,
    pid: Option<u32>,
    version: Option<&'a str>,
    services: &'a [String],
    concurrency: Option<u32>,
    in_flight: Option<u32>,
    started_ms: Option<u64>,
    uptime_ms: Option<u64>,
    last_beat_ms: u64,
    last_beat_age_ms: u64,
    beat_every_ms: Option<u64>,
    beat_ttl_ms: Option<u64>,
    rss_bytes: Option<u64>,
    error: Option<&'a str>,
}

impl<'a> JsonRow<'a> {
    fn new(w: &'a WorkerInfo, now_ms: u64) -> Self {
        let beat = w.beat.as_ref().filter(|_| w.liveness == Liveness::Live);
        JsonRow {
            id: &w.id,
            state: state(w),
            live: w.liveness == Liveness::Live,
            host: beat.map(|b| b.host.as_str()),
            pid: beat.map(|b| b.pid),
            version: beat.map(|b| b.version.as_str()),
            services: &w.services,
            concurrency: beat.map(|b| b.concurrency),
            in_flight: beat.map(|b| b.in_flight),
            started_ms: beat.map(|b| b.started_ms),
            uptime_ms: w.uptime_ms(now_ms).filter(|_| beat.is_some()),
            last_beat_ms: w.last_beat_ms,
            last_beat_age_ms: w.last_beat_age_ms,
            beat_every_ms: beat.map(|b| b.every_ms),
            beat_ttl_ms: beat.map(|b| b.ttl_ms),
            rss_bytes: beat.and_then(|b| b.rss_bytes),
            error: w.error.as_deref(),
        }
    }
}
