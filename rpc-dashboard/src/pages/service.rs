//! One service: the jobs workers hold (worker, attempt, age, deadline), the
//! jobs waiting, the jobs on the schedule (delayed calls, retries waiting
//! out their backoff) and the dead letters with their reason, each message
//! pretty-printed and, with a schema, shown by field and checked. The
//! actions sit beside what they act on: Cancel on every call that has yet
//! to finish, Pause or Resume by the service's name, replay and delete on
//! dead letters (Sidekiq's Scheduled, Retries and Dead tabs).
//!
//! A sharded service is one page: its counts are the sums over its shards,
//! its lists merge them (a token of shard `k >= 1` reads `<id>~k`), and a
//! table of its shards (queued, leased, scheduled, dead, consumers, oldest
//! lease) shows a hot or stuck one.
//!
//! A service with rate limits (docs/PROTOCOL.md, "Rate limits") has a
//! table of them: the limit, starts in the last second (the current
//! rate), calls waiting for their turn, and starts allowed in all. One
//! with calls at priorities other than the default has a table of its
//! lanes, and one with group keys a table of its busiest
//! (`service_load.rs`).

use std::time::SystemTime;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_protocol::time::unix_ms;
use rpc_runtime::inspect::shards::ShardFigures;
use rpc_runtime::inspect::{
    human_time, Excerpt, LeasedExcerpt, ScheduledExcerpt, ServiceRateLimit,
};

use crate::bounds::{self, TextBudget, MAX_ROWS, PREVIEW_BYTES, REASON_BYTES};
use crate::daily_history::DailyChart;
use crate::entry_id;
use crate::error::{render, PageError};
use crate::message_head;
use crate::message_view::{self, MessageView};
use crate::pages::service_load::{lane_rows, GroupKeys, LaneRow};
use crate::pages::Layout;
use crate::paths;
use crate::state::AppState;

/// How many entries of each list a page shows unless `?max=` says otherwise.
const DEFAULT_MAX: usize = 50;

/// A job a worker holds.
pub struct LeasedRow {
    pub token: String,
    pub consumer: String,
    /// The attempt it is on: the message's attempt plus redeliveries.
    pub attempt: u64,
    pub deliveries: u64,
    pub age: String,
    pub idle: String,
    pub message: MessageView,
}

/// A job waiting in the queue, or a dead letter.
pub struct EntryRow {
    pub token: String,
    pub age: String,
    /// The dead letter's reason (empty for queued jobs).
    pub reason: String,
    /// Where the whole reason is downloaded, when it was cut.
    pub reason_download: Option<String>,
    pub message: MessageView,
}

/// A job waiting on the schedule.
pub struct ScheduledRow {
    /// The call id (cut, for a token too long to be one).
    pub id: String,
    /// Whether the token is a call id whole (not cut), so it can be
    /// linked and cancelled.
    pub linkable: bool,
    /// `in 20.0s` (`5.0s ago` for one due that no worker moved yet).
    pub due: String,
    pub attempt: Option<u32>,
    pub retry: bool,
    /// `Service.job`; `None` for a message that is no job message.
    pub job: Option<String>,
}

/// A job the schema defines, with its doc comment, its parameters' docs,
/// and a link to its form.
pub struct JobLink {
    pub job: String,
    pub signature: String,
    pub description: Option<String>,
    pub deprecated: bool,
    /// Parameters: name, type, doc comment.
    pub params: Vec<(String, String, Option<String>)>,
}

impl JobLink {
    /// Whether any parameter has a doc comment to show.
    pub fn has_param_docs(&self) -> bool {
        self.params.iter().any(|p| p.2.is_some())
    }
}

/// One shard of a sharded service, in the page's table of shards.
pub struct ShardRow {
    pub shard: u32,
    pub queue: String,
    pub queued: u64,
    pub leased: u64,
    pub scheduled: u64,
    pub dead_letters: u64,
    pub consumers: u64,
    /// `2m05s`, or `-` with nothing leased.
    pub oldest_lease: String,
}

impl From<ShardFigures> for ShardRow {
    fn from(f: ShardFigures) -> ShardRow {
        ShardRow {
            shard: f.shard,
            queue: bounds::name(&f.queue),
            queued: f.queued,
            leased: f.leased,
            scheduled: f.scheduled,
            dead_letters: f.dead_letters,
            consumers: f.consumers,
            oldest_lease: f.oldest_leased_age_ms.map_or("-".to_owned(), |ms| {
                human_time::duration(std::time::Duration::from_millis(ms))
            }),
        }
    }
}

/// One rate limit of the service, in the page's table of them.
pub struct RateLimitRow {
    /// The job limited; `None` for the service's own limit.
    pub job: Option<String>,
    /// The limit as the workers wrote it (`50/s`), `?` when unknown.
    pub rate: String,
    /// Starts in the last whole second: the current rate.
    pub last_second: u64,
    pub waiting: u64,
    pub allowed: u64,
    pub waited: u64,
}

impl From<ServiceRateLimit> for RateLimitRow {
    fn from(l: ServiceRateLimit) -> RateLimitRow {
        RateLimitRow {
            job: l.job.as_deref().map(bounds::name),
            rate: l.state.rate.as_deref().map_or("?".to_owned(), bounds::name),
            last_second: l.state.last_second,
            waiting: l.state.waiting,
            allowed: l.state.allowed,
            waited: l.state.waited,
        }
    }
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    layout: Layout,
    service: String,
    /// Its shards, one row each, when it has more than one.
    shard_rows: Vec<ShardRow>,
    /// Its rate limits with state on the broker, the service's own first.
    rate_limit_rows: Vec<RateLimitRow>,
    /// Its priority lanes, when it uses any but the default.
    lane_rows: Vec<LaneRow>,
    /// Its busiest group keys.
    group_keys: GroupKeys,
    queued: u64,
    leased: u64,
    scheduled: u64,
    dead_letters: u64,
    consumers: usize,
    /// Workers beating for the service now (`/workers?service=` lists them).
    live_workers: u64,
    paused: bool,
    leased_rows: Vec<LeasedRow>,
    queued_rows: Vec<EntryRow>,
    scheduled_rows: Vec<ScheduledRow>,
    dead_rows: Vec<EntryRow>,
    /// The dead letter the list starts after (`?after=`), when it does.
    dead_after: Option<String>,
    /// Where the next page of dead letters starts, when there may be one.
    dead_next: Option<String>,
    jobs: Vec<JobLink>,
    /// Processed and failed per day over the last 30 days.
    daily: DailyChart,
    max: usize,
    /// The queued entry the list starts after, when it does.
    queued_after: Option<String>,
    /// Where the next page of queued jobs starts, when there may be one.
    queued_next: Option<String>,
    /// The rank the schedule's list starts at.
    scheduled_from: usize,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    max: Option<usize>,
    notice: Option<String>,
    /// List the dead letters after this one (paging through them).
    after: Option<String>,
    /// List the queued jobs after this entry.
    queued_after: Option<String>,
    /// List the schedule from this rank on (0: the soonest).
    scheduled_from: Option<usize>,
}

pub async fn service(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    state.known_service(&service).await?;
    let max = query.max.unwrap_or(DEFAULT_MAX).clamp(1, MAX_ROWS);
    let now = SystemTime::now();
    let catalog = state.catalog();
    let inspector = state.inspector().await?;
    let stats = state.service_stats(&service).await?;
    let mut budget = TextBudget::default();
    let leased = finished_meanwhile_left_out(
        &inspector,
        &service,
        inspector
            .leased_excerpts(&service, max, PREVIEW_BYTES)
            .await?
            .unwrap_or_default(),
    )
    .await?;
    let leased_rows = leased
        .into_iter()
        .map(|l| {
            let message = message_view::job_message(l.message.as_ref(), catalog, now, &mut budget)
                .with_download(paths::queued_message(&service, &l.token));
            LeasedRow {
                attempt: u64::from(message.attempt.max(1)) + l.lease.deliveries.saturating_sub(1),
                age: entry_age(&l.token, now),
                idle: human_time::duration(l.lease.idle),
                token: l.token,
                consumer: bounds::name(&l.lease.consumer),
                deliveries: l.lease.deliveries,
                message,
            }
        })
        .collect();
    let queued_after = query
        .queued_after
        .as_deref()
        .filter(|t| entry_id::is_entry_id(t));
    let scheduled_from = query.scheduled_from.unwrap_or(0).min(u32::MAX as usize);
    let queued = inspector
        .queued_excerpts(&service, queued_after, max, PREVIEW_BYTES)
        .await?
        .unwrap_or_default();
    let queued_rows: Vec<EntryRow> = queued
        .into_iter()
        .map(|q| EntryRow {
            age: entry_age(&q.token, now),
            reason: String::new(),
            reason_download: None,
            message: message_view::job_message(q.message.as_ref(), catalog, now, &mut budget)
                .with_download(paths::queued_message(&service, &q.token)),
            token: q.token,
        })
        .collect();
    let queued_rows_len = queued_rows.len();
    let queued_last = queued_rows.last().map(|r| r.token.clone());
    let scheduled_rows: Vec<ScheduledRow> = inspector
        .scheduled_excerpts(&service, scheduled_from, max, PREVIEW_BYTES)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|j| scheduled_row(j, now))
        .collect();
    let scheduled = inspector.scheduled_count(&service).await?;
    let paused = inspector.is_paused(&service).await?;
    let after = query.after.as_deref().filter(|t| entry_id::is_entry_id(t));
    let dead = inspector
        .dead_letter_excerpts(&service, after, max, PREVIEW_BYTES)
        .await?;
    let dead_rows: Vec<EntryRow> = dead
        .into_iter()
        .map(|d| EntryRow {
            age: entry_age(&d.token, now),
            message: message_view::job_message(d.message.as_ref(), catalog, now, &mut budget)
                .with_download(paths::dead_message(&service, &d.token)),
            reason: reason_text(d.reason.as_ref()),
            reason_download: d
                .reason
                .as_ref()
                .filter(|r| r.len > REASON_BYTES as u64)
                .map(|_| format!("{}?field=reason", paths::dead_message(&service, &d.token))),
            token: d.token,
        })
        .collect();
    let dead_next = (dead_rows.len() >= max)
        .then(|| dead_rows.last().map(|r| r.token.clone()))
        .flatten();
    let jobs = catalog
        .jobs_of(&service)
        .map(|j| JobLink {
            job: j.job.clone(),
            description: j.description.clone(),
            deprecated: j.deprecated,
            params: j
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.type_label.clone(), f.description.clone()))
                .collect(),
            signature: format!(
                "({}) -> {}",
                j.fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, f.type_label))
                    .collect::<Vec<_>>()
                    .join(", "),
                match &j.error_type {
                    Some(e) => format!("Result<{}, {e}>", j.returns),
                    None => j.returns.clone(),
                }
            ),
        })
        .collect();
    let daily = DailyChart::new(&state.daily_counts(std::slice::from_ref(&service)).await?);
    let shard_figures = inspector.shard_figures(&service).await?;
    let shard_rows = if shard_figures.len() > 1 {
        shard_figures.into_iter().map(ShardRow::from).collect()
    } else {
        Vec::new()
    };
    let rate_limit_rows = inspector
        .rate_limits(&service)
        .await?
        .into_iter()
        .map(RateLimitRow::from)
        .collect();
    let group_keys = GroupKeys::from(inspector.busy_group_keys(&service).await?);
    let live_workers = inspector
        .live_worker_counts(std::slice::from_ref(&service))
        .await?
        .get(&service)
        .copied()
        .unwrap_or(0);
    let page = ServicePage {
        layout: Layout::new(&state, service.clone(), "").with_notice(query.notice.as_deref()),
        lane_rows: lane_rows(&stats.lanes),
        group_keys,
        queued: stats.queued,
        leased: stats.leased,
        scheduled,
        dead_letters: stats.dead_letters,
        consumers: stats.consumers.len(),
        live_workers,
        paused,
        service,
        shard_rows,
        rate_limit_rows,
        leased_rows,
        queued_rows,
        scheduled_rows,
        dead_rows,
        dead_after: after.map(str::to_owned),
        dead_next,
        jobs,
        daily,
        queued_next: (queued_rows_len >= max)
            .then(|| queued_last.clone())
            .flatten(),
        queued_after: queued_after.map(str::to_owned),
        scheduled_from,
        max,
    };
    Ok(render(StatusCode::OK, &page).into_response())
}

/// The leases read, less those whose job finished between the read of the
/// leases and the read of their entries.
///
/// The page reads who holds what (`XPENDING`), then the entries by id: a
/// job that completes in between is acked and deleted, so its entry is
/// gone by the second read, and under load that is common. Shown, it would
/// be a running job flagged "unreadable" for one refresh. An entry that is
/// missing is looked up again: if its lease is gone too, the job finished
/// and is left out; if it is still held, the entry was deleted under a
/// live lease, which is worth showing as it is.
async fn finished_meanwhile_left_out(
    inspector: &rpc_runtime::Inspector,
    service: &str,
    leased: Vec<LeasedExcerpt>,
) -> Result<Vec<LeasedExcerpt>, PageError> {
    let mut kept = Vec::with_capacity(leased.len());
    for l in leased {
        if l.message.is_none() && inspector.lease(service, &l.token).await?.is_none() {
            continue;
        }
        kept.push(l);
    }
    Ok(kept)
}

/// A scheduled job's row: only the start of its message is read, enough
/// for its attempt and job name.
fn scheduled_row(job: ScheduledExcerpt, now: SystemTime) -> ScheduledRow {
    let head = job
        .message
        .as_ref()
        .map(|m| message_head::read(&m.bytes))
        .unwrap_or_default();
    let linkable = job.token.is_whole() && job.token.bytes.len() <= MAX_ID_BYTES;
    let id = String::from_utf8_lossy(&job.token.bytes);
    ScheduledRow {
        // Redis's clock set the due time, this machine's reads it: close
        // enough for "in 20s".
        due: job
            .due_ms
            .map(|ms| human_time::due_ms(ms, unix_ms(now)))
            .unwrap_or_else(|| "moved onto the queue".to_owned()),
        // A job message without `attempt` is on its first (as the runtime reads it).
        retry: head.attempt.is_some_and(|a| a > 1),
        attempt: head.job.is_some().then(|| head.attempt.unwrap_or(1)),
        job: head.job.filter(|_| head.id.is_some()),
        id: if linkable {
            id.into_owned()
        } else {
            bounds::name(&id)
        },
        linkable,
    }
}

/// A dead letter's reason as shown: its start, marked when cut.
pub fn reason_text(reason: Option<&Excerpt>) -> String {
    match reason {
        None => String::new(),
        Some(r) => {
            let text = String::from_utf8_lossy(&r.bytes);
            let text = bounds::cut_str(&text, REASON_BYTES);
            if (text.len() as u64) < r.len {
                format!("{text}… ({} in all)", bounds::size(r.len))
            } else {
                text.to_owned()
            }
        }
    }
}

/// When the entry was added (from its stream id): `3m ago`.
fn entry_age(token: &str, now: SystemTime) -> String {
    entry_id::added_at(token)
        .map(|t| human_time::relative(t, now))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_runtime::inspect::Lease;

    fn leased(token: &str) -> LeasedExcerpt {
        LeasedExcerpt {
            token: token.to_owned(),
            lease: Lease {
                consumer: "w".to_owned(),
                idle: std::time::Duration::ZERO,
                deliveries: 1,
            },
            message: None,
        }
    }

    /// Issue 21: under load a running job was briefly flagged "unreadable":
    /// the page read the leases, the job finished (acked and deleted), then
    /// the page read its entry and found none. Such a lease, gone by the
    /// time its entry is missed, is left out; an entry deleted under a
    /// lease that is still held is still shown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_finished_while_the_page_read_it_is_left_out() {
        let redis = rpc_testkit::RedisServer::start().expect("redis-server");
        let keys = rpc_protocol::Keys::new("rpc");
        let jobs = keys.jobs("S");
        redis.cli(["XGROUP", "CREATE", &jobs, "workers", "0", "MKSTREAM"]);
        let held = redis.cli(["XADD", &jobs, "*", "m", "{}"]).trim().to_owned();
        let done = redis.cli(["XADD", &jobs, "*", "m", "{}"]).trim().to_owned();
        redis.cli(["XREADGROUP", "GROUP", "workers", "w", "STREAMS", &jobs, ">"]);
        // Both entries are gone; only `done` was acked (finished).
        redis.cli(["XACK", &jobs, "workers", &done]);
        redis.cli(["XDEL", &jobs, &done, &held]);
        let inspector = rpc_runtime::Inspector::connect(&redis.url(), "rpc")
            .await
            .expect("an inspector");
        let kept = finished_meanwhile_left_out(&inspector, "S", vec![leased(&held), leased(&done)])
            .await
            .expect("leases read");
        let tokens: Vec<&str> = kept.iter().map(|l| l.token.as_str()).collect();
        assert_eq!(tokens, [held.as_str()]);
    }
}
