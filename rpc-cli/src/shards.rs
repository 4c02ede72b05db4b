//! `rpc shards SERVICE [N]`: a sharded service's shard count, as the
//! broker keeps it (`P:{S}:shards`, docs/PROTOCOL.md "Sharded services").
//! Without `N` it prints `count` (what clients place calls on; unset: the
//! schema's number) and `seen` (the most shards the service ever had,
//! which workers keep reading so nothing is lost). With `N` it sets the
//! count through the broker's `shards.lua set`, which also raises `seen`:
//! lowering the count stops new calls going to the last shards while the
//! workers drain what is on them.

use clap::Args;
use rpc_protocol::shards::{is_count, MAX_SHARDS};
use rpc_runtime::backend::{connect, BrokerConfig, ShardCount, ShardOp};

use crate::failure::Failure;
use crate::output_format::FormatArg;

/// `rpc shards SERVICE [N] [--format table|json]`.
#[derive(Args, Debug)]
pub struct ShardsArgs {
    /// The service.
    service: String,
    /// Set the shard count clients place calls on to this (1 to 256).
    count: Option<u32>,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(url: &str, prefix: &str, args: ShardsArgs) -> Result<(), Failure> {
    if let Some(n) = args.count {
        if !is_count(n) {
            return Err(Failure::cannot(
                format!("set the shard count of {} to {n}", args.service),
                format!("a service has 1 to {MAX_SHARDS} shards"),
            ));
        }
    }
    let inspector = crate::broker::inspector(url, prefix).await?;
    crate::known_service::check(&inspector, prefix, &args.service).await?;
    let now = match args.count {
        None => inspector.shard_count(&args.service).await?,
        Some(n) => {
            let config = BrokerConfig {
                prefix: prefix.to_owned(),
                ..BrokerConfig::new(url)
            };
            let broker = connect(&config).await?;
            broker.shard_count(&args.service, ShardOp::Set(n)).await?
        }
    };
    if args.format.is_json() {
        let line = serde_json::json!({
            "service": args.service,
            "count": now.count,
            "seen": now.seen,
        });
        crate::outln!("{line}");
    } else {
        crate::outln!("{}", describe(&args.service, &now, args.count.is_some()));
    }
    Ok(())
}

/// What `now` means, for people.
fn describe(service: &str, now: &ShardCount, set: bool) -> String {
    let count = match now.count {
        Some(n) => format!("count {n}"),
        None => "count not set (clients use the schema's number)".to_owned(),
    };
    let seen = match now.seen {
        Some(n) => format!("seen {n} (workers read shards 0 to {})", n - 1),
        None => "seen not recorded (no worker has served it sharded)".to_owned(),
    };
    let verb = if set { "now " } else { "" };
    format!("{service}: {verb}{count}, {seen}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_for_people() {
        let now = ShardCount {
            count: Some(4),
            seen: Some(8),
        };
        assert_eq!(
            describe("Orders", &now, false),
            "Orders: count 4, seen 8 (workers read shards 0 to 7)"
        );
        assert!(describe("Orders", &ShardCount::default(), false).contains("not set"));
    }
}
