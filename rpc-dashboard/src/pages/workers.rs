//! The workers page (Sidekiq's Processes tab, Flower's workers): every
//! worker that beats, from the heartbeats and the services' registries
//! (`Inspector::workers`), with its host, pid, version, uptime, services,
//! concurrency, jobs in flight, memory, last beat and state; gone ones
//! (registry entry left, beat expired) are marked, unreadable beats say
//! why. A live worker has Quiet and Stop buttons (not in read-only mode).
//! Below, every consumer of every service's group with the jobs it holds,
//! which also shows consumers of workers that do not beat (other clients
//! of the protocol, older workers).
//!
//! Everything shown comes from Redis, so it is cut to bounds and escaped
//! by the template; `?service=` narrows both tables to one service.

use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use rpc_runtime::inspect::{human_time, Liveness, WorkerInfo, WorkerState};

use crate::bounds::{self, MAX_WORKERS};
use crate::error::{render, PageError};
use crate::pages::Layout;
use crate::state::AppState;

/// One worker as its beat (or its registry entry) tells it.
pub struct BeatRow {
    pub id: String,
    /// `live`, `gone` or `unreadable`.
    pub liveness: &'static str,
    /// `running`, `quiet`, `stopping` for a beat that reads.
    pub state: Option<&'static str>,
    pub host: String,
    pub pid: String,
    pub version: String,
    pub uptime: String,
    pub services: Vec<String>,
    pub concurrency: String,
    pub in_flight: String,
    pub memory: String,
    pub last_beat: String,
    /// Why the beat does not read.
    pub error: Option<String>,
    /// Whether Quiet is offered (a live, running worker).
    pub can_quiet: bool,
    /// Whether Stop is offered (a live worker not already stopping).
    pub can_stop: bool,
}

/// One consumer of one service's group.
pub struct ConsumerRow {
    pub service: String,
    pub name: String,
    /// Jobs it holds a lease on.
    pub in_flight: u64,
    pub idle: String,
    pub inactive: Option<String>,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    layout: Layout,
    service: Option<String>,
    workers: Vec<BeatRow>,
    live: usize,
    gone: usize,
    rows: Vec<ConsumerRow>,
}

#[derive(Debug, Deserialize)]
pub struct WorkersQuery {
    service: Option<String>,
    notice: Option<String>,
}

const DASH: &str = "—";

fn beat_row(info: WorkerInfo, now_ms: u64) -> BeatRow {
    let liveness = match info.liveness {
        Liveness::Live => "live",
        Liveness::Gone => "gone",
        Liveness::Unreadable => "unreadable",
    };
    let live = info.liveness == Liveness::Live;
    let uptime = info.uptime_ms(now_ms).filter(|_| live).map_or_else(
        || DASH.to_owned(),
        |ms| human_time::duration(Duration::from_millis(ms)),
    );
    // A beat is never in the future: one that reads so (the worker's view
    // of Redis's clock runs a few ms ahead of the dashboard's) was now.
    let last_beat = human_time::relative_ms(info.last_beat_ms.min(now_ms), now_ms);
    let services = info
        .services
        .iter()
        .take(50)
        .map(|s| bounds::name(s))
        .collect();
    let state = info.beat.as_ref().map(|b| b.state);
    let mut row = BeatRow {
        id: bounds::name(&info.id),
        liveness,
        state: state.filter(|_| live).map(WorkerState::as_str),
        host: DASH.to_owned(),
        pid: DASH.to_owned(),
        version: DASH.to_owned(),
        uptime,
        services,
        concurrency: DASH.to_owned(),
        in_flight: DASH.to_owned(),
        memory: DASH.to_owned(),
        last_beat,
        error: info.error.as_deref().map(bounds::name),
        can_quiet: live && state == Some(WorkerState::Running),
        can_stop: live && state.is_some_and(|s| s != WorkerState::Stopping),
    };
    if let Some(beat) = &info.beat {
        row.host = bounds::name(&beat.host);
        row.pid = beat.pid.to_string();
        row.version = bounds::name(&beat.version);
        row.concurrency = beat.concurrency.to_string();
        if live {
            row.in_flight = beat.in_flight.to_string();
            row.memory = beat.rss_bytes.map_or_else(|| DASH.to_owned(), bounds::size);
        }
    }
    row
}

pub async fn workers(
    State(state): State<AppState>,
    Query(query): Query<WorkersQuery>,
) -> Result<Response, PageError> {
    let service = query.service.filter(|s| !s.is_empty());
    if let Some(s) = &service {
        state.known_service(s).await?;
    }
    let title = match &service {
        Some(s) => format!("Workers of {s}"),
        None => "Workers".to_owned(),
    };
    let mut layout = Layout::new(&state, title, "workers").with_notice(query.notice.as_deref());
    let mut workers = Vec::new();
    let mut rows = Vec::new();
    let read = async {
        let inspector = state.inspector().await?;
        let now_ms = inspector.broker_time_ms().await?;
        let infos = inspector.workers(service.as_deref()).await?;
        let beats: Vec<BeatRow> = infos
            .into_iter()
            .take(MAX_WORKERS)
            .map(|w| beat_row(w, now_ms))
            .collect();
        let stats = match &service {
            Some(s) => vec![state.service_stats(s).await?],
            None => state.all_service_stats().await?,
        };
        let consumers: Vec<ConsumerRow> = stats
            .into_iter()
            .flat_map(|s| {
                let service = s.service;
                s.consumers.into_iter().map(move |c| ConsumerRow {
                    service: service.clone(),
                    name: bounds::name(&c.name),
                    in_flight: c.pending,
                    idle: human_time::duration(c.idle),
                    inactive: c.inactive.map(human_time::duration),
                })
            })
            .take(MAX_WORKERS)
            .collect();
        Ok::<_, PageError>((beats, consumers))
    };
    match read.await {
        Ok((b, c)) => (workers, rows) = (b, c),
        Err(e) => layout.unavailable(&e),
    }
    let live = workers.iter().filter(|w| w.liveness == "live").count();
    let gone = workers.len() - live;
    let status = if layout.banner.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let page = WorkersPage {
        layout,
        service,
        workers,
        live,
        gone,
        rows,
    };
    Ok(render(status, &page))
}
