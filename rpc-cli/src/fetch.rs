//! `rpc fetch ID`: the result a worker kept for a call, by id, waiting for
//! it a while if asked. Not there (not done yet, expired, never kept) is a
//! "no": exit 1. With `--progress`, the call's progress is shown on stderr
//! while it waits (`progress_bar.rs`): a process that did not place the
//! call watches it by id.

use std::time::{Duration, Instant};

use clap::Args;
use rpc_runtime::{Client, Error, JobId};
use serde_json::Value;

use crate::failure::Failure;
use crate::progress_bar::ProgressBar;

/// `rpc fetch ID [--wait DURATION] [--progress]`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The call id (printed by `rpc call --no-wait`).
    id: String,
    /// How long to wait for the result to be there (`0`: look once).
    #[arg(long, default_value = "0s", value_parser = crate::duration_arg::parse)]
    wait: Duration,
    /// Show the call's progress on stderr while waiting (with `--wait`): a
    /// bar on a terminal, else one line per new value.
    #[arg(long)]
    progress: bool,
}

pub async fn run(client: &Client, args: FetchArgs) -> Result<(), Failure> {
    let id = JobId::from(args.id.as_str());
    let fetching = wait_for_result(client, &id, args.wait);
    let fetched = if args.progress {
        with_progress(client, &id, args.wait, fetching).await?
    } else {
        fetching.await?
    };
    match fetched {
        Some(Ok(data)) => crate::outln!("{data}"),
        Some(Err(e)) => return Err(e.into()),
        None => {
            return Err(Failure::no(
                format!("no result for {id}"),
                "no result is kept under that id (not done yet, expired, or never kept)",
            ))
        }
    }
    Ok(())
}

type Fetched = Option<Result<Value, Error>>;

/// The kept result, looked for until `wait` has passed.
async fn wait_for_result(client: &Client, id: &JobId, wait: Duration) -> Result<Fetched, Error> {
    // No deadline an Instant can hold: wait as long as it takes.
    let deadline = Instant::now().checked_add(wait);
    loop {
        match client.fetch_result(id).await? {
            Some(fetched) => return Ok(Some(fetched)),
            None if deadline.is_none_or(|d| Instant::now() < d) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            None => return Ok(None),
        }
    }
}

/// Waits for `fetching` while drawing the call's progress, watched by id.
async fn with_progress(
    client: &Client,
    id: &JobId,
    wait: Duration,
    fetching: impl std::future::Future<Output = Result<Fetched, Error>>,
) -> Result<Fetched, Error> {
    let mut watch = client.watch_progress(id, wait);
    let mut bar = ProgressBar::new();
    tokio::pin!(fetching);
    let fetched = loop {
        tokio::select! {
            fetched = &mut fetching => break fetched,
            update = watch.next() => match update {
                Some(Ok(update)) => bar.show(&update),
                Some(Err(e)) => bar.warn(&e),
                None => break fetching.await,
            },
        }
    };
    bar.clear();
    fetched
}
