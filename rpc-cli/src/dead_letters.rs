//! `rpc dead-letters [SERVICE]` lists what was dead-lettered and why;
//! `rpc replay SERVICE TOKEN... | --all` puts dead letters back on their
//! queue with fresh attempts. Listing reads through the client's
//! [`dead_letters`](rpc_runtime::Client::dead_letters); replaying is
//! [`replay_dead_letter`](rpc_runtime::Client::replay_dead_letter).

use clap::Args;
use rpc_runtime::{Client, Error};

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
        for dead in client.dead_letters(service, args.max).await? {
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
    let dead_letters = client.dead_letters(&args.service, usize::MAX).await?;
    let chosen: Vec<_> = dead_letters
        .into_iter()
        .filter(|dead| args.all || args.tokens.contains(&dead.token))
        .collect();
    let mut progress = Progress::new("replaying", Some(chosen.len()));
    for dead in chosen {
        match client.replay_dead_letter(&args.service, &dead).await {
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
