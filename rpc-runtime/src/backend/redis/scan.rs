//! Finding keys by pattern on every node: `SCAN` on a single Redis, on
//! each master of a Cluster. The inspector lists services and inboxes with
//! it; the backend finds the services to cancel a call in when only its id
//! is known. Keys of one slot (a service's rate limits) are scanned on the
//! one master that holds it, and so are a queue's group keys.

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{FromRedisValue, Value};
use rpc_protocol::Keys;

use super::commands::Commands;

/// Keys looked at per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// Every key of type `kind` matching `pattern`, on every master.
pub(crate) async fn scan_all(
    con: &Commands,
    pattern: &str,
    kind: &str,
) -> redis::RedisResult<Vec<String>> {
    scan_all_at_most(con, pattern, Some(kind), usize::MAX).await
}

/// Keys matching `pattern` (of type `kind`, of any type with `None`), on
/// every master, until about `max` are found: the scan stops there.
pub(crate) async fn scan_all_at_most(
    con: &Commands,
    pattern: &str,
    kind: Option<&str>,
    max: usize,
) -> redis::RedisResult<Vec<String>> {
    let Commands::Cluster(cluster) = con else {
        return scan(con, None, pattern, kind, max).await;
    };
    let mut keys = Vec::new();
    for (host, port) in masters(&mut cluster.connection()).await? {
        if keys.len() >= max {
            break;
        }
        let route = SingleNodeRoutingInfo::ByAddress { host, port };
        keys.extend(scan(con, Some(route), pattern, kind, max - keys.len()).await?);
    }
    Ok(keys)
}

/// Keys of type `kind` (any with `None`) matching `pattern`, all in the
/// slot of `in_slot` (a hash tag makes it so): on a Cluster only the
/// master of that slot is scanned. At most about `max` are returned; the
/// scan stops there.
pub(crate) async fn scan_slot(
    con: &Commands,
    in_slot: &str,
    pattern: &str,
    kind: Option<&str>,
    max: usize,
) -> redis::RedisResult<Vec<String>> {
    let route = match con {
        Commands::Cluster(_) => Some(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            in_slot,
            SlotAddr::Master,
        ))),
        Commands::Single(_) => None,
    };
    scan(con, route, pattern, kind, max).await
}

/// The node addresses of a Cluster's masters, from a `PING` sent to each.
async fn masters(con: &mut ClusterConnection) -> redis::RedisResult<Vec<(String, u16)>> {
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let Value::Map(replies) = con.route_command(redis::cmd("PING"), all).await? else {
        return Ok(Vec::new());
    };
    Ok(replies
        .into_iter()
        .filter_map(|(addr, _)| {
            let addr = String::from_redis_value(addr).ok()?;
            let (host, port) = addr.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect())
}

/// `SCAN`s one node to the end, or until `max` keys are found: the keys
/// of type `kind` (any type with `None`) matching `pattern`. `route`
/// picks a Cluster node; `None` is the only node of a single Redis.
async fn scan(
    con: &Commands,
    route: Option<SingleNodeRoutingInfo>,
    pattern: &str,
    kind: Option<&str>,
    max: usize,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        if let Some(kind) = kind {
            cmd.arg("TYPE").arg(kind);
        }
        let reply = match (con, &route) {
            (Commands::Cluster(c), Some(route)) => {
                let route = RoutingInfo::SingleNode(route.clone());
                c.connection().route_command(cmd, route).await?
            }
            (Commands::Cluster(c), None) => cmd.query_async(&mut c.clone()).await?,
            (Commands::Single(c), _) => cmd.query_async(&mut c.clone()).await?,
        };
        let (next, batch): (u64, Vec<String>) = FromRedisValue::from_redis_value(reply)?;
        keys.extend(batch);
        if next == 0 || keys.len() >= max {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The services that have a jobs stream under `keys`' prefix, sorted:
/// `SCAN MATCH P:{*}:jobs` (on every master of a Cluster).
pub(crate) async fn services(con: &Commands, keys: &Keys) -> redis::RedisResult<Vec<String>> {
    let found = scan_all(con, &keys.jobs_pattern(), "stream").await?;
    let mut services: Vec<String> = found
        .iter()
        .filter_map(|k| keys.service_of_jobs(k))
        .map(str::to_owned)
        .collect();
    services.sort();
    services.dedup();
    Ok(services)
}
