//! The Redis nodes a `--shards` run measures ([`crate::shards`]): one
//! redis-server or a Cluster's masters, each also reached on a connection
//! of its own (not through a Cluster client), for what only that node can
//! tell: its `INFO`, which shard queues it holds, and how many entries
//! each has had.

use rpc_runtime::protocol::{shards, Keys};
use rpc_testkit::{RedisCluster, RedisServer};

use crate::floor;
use crate::measure;
use crate::redis_stats::RedisStats;

/// The Redis the run measures: one server, or a Cluster of masters.
pub enum Redis {
    One(Box<RedisServer>),
    Cluster(RedisCluster),
}

impl Redis {
    pub fn start(masters: Option<usize>) -> Result<Redis, String> {
        match masters {
            None => RedisServer::start()
                .map(|server| Redis::One(Box::new(server)))
                .map_err(|e| format!("cannot start redis-server: {e}")),
            Some(m) => RedisCluster::start(m)
                .map(Redis::Cluster)
                .map_err(|e| format!("cannot start a {m}-master Redis Cluster: {e}")),
        }
    }

    /// The URL clients and workers connect with.
    pub fn url(&self) -> String {
        match self {
            Redis::One(server) => server.url(),
            Redis::Cluster(cluster) => cluster.cluster_url(),
        }
    }

    /// Every node's own URL and process id.
    pub fn nodes(&self) -> Vec<(String, u32)> {
        match self {
            Redis::One(server) => vec![(server.url(), server.pid())],
            Redis::Cluster(cluster) => cluster
                .nodes()
                .iter()
                .map(|node| (node.url(), node.pid()))
                .collect(),
        }
    }
}

/// A connection to one node of its own (not through a Cluster client):
/// `INFO`, `FLUSHALL` and `XINFO` are asked of that node.
pub struct Node {
    pub url: String,
    /// The redis-server process, for how often it was put on a CPU.
    pid: u32,
    pub con: redis::aio::MultiplexedConnection,
}

impl Node {
    pub async fn connect(url: String, pid: u32) -> Result<Node, String> {
        let con = floor::blocking_connection(&url)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        Ok(Node { url, pid, con })
    }

    /// Times the node's threads have been put on a CPU so far.
    pub fn wakeups(&self) -> u64 {
        measure::sched_stats(self.pid).1
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        redis::cmd("FLUSHALL")
            .arg("SYNC")
            .query_async::<()>(&mut self.con)
            .await
            .map_err(|e| format!("FLUSHALL on {}: {e}", self.url))
    }

    /// How many entries the stream `key` has ever had, if this node holds
    /// it (`Some(0)` for a missing key of one of its slots); `None` when
    /// the key's slot is another node's (`MOVED`).
    async fn entries_added(&mut self, key: &str) -> Result<Option<u64>, String> {
        let answer: Result<redis::Value, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(key)
            .query_async(&mut self.con)
            .await;
        match answer {
            Ok(info) => field_u64(&info, "entries-added")
                .map(Some)
                .ok_or_else(|| format!("XINFO STREAM {key} on {}: no entries-added", self.url)),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                Ok(None)
            }
            Err(e) if e.to_string().contains("no such key") => Ok(Some(0)),
            Err(e) => Err(format!("XINFO STREAM {key} on {}: {e}", self.url)),
        }
    }
}

impl Node {
    /// Whether this node holds `key`'s slot (a keyed `TYPE` is redirected
    /// by any other node).
    async fn holds(&mut self, key: &str) -> Result<bool, String> {
        let answer: Result<redis::Value, _> =
            redis::cmd("TYPE").arg(key).query_async(&mut self.con).await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                Ok(false)
            }
            Err(e) => Err(format!("TYPE {key} on {}: {e}", self.url)),
        }
    }
}

/// The node that holds `key`.
pub async fn holder(nodes: &mut [Node], key: &str) -> Result<usize, String> {
    for (i, node) in nodes.iter_mut().enumerate() {
        if node.holds(key).await? {
            return Ok(i);
        }
    }
    Err(format!("no node holds {key}"))
}

/// A non-negative integer field of a map reply (RESP3) or of a flat array
/// of name/value pairs (RESP2).
fn field_u64(reply: &redis::Value, name: &str) -> Option<u64> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| text(k).as_deref() == Some(name))
        .and_then(|(_, v)| match v {
            Value::Int(n) => u64::try_from(*n).ok(),
            other => text(other)?.parse().ok(),
        })
}

pub async fn read_all(nodes: &mut [Node]) -> Result<Vec<RedisStats>, String> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        out.push(RedisStats::read(&mut node.con).await?);
    }
    Ok(out)
}

/// Each of `service`'s `count` shards: the node that holds its queue and
/// its stream's `entries-added`.
pub async fn shard_entries(
    nodes: &mut [Node],
    service: &str,
    count: u32,
) -> Result<Vec<(usize, u64)>, String> {
    let keys = Keys::new("rpc");
    let mut out = Vec::with_capacity(count as usize);
    for k in 0..count {
        let key = keys.jobs(&shards::queue(service, k));
        let mut found = None;
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(n) = node.entries_added(&key).await? {
                found = Some((i, n));
                break;
            }
        }
        out.push(found.ok_or_else(|| format!("no node holds {key}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn reads_entries_added_from_either_protocol_and_refuses_garbage() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"length".to_vec()),
            Value::Int(0),
            Value::BulkString(b"entries-added".to_vec()),
            Value::Int(42),
        ]);
        assert_eq!(field_u64(&resp2, "entries-added"), Some(42));
        let resp3 = Value::Map(vec![(
            Value::SimpleString("entries-added".into()),
            Value::Int(7),
        )]);
        assert_eq!(field_u64(&resp3, "entries-added"), Some(7));
        let negative = Value::Array(vec![
            Value::BulkString(b"entries-added".to_vec()),
            Value::Int(-1),
        ]);
        assert_eq!(field_u64(&negative, "entries-added"), None);
        assert_eq!(field_u64(&Value::Nil, "entries-added"), None);
        let odd = Value::Array(vec![Value::BulkString(b"entries-added".to_vec())]);
        assert_eq!(field_u64(&odd, "entries-added"), None);
    }
}
