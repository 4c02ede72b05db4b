//! A web dashboard for rpc-runtime queues (`rpc dashboard`): every service's
//! queued, leased and dead jobs, the workers from their heartbeats, the jobs
//! themselves, and the operator's actions on them (down to asking a worker
//! to be quiet or to stop), in the browser.
//!
//! What Sidekiq Web, Bull Board or Flower do, plus what they cannot: it knows
//! the schema. Given the `.rpc` files (`--schema`), it shows parameters and
//! replies by field with their types and docs, flags messages that do not
//! match, and builds typed forms to enqueue a call or fix and replay a dead
//! letter, checked against the job's JSON Schema before anything is queued.
//!
//! Server-rendered HTML (axum, askama templates that escape everything they
//! print), every asset compiled into the binary, no build step. It binds to
//! 127.0.0.1 unless told otherwise, and then only with a token of 16
//! characters or more; without a token it answers only to loopback host
//! names with its own port; every POST must come from its own pages and
//! carry a per-process CSRF token; `--read-only` leaves out every form and
//! action. Every page is bounded in size whatever the queues hold: values
//! are read cut to a window inside Redis, with a download for the whole.
//!
//! ```no_run
//! # async fn f() -> Result<(), rpc_dashboard::StartError> {
//! let options = rpc_dashboard::Options::new("redis://127.0.0.1:6379/");
//! rpc_dashboard::run(options).await
//! # }
//! ```
//!
//! Map of the crate:
//! - `server`: the routes and the order of the middleware;
//! - `security`: the start checks, the host check, origin and CSRF, headers;
//! - `auth`: the token, the session cookie, the throttle of wrong tokens;
//! - `bounds`: how much of each value is read and shown, per page;
//! - `state`: connections (queues are read with `rpc_runtime::Inspector`,
//!   written with `rpc_runtime::Client`), schemas, the sampler;
//! - `pages/*`: one file per page (`download`: whole values, streamed);
//!   `actions`: every POST; `call_search`: a call found by id;
//! - `schema_catalog`, `schema_forms`, `message_view`, `reply_view`,
//!   `message_head`: the schema-aware parts;
//! - `sampler`, `sparkline`: the overview's charts of the last minutes;
//!   `daily_history`: the chart of the last 30 days, from the counts
//!   workers keep in Redis, so it survives a restart of the dashboard;
//! - `paths`, `entry_id`: URLs and tokens (durations are written by
//!   `rpc_runtime::inspect::human_time`, as in `rpc stats`);
//! - `templates/` and `assets/`: the HTML, the stylesheet, the one script.

mod actions;
mod auth;
mod bounds;
mod call_search;
mod daily_history;
mod entry_id;
mod error;
mod message_head;
mod message_view;
mod pages;
mod paths;
mod reply_view;
mod sampler;
mod schema_catalog;
mod schema_forms;
mod security;
mod server;
mod sparkline;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::StartError;
pub use server::{router, serve};

/// How the dashboard runs: what it reads, where it listens, who may use it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Broker URL: `redis://`, `rediss://`, `redis+unix://`, `redis+cluster://`.
    pub url: String,
    /// Key prefix shared with the clients and workers.
    pub prefix: String,
    /// Where to listen; anything but a loopback address needs `token`.
    pub listen: SocketAddr,
    /// Schema files (`.rpc`) of the services, for typed views and forms.
    pub schemas: Vec<PathBuf>,
    /// The token every request must carry (bearer, basic-auth password, or
    /// once as `?token=` to set a session cookie); at least 16 characters.
    pub token: Option<String>,
    /// Hide and refuse every action.
    pub read_only: bool,
    /// How often the overview's samples are taken.
    pub sample_every: Duration,
    /// How many samples the charts keep per service.
    pub samples_kept: usize,
}

impl Options {
    /// Defaults: prefix `rpc`, 127.0.0.1:9870, a sample every 2 s for 5 minutes.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            prefix: "rpc".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9870)),
            schemas: Vec::new(),
            token: None,
            read_only: false,
            sample_every: Duration::from_secs(2),
            samples_kept: 150,
        }
    }
}

/// Checks the options, binds, and serves until ctrl-c or SIGTERM.
pub async fn run(options: Options) -> Result<(), StartError> {
    security::check_bind(options.listen, options.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| StartError::Bind {
            listen: options.listen,
            source: e,
        })?;
    let local = listener.local_addr().map_err(|e| StartError::Bind {
        listen: options.listen,
        source: e,
    })?;
    println!("dashboard on http://{local}/ (ctrl-c to stop)");
    serve(listener, options, rpc_runtime::shutdown_signal()).await
}
