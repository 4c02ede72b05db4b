//! The workers: every consumer of every service's group, with the jobs it
//! holds and how long since it last read (Sidekiq's Processes tab, Flower's
//! workers). A consumer long idle with nothing in flight is a worker that
//! has gone; workers forget such names themselves after a day.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use rpc_runtime::inspect::human_time;

use crate::bounds::{self, MAX_WORKERS};
use crate::error::render;
use crate::pages::Layout;
use crate::state::AppState;

/// One consumer of one service.
pub struct WorkerRow {
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
    rows: Vec<WorkerRow>,
}

pub async fn workers(State(state): State<AppState>) -> Response {
    let mut layout = Layout::new(&state, "Workers", "workers");
    let rows = match state.all_service_stats().await {
        Ok(stats) => stats
            .into_iter()
            .flat_map(|s| {
                let service = s.service;
                s.consumers.into_iter().map(move |c| WorkerRow {
                    service: service.clone(),
                    name: bounds::name(&c.name),
                    in_flight: c.pending,
                    idle: human_time::duration(c.idle),
                    inactive: c.inactive.map(human_time::duration),
                })
            })
            .take(MAX_WORKERS)
            .collect(),
        Err(e) => {
            layout.unavailable(&e);
            Vec::new()
        }
    };
    let status = if layout.banner.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    render(status, &WorkersPage { layout, rows })
}
