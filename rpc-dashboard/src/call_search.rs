//! Where a call is now, looked up by its id: on a service's schedule, in
//! its queue (queued, or running on a worker), among its dead letters.
//!
//! Redis has no index by call id. The schedule is keyed by it, so that is
//! one lookup; the jobs and dead-letter streams are searched inside Redis,
//! newest first, in bounded steps (`Inspector::find_call`), so a call is
//! found among 100,000 dead letters without a message crossing the network,
//! and Redis is never held for long. The whole lookup has a deadline
//! ([`LOOKUP_TIME`]); a search it cuts short says so, rather than that the
//! call is not there.
//!
//! A stream entry matches when its message holds the call id as JSON
//! writes it; the entry is then read cut to a window and kept only if its
//! `id` field is the call (for a message read cut, if the id at its start
//! is the call, or its start does not reach the id). A call can be in more
//! than one place at once (a duplicate delivery, a dead letter replayed
//! while a copy died again): every sighting is listed.

use std::time::{Instant, SystemTime};

use rpc_protocol::time::unix_ms;
use rpc_runtime::inspect::{human_time, Excerpt, Stream};

use crate::bounds::{TextBudget, PREVIEW_BYTES};
use crate::entry_id;
use crate::error::PageError;
use crate::message_head;
use crate::message_view::{self, MessageView};
use crate::pages::service::reason_text;
use crate::paths;
use crate::state::AppState;

/// How long one lookup may search, across every service.
pub const LOOKUP_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Sightings of one call per stream, at most.
const MAX_SIGHTINGS: usize = 20;
/// Sightings one call's page lists, at most: the search stops at the
/// service that brings it there.
pub const MAX_SIGHTINGS_PER_PAGE: usize = 100;

/// Where the call was seen.
pub struct Sighting {
    /// `scheduled`, `queued`, `running` or `dead`.
    pub state: &'static str,
    pub service: String,
    pub token: String,
    /// The worker holding it, or why it died, and since when.
    pub detail: String,
    pub message: MessageView,
}

impl Sighting {
    /// Whether the call has yet to finish here, so that cancelling it means
    /// something.
    pub fn can_be_cancelled(&self) -> bool {
        matches!(self.state, "scheduled" | "queued" | "running")
    }
}

/// Which places to look in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Places {
    /// The schedule, the queue and the dead letters.
    All,
    /// Only where the call has yet to run (what cancelling needs).
    Unfinished,
}

/// The sightings of call `id` in `service`, and whether every place was
/// searched to the end before `deadline`.
pub async fn sightings_in(
    state: &AppState,
    service: &str,
    id: &str,
    places: Places,
    deadline: Instant,
    budget: &mut TextBudget,
) -> Result<(Vec<Sighting>, bool), PageError> {
    let inspector = state.inspector().await?;
    let catalog = state.catalog();
    let now = SystemTime::now();
    let mut found = Vec::new();

    if let Some(job) = inspector
        .scheduled_window(service, id, 0, PREVIEW_BYTES)
        .await?
    {
        let message = message_view::job_message(job.message.as_ref(), catalog, now, budget)
            .with_download(paths::scheduled_message(service, id));
        let mut detail = match job.due_ms {
            Some(ms) => format!("(due {}", human_time::due_ms(ms, unix_ms(now))),
            // Only its message is left: moved onto the queue meanwhile.
            None => "(leaving the schedule".to_owned(),
        };
        if message.attempt > 1 {
            detail.push_str(&format!(", a retry: attempt {}", message.attempt));
        }
        detail.push(')');
        found.push(Sighting {
            state: "scheduled",
            service: service.to_owned(),
            token: id.to_owned(),
            detail,
            message,
        });
    }

    let in_queue = inspector
        .find_call(service, Stream::Jobs, id, MAX_SIGHTINGS, deadline)
        .await?;
    let tokens: Vec<&str> = in_queue.tokens.iter().map(String::as_str).collect();
    let entries = inspector
        .message_excerpts(service, Stream::Jobs, &tokens, PREVIEW_BYTES)
        .await?;
    for entry in entries.into_iter().flatten() {
        if !is_call(entry.message.as_ref(), id) {
            continue;
        }
        let message = message_view::job_message(entry.message.as_ref(), catalog, now, budget)
            .with_download(paths::queued_message(service, &entry.token));
        let (state, detail) = match inspector.lease(service, &entry.token).await? {
            Some(lease) => (
                "running",
                format!(
                    "held by {} (delivery {}, lease idle {})",
                    crate::bounds::name(&lease.consumer),
                    lease.deliveries,
                    human_time::duration(lease.idle)
                ),
            ),
            None => ("queued", added(&entry.token, now)),
        };
        found.push(Sighting {
            state,
            service: service.to_owned(),
            token: entry.token,
            detail,
            message,
        });
    }
    let mut finished = in_queue.finished;

    if places == Places::All {
        let dead = inspector
            .find_call(service, Stream::Dead, id, MAX_SIGHTINGS, deadline)
            .await?;
        finished &= dead.finished;
        let tokens: Vec<&str> = dead.tokens.iter().map(String::as_str).collect();
        for letter in inspector
            .dead_letters_by_token(service, &tokens, PREVIEW_BYTES)
            .await?
            .into_iter()
            .flatten()
        {
            if !is_call(letter.message.as_ref(), id) {
                continue;
            }
            let message = message_view::job_message(letter.message.as_ref(), catalog, now, budget)
                .with_download(paths::dead_message(service, &letter.token));
            let detail = format!(
                "{} ({})",
                reason_text(letter.reason.as_ref()),
                added(&letter.token, now)
            );
            found.push(Sighting {
                state: "dead",
                service: service.to_owned(),
                token: letter.token,
                detail,
                message,
            });
        }
    }
    Ok((found, finished))
}

fn added(token: &str, now: SystemTime) -> String {
    entry_id::added_at(token)
        .map(|t| format!("since {}", human_time::relative(t, now)))
        .unwrap_or_default()
}

/// Whether a message read as `excerpt` is the call `id`: its `id` field
/// says so, or, read cut, its start does or does not reach its `id`.
fn is_call(excerpt: Option<&Excerpt>, id: &str) -> bool {
    let Some(excerpt) = excerpt else {
        return false;
    };
    if excerpt.is_whole() {
        return serde_json::from_slice::<serde_json::Value>(&excerpt.bytes)
            .ok()
            .is_some_and(|v| v.get("id").and_then(|i| i.as_str()) == Some(id));
    }
    match message_head::read(&excerpt.bytes).id {
        Some(found) => found == id,
        // The id lies past the window: the script found it in the message.
        None => true,
    }
}
