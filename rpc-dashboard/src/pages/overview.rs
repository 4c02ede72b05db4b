//! The overview: one row per service with its live counts and the sampled
//! charts of the last minutes (Sidekiq's dashboard, Bull Board's queue list),
//! and the jobs processed and failed per day over the last 30 days, which
//! workers keep in Redis (`daily_history`), so a restart loses none of it.
//!
//! When Redis cannot be read the page still renders, from the last samples,
//! under a banner that says so and reloads the page until Redis is back.
//! The schedule's size and the pause flag are read live only, not sampled:
//! from samples they show as unknown.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::daily_history::DailyChart;
use crate::error::{render, PageError};
use crate::pages::{Layout, RETRY_SECS};
use crate::sparkline::Series;
use crate::state::AppState;
use rpc_runtime::inspect::{human_time, ServiceStats};

/// One service's line.
pub struct ServiceRow {
    pub name: String,
    /// The queues its figures add up (a sharded service is one row).
    pub shards: u32,
    pub queued: u64,
    pub leased: u64,
    /// Delayed and retrying jobs; `None` when Redis could not be read.
    pub scheduled: Option<u64>,
    /// Whether the service is paused (as last read).
    pub paused: bool,
    pub dead_letters: u64,
    pub consumers: usize,
    /// How long the oldest job a worker holds has been in the queue.
    pub oldest_leased: Option<String>,
    pub jobs_in: Series,
    pub jobs_out: Series,
    pub queued_chart: Series,
    pub has_schema: bool,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    rows: Vec<ServiceRow>,
    prefix: String,
    has_schemas: bool,
    sample_every: String,
    window: String,
    live: bool,
    /// Processed and failed per day, every service added up; `None` while
    /// Redis cannot be read.
    daily: Option<DailyChart>,
}

/// `?live=1` reloads the overview every few seconds (Sidekiq's live poll).
#[derive(Debug, Default, serde::Deserialize)]
pub struct OverviewQuery {
    notice: Option<String>,
    live: Option<String>,
}

/// What the job lifecycle adds to a service's line.
struct Lifecycle {
    scheduled: u64,
    paused: bool,
}

/// Every service's counts, read now, with its schedule size and pause flag.
async fn live_figures(
    state: &AppState,
) -> Result<(Vec<ServiceStats>, HashMap<String, Lifecycle>), PageError> {
    let stats = state.all_service_stats().await?;
    let inspector = state.inspector().await?;
    let mut lifecycle = HashMap::new();
    for s in &stats {
        let figures = Lifecycle {
            scheduled: inspector.scheduled_count(&s.service).await?,
            paused: inspector.is_paused(&s.service).await?,
        };
        lifecycle.insert(s.service.clone(), figures);
    }
    Ok((stats, lifecycle))
}

pub async fn overview(
    State(state): State<AppState>,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let mut layout =
        Layout::new(&state, "Overview", "overview").with_notice(query.notice.as_deref());
    let live = query.live.as_deref() == Some("1");
    if live {
        layout.refresh_secs = Some(RETRY_SECS);
    }
    let (stats, lifecycle) = match live_figures(&state).await {
        Ok(live) => live,
        Err(e) => {
            layout.unavailable(&e);
            (state.sampler().history().latest(), HashMap::new())
        }
    };
    let names: Vec<String> = stats.iter().map(|s| s.service.clone()).collect();
    let daily = match layout.banner {
        Some(_) => None,
        None => match state.daily_counts(&names).await {
            Ok(counts) => Some(DailyChart::new(&counts)),
            Err(e) => {
                layout.unavailable(&e);
                None
            }
        },
    };
    let schema_services = state.catalog().services();
    let history = state.sampler().history();
    let rows = stats
        .into_iter()
        .map(|s| {
            let rates = history.rates(&s.service);
            let live = lifecycle.get(&s.service);
            let queued: Vec<f64> = history
                .services
                .get(&s.service)
                .map(|samples| samples.iter().map(|(_, x)| x.queued as f64).collect())
                .unwrap_or_default();
            ServiceRow {
                jobs_in: Series::new(&rates.iter().map(|r| r.0).collect::<Vec<_>>(), 1.0),
                jobs_out: Series::new(&rates.iter().map(|r| r.1).collect::<Vec<_>>(), 1.0),
                queued_chart: Series::new(&queued, 1.0),
                has_schema: schema_services.contains(&s.service),
                name: s.service,
                shards: s.shards,
                queued: s.queued,
                leased: s.leased,
                scheduled: live.map(|l| l.scheduled),
                paused: live.is_some_and(|l| l.paused),
                dead_letters: s.dead_letters,
                consumers: s.consumers.len(),
                oldest_leased: s.oldest_leased_age.map(human_time::duration),
            }
        })
        .collect();
    drop(history);
    let options = state.options();
    let status = if layout.banner.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let page = OverviewPage {
        layout,
        rows,
        prefix: options.prefix.clone(),
        has_schemas: !state.catalog().is_empty(),
        sample_every: human_time::duration(options.sample_every),
        window: human_time::duration(options.sample_every * options.samples_kept as u32),
        live,
        daily,
    };
    render(status, &page)
}
