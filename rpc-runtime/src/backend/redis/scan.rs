//! Finding keys by pattern on every node: `SCAN` on a single Redis, on
//! each master of a Cluster. The inspector lists services and inboxes with
//! it; the backend finds the services to cancel a call in when only its id
//! is known.

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
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
    let Commands::Cluster(cluster) = con else {
        return scan(con, None, pattern, kind).await;
    };
    let mut keys = Vec::new();
    for (host, port) in masters(&mut cluster.connection()).await? {
        let route = SingleNodeRoutingInfo::ByAddress { host, port };
        keys.extend(scan(con, Some(route), pattern, kind).await?);
    }
    Ok(keys)
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

/// `SCAN`s one node to the end: every key of type `kind` matching
/// `pattern`. `route` picks a Cluster node; `None` is the only node of a
/// single Redis.
async fn scan(
    con: &Commands,
    route: Option<SingleNodeRoutingInfo>,
    pattern: &str,
    kind: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg(kind);
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
        if next == 0 {
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
