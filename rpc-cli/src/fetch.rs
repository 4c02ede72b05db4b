//! `rpc fetch ID`: the result a worker kept for a call, by id, waiting for
//! it a while if asked. Not there (not done yet, expired, never kept) is a
//! "no": exit 1.

use std::time::{Duration, Instant};

use clap::Args;
use rpc_runtime::{Client, JobId};

use crate::failure::Failure;

/// `rpc fetch ID [--wait DURATION]`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The call id (printed by `rpc call --no-wait`).
    id: String,
    /// How long to wait for the result to be there (`0`: look once).
    #[arg(long, default_value = "0s", value_parser = crate::duration_arg::parse)]
    wait: Duration,
}

pub async fn run(client: &Client, args: FetchArgs) -> Result<(), Failure> {
    let id = JobId::from(args.id.as_str());
    // No deadline an Instant can hold: wait as long as it takes.
    let deadline = Instant::now().checked_add(args.wait);
    let fetched = loop {
        match client.fetch_result(&id).await? {
            Some(fetched) => break Some(fetched),
            None if deadline.is_none_or(|d| Instant::now() < d) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            None => break None,
        }
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
