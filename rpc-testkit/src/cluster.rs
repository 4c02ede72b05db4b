//! A small Redis Cluster (masters only) made of private servers.
//!
//! Key naming with hash tags only matters on a cluster, and a single node in
//! cluster mode serves no slots, so tests of it need a real one. Forming it
//! is `redis-cli --cluster create`, which assigns the 16384 slots and joins
//! the nodes; the cluster is handed out once every node reports
//! `cluster_state:ok` and agrees on the slot map.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::server::{parse_info, run_cli};
use crate::RedisServer;

/// How long the nodes may take to agree once created.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Redis Cluster of N masters and no replicas.
///
/// Dropping it kills every node and removes their directories.
///
/// ```
/// use rpc_testkit::RedisCluster;
///
/// let cluster = RedisCluster::start(3).unwrap();
/// assert_eq!(cluster.urls().len(), 3);
/// // `-c` makes redis-cli follow MOVED redirects to the slot's owner.
/// cluster.cli(["SET", "{user:1}:name", "ada"]);
/// assert_eq!(cluster.cli(["GET", "{user:1}:name"]).trim(), "ada");
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` cluster-mode servers (at least 3, as Redis
    /// requires), creates the cluster and waits until it is `ok`.
    pub fn start(masters: usize) -> io::Result<RedisCluster> {
        if masters < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a Redis Cluster needs at least 3 masters, not {masters}"),
            ));
        }
        let nodes = (0..masters)
            .map(|_| RedisServer::builder().cluster_enabled(true).start())
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = RedisCluster { nodes };
        cluster.create()?;
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Every node's URL (`redis://127.0.0.1:PORT/`); a cluster client takes
    /// them as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The whole cluster as one URL, every node a seed:
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../`.
    pub fn cluster_url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.host(), n.port()))
            .collect();
        format!("redis+cluster://{}/", hosts.join(","))
    }

    /// Runs `redis-cli -c ARGS...` against the first node (following
    /// redirects) and returns its output; panics when `redis-cli` fails.
    pub fn cli<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let node = &self.nodes[0];
        match run_cli(node.cli_command().arg("-c").args(args)) {
            Ok(output) => output,
            Err(err) => panic!("redis-cli -c against the cluster failed: {err}"),
        }
    }

    fn create(&self) -> io::Result<()> {
        let mut command = self.nodes[0].cli_command();
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = run_cli(&mut command)?;
        if output.contains("[ERR]") {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed:\n{output}"
            )));
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok` and knows all the
    /// others, so a client's first `CLUSTER SLOTS` sees the whole map.
    fn wait_until_ok(&self) -> io::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let ready = self.nodes.iter().all(|node| {
                node.info_cluster("cluster_state").as_deref() == Some("ok")
                    && node.info_cluster("cluster_known_nodes")
                        == Some(self.nodes.len().to_string())
                    && node.info_cluster("cluster_slots_ok").as_deref() == Some("16384")
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|node| {
                        format!(
                            "{}: {}",
                            node.port(),
                            node.try_cli(["CLUSTER", "INFO"]).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cluster not ok after {FORM_TIMEOUT:?}:\n{}",
                        states.join("\n")
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl RedisServer {
    /// One field of `CLUSTER INFO`, e.g. `cluster_state`.
    fn info_cluster(&self, field: &str) -> Option<String> {
        parse_info(&self.try_cli(["CLUSTER", "INFO"]).ok()?, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_forms_and_serves_keys_in_different_slots() {
        crate::require_redis_server();
        let started = Instant::now();
        let cluster = RedisCluster::start(3).expect("start cluster");
        assert_eq!(cluster.nodes().len(), 3);
        assert!(cluster
            .urls()
            .iter()
            .all(|url| url.starts_with("redis://127.0.0.1:")));

        // These keys hash to slots owned by different nodes.
        let keys = ["a", "b", "c", "{queue}:x", "{inbox}:1"];
        let slots: Vec<String> = keys
            .iter()
            .map(|key| cluster.cli(["CLUSTER", "KEYSLOT", key]).trim().to_string())
            .collect();
        for (key, value) in keys.iter().zip(1..) {
            assert_eq!(cluster.cli(["SET", key, &value.to_string()]).trim(), "OK");
        }
        for (key, value) in keys.iter().zip(1..) {
            assert_eq!(cluster.cli(["GET", key]).trim(), value.to_string());
        }
        // Each key lives on exactly one node, and more than one node is used.
        let holders: Vec<usize> = cluster
            .nodes()
            .iter()
            .map(|node| keys.iter().filter(|key| node.keys(key).len() == 1).count())
            .collect();
        assert_eq!(holders.iter().sum::<usize>(), keys.len(), "slots {slots:?}");
        assert!(
            holders.iter().filter(|&&n| n > 0).count() > 1,
            "{holders:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn refuses_too_few_masters() {
        let err = RedisCluster::start(2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
