//! The pages, one file each, and what they share: the layout every page
//! extends (title, banners, the CSRF token its forms carry) and the
//! one-line notices an action leaves for the page it redirects to.

pub mod download;
pub mod enqueue;
pub mod failed_attempts;
pub mod failures;
pub mod job;
pub mod overview;
pub mod progress;
pub mod service;
pub mod service_load;
pub mod workers;

use crate::state::AppState;

/// How often a page that could not reach Redis reloads itself.
pub const RETRY_SECS: u32 = 5;

/// What `base.html` needs from every page.
pub struct Layout {
    pub title: String,
    pub csrf: String,
    pub read_only: bool,
    /// An error across the top (Redis unreachable), shown with `refresh_secs`.
    pub banner: Option<String>,
    pub refresh_secs: Option<u32>,
    /// What the last action did.
    pub notice: Option<String>,
    /// Which navigation entry is the current page.
    pub active: &'static str,
}

impl Layout {
    /// A layout with no forms (error pages).
    pub fn plain(title: &str) -> Layout {
        Layout {
            title: title.to_owned(),
            csrf: String::new(),
            // No forms to hide; the badge would only mislead.
            read_only: false,
            banner: None,
            refresh_secs: None,
            notice: None,
            active: "",
        }
    }

    pub fn new(state: &AppState, title: impl Into<String>, active: &'static str) -> Layout {
        Layout {
            title: title.into(),
            // A read-only page has no form to put it in.
            csrf: if state.read_only() {
                String::new()
            } else {
                state.csrf().to_owned()
            },
            read_only: state.read_only(),
            banner: None,
            refresh_secs: None,
            notice: None,
            active,
        }
    }

    /// Shows that Redis could not be read and reloads the page until it can.
    pub fn unavailable(&mut self, reason: impl std::fmt::Display) {
        self.banner = Some(format!("Redis is unavailable: {reason}"));
        self.refresh_secs = Some(RETRY_SECS);
    }

    pub fn with_notice(mut self, code: Option<&str>) -> Layout {
        self.notice = code.and_then(notice_text);
        self
    }
}

/// The text for a notice code (`replayed-3`, `paused`); unknown codes show
/// nothing, so a crafted link cannot put words on the page.
fn notice_text(code: &str) -> Option<String> {
    let fixed = match code {
        "enqueued" => "Call enqueued.",
        "cancelled" => {
            "Call cancelled: it was taken off the schedule and will not run; its caller is \
             answered `cancelled`."
        }
        "cancelling" => {
            "Cancellation sent: a worker skips the call if it is queued, or stops it if it \
             is running (after its grace period)."
        }
        "paused" => "Service paused: its workers take none of its jobs until it is resumed.",
        "resumed" => "Service resumed: its workers take its jobs again.",
        "quiet" => {
            "Quiet sent: the worker takes no new jobs from its next beat, finishes the ones \
             it runs, and stays up."
        }
        "stopping" => {
            "Stop sent: the worker takes no new jobs from its next beat, finishes the ones it \
             runs, then exits."
        }
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_owned());
    }
    let (what, n) = code.rsplit_once('-').unwrap_or((code, "1"));
    let n: u64 = n.parse().ok()?;
    let letters = if n == 1 {
        "dead letter"
    } else {
        "dead letters"
    };
    match what {
        "replayed" => Some(format!("Replayed {n} {letters}: they are queued again.")),
        "deleted" => Some(format!("Deleted {n} {letters}.")),
        _ => None,
    }
}
