//! `rpc dead-letters [SERVICE]` lists what was dead-lettered and why;
//! `rpc replay SERVICE TOKEN... | --all` puts dead letters back on their
//! queue with fresh attempts. Listing reads through the client's
//! [`dead_letters`](rpc_runtime::Client::dead_letters); replaying is
//! [`replay_dead_letter`](rpc_runtime::Client::replay_dead_letter).
//!
//! A sharded service's dead letters are on each of its shards' queues
//! (`S`, `S~1`, ...): they are listed together, oldest first, and a token
//! of shard `k >= 1` is shown marked, `<id>~k`, so that replaying it puts
//! the letter back on the shard it came from.

use clap::Args;
use rpc_runtime::backend::DeadLetter;
use rpc_runtime::inspect::shards::{entry_order, locate, mark_token};
use rpc_runtime::{Client, Error, Inspector};

use crate::failure::Failure;
use crate::output_format::FormatArg;
use crate::progress::Progress;
use crate::table::{Align, Table};

/// `rpc dead-letters [SERVICE] [--max N] [--format table|json]`.
#[derive(Args, Debug)]
pub struct DeadLettersArgs {
    /// The service; default: every service.
    service: Option<String>,
    /// Show at most this many per service, oldest first.
    #[arg(long, default_value_t = 100)]
    max: usize,
    #[command(flatten)]
    format: FormatArg,
}

/// `rpc replay SERVICE (TOKEN... | --all)`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The service whose dead letters to replay.
    service: String,
    /// Tokens of the dead letters to replay (from `dead-letters`).
    tokens: Vec<String>,
    /// Replay every dead letter of the service.
    #[arg(long, conflicts_with = "tokens")]
    all: bool,
}

pub async fn list(
    client: &Client,
    url: &str,
    prefix: &str,
    args: DeadLettersArgs,
) -> Result<(), Failure> {
    let inspector = crate::broker::inspector(url, prefix).await?;
    let services = match args.service {
        Some(service) => {
            crate::known_service::check(&inspector, prefix, &service).await?;
            vec![service]
        }
        None => inspector.services().await?,
    };
    let mut table = Table::new(&[
        ("SERVICE", Align::Left),
        ("TOKEN", Align::Left),
        ("JOB", Align::Left),
        ("REASON", Align::Left),
    ]);
    let mut listed = 0;
    for service in &services {
        for (_, dead) in dead_letters_of(client, &inspector, service, args.max).await? {
            listed += 1;
            let message = serde_json::from_slice::<serde_json::Value>(&dead.payload)
                .unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&dead.payload).into_owned())
                });
            if args.format.is_json() {
                let line = serde_json::json!({
                    "service": service,
                    "token": dead.token,
                    "reason": dead.reason,
                    "message": message,
                });
                crate::outln!("{line}");
            } else {
                let job = message["job"].as_str().unwrap_or("(unreadable)").to_owned();
                table.row([service.clone(), dead.token, job, dead.reason]);
            }
        }
    }
    if !args.format.is_json() {
        if listed == 0 {
            eprintln!("no dead letters");
        } else {
            crate::out!("{table}");
        }
    }
    Ok(())
}

pub async fn replay(
    client: &Client,
    url: &str,
    prefix: &str,
    args: ReplayArgs,
) -> Result<(), Failure> {
    if args.tokens.is_empty() && !args.all {
        return Err(Failure::cannot(
            "choose dead letters",
            "name their tokens, or pass --all",
        ));
    }
    let inspector = crate::broker::inspector(url, prefix).await?;
    crate::known_service::check(&inspector, prefix, &args.service).await?;
    // One dead letter that cannot be replayed (garbage that was
    // dead-lettered as unreadable) must not hold back the others:
    // replay every one that can be, then say which could not.
    let mut replayed = 0;
    let mut not_replayed = Vec::new();
    let dead_letters = dead_letters_of(client, &inspector, &args.service, usize::MAX).await?;
    let chosen: Vec<_> = dead_letters
        .into_iter()
        .filter(|(_, dead)| args.all || args.tokens.contains(&dead.token))
        .collect();
    let mut progress = Progress::new("replaying", Some(chosen.len()));
    for (queue, dead) in chosen {
        // Back onto its own shard, under the token it has there.
        let (_, bare) = locate(&queue, &dead.token);
        let on_shard = DeadLetter {
            token: bare.to_owned(),
            ..dead.clone()
        };
        match client.replay_dead_letter(&queue, &on_shard).await {
            Ok(id) => {
                progress.clear();
                crate::outln!("replayed {} as call {id}", dead.token);
                replayed += 1;
            }
            Err(e) => {
                progress.clear();
                let why = match e {
                    Error::Codec { reason, .. } => reason,
                    other => other.to_string(),
                };
                eprintln!("could not replay {}: {why}", dead.token);
                not_replayed.push(dead.token);
            }
        }
        progress.add(1);
    }
    progress.finish();
    if !not_replayed.is_empty() {
        return Err(Failure::no(
            "not every dead letter was replayed",
            format!(
                "replayed {replayed}, could not replay {}: {}",
                not_replayed.len(),
                not_replayed.join(", ")
            ),
        ));
    }
    if replayed == 0 {
        eprintln!("no matching dead letters");
    }
    Ok(())
}

/// Up to `max` dead letters of `service`, oldest first over its shards,
/// each with the queue (shard) it is on and its token marked (`~k`).
async fn dead_letters_of(
    client: &Client,
    inspector: &Inspector,
    service: &str,
    max: usize,
) -> Result<Vec<(String, DeadLetter)>, Failure> {
    let mut all = Vec::new();
    for (shard, queue) in inspector.shard_queues(service).await? {
        for dead in client.dead_letters(&queue, max).await? {
            let order = entry_order(&dead.token);
            let dead = DeadLetter {
                token: mark_token(&dead.token, shard),
                ..dead
            };
            all.push(((order, shard), queue.clone(), dead));
        }
    }
    all.sort_by_key(|(order, _, _)| *order);
    all.truncate(max);
    Ok(all.into_iter().map(|(_, q, d)| (q, d)).collect())
}
