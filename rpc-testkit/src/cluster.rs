//! A small Redis Cluster made of private servers: masters only, or masters
//! with replicas that take over when a master dies.
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

/// A running Redis Cluster of N masters (and, from
/// [`RedisCluster::start_with_replicas`], replicas).
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
    replicas: usize,
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
        Self::start_nodes(masters, 0, Duration::from_millis(5000))
    }

    /// Starts `masters` masters with `replicas` replicas each, whose nodes
    /// give up on a silent peer after `node_timeout` (so a replica takes
    /// over from a killed master within about twice that), and waits until
    /// the cluster is `ok` and every replica has synced with its master.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rpc_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start_with_replicas(3, 1, Duration::from_millis(1000)).unwrap();
    /// assert_eq!(cluster.nodes().len(), 6);
    /// let master = cluster.master_of("{queue}:jobs").unwrap();
    /// master.kill().unwrap();
    /// cluster.wait_for_failover("{queue}:jobs", Duration::from_secs(30)).unwrap();
    /// ```
    pub fn start_with_replicas(
        masters: usize,
        replicas: usize,
        node_timeout: Duration,
    ) -> io::Result<RedisCluster> {
        Self::start_nodes(masters, replicas, node_timeout)
    }

    fn start_nodes(
        masters: usize,
        replicas: usize,
        node_timeout: Duration,
    ) -> io::Result<RedisCluster> {
        if masters < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a Redis Cluster needs at least 3 masters, not {masters}"),
            ));
        }
        let nodes = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::builder()
                    .cluster_enabled(true)
                    .cluster_node_timeout(node_timeout)
                    .start()
            })
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = RedisCluster { nodes, replicas };
        cluster.create()?;
        cluster.wait_until_ok()?;
        if replicas > 0 {
            cluster.wait_for_replicas()?;
        }
        Ok(cluster)
    }

    /// The node that is now the master of `key`'s slot, by asking the
    /// nodes still running (`CLUSTER SLOTS`; the first answer wins).
    pub fn master_of(&self, key: &str) -> Option<&RedisServer> {
        let slot: u16 = self.cli(["CLUSTER", "KEYSLOT", key]).trim().parse().ok()?;
        let port = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .find_map(|node| {
                let slots = node.try_cli(["CLUSTER", "SLOTS"]).ok()?;
                master_port_of_slot(&slots, slot)
            })?;
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// The masters now, by asking each node still running for its role.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && n.info("role").as_deref() == Some("master"))
            .collect()
    }

    /// Waits until `key`'s slot is served by a running master that every
    /// running node agrees on, and the cluster is `ok` again: after its
    /// master was killed, a replica has taken over.
    pub fn wait_for_failover(&self, key: &str, timeout: Duration) -> io::Result<&RedisServer> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(master) = self.master_of(key) {
                let agreed = master.is_running()
                    && master.info("role").as_deref() == Some("master")
                    && self
                        .nodes
                        .iter()
                        .filter(|n| n.is_running())
                        .all(|n| n.info_cluster("cluster_state").as_deref() == Some("ok"));
                if agreed {
                    return Ok(master);
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no replica took over {key}'s slot within {timeout:?}"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts moving `slot` from `source` to `target` (`IMPORTING` /
    /// `MIGRATING`) and moves every key of it over: the slot stays the
    /// source's, whose keys are now only on the target (the source answers
    /// `ASK` for them). [`RedisCluster::finish_moving_slot`] ends the move.
    pub fn start_moving_slot(&self, slot: &str, source: &RedisServer, target: &RedisServer) {
        let node_id = |node: &RedisServer| node.cli(["CLUSTER", "MYID"]).trim().to_owned();
        target.cli(["CLUSTER", "SETSLOT", slot, "IMPORTING", &node_id(source)]);
        source.cli(["CLUSTER", "SETSLOT", slot, "MIGRATING", &node_id(target)]);
        let keys = source.cli(["CLUSTER", "GETKEYSINSLOT", slot, "1000"]);
        let keys: Vec<&str> = keys
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return;
        }
        let port = target.port().to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter().copied());
        let out = source.cli(args);
        assert!(out.contains("OK"), "MIGRATE: {out}");
    }

    /// Ends a move: every master says `slot` is `target`'s.
    pub fn finish_moving_slot(&self, slot: &str, target: &RedisServer) {
        let target_id = target.cli(["CLUSTER", "MYID"]).trim().to_owned();
        for node in self.masters() {
            node.cli(["CLUSTER", "SETSLOT", slot, "NODE", &target_id]);
        }
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
        // The first node still running (a test may have killed some).
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .unwrap_or(&self.nodes[0]);
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
        let replicas = self.replicas.to_string();
        command.args(["--cluster-replicas", &replicas, "--cluster-yes"]);
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

    /// Waits until every replica reports its link to its master up.
    fn wait_for_replicas(&self) -> io::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let replicas: Vec<&RedisServer> = self
                .nodes
                .iter()
                .filter(|n| n.info("role").as_deref() == Some("slave"))
                .collect();
            let synced = replicas.len() == self.nodes.len() / (1 + self.replicas) * self.replicas
                && replicas
                    .iter()
                    .all(|n| n.info("master_link_status").as_deref() == Some("up"));
            if synced {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("replicas not in sync after {FORM_TIMEOUT:?}"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The port of the master serving `slot` in `redis-cli`'s rendering of
/// `CLUSTER SLOTS` (one value a line: start, end, then each node's host,
/// port, id, and maybe more, master first).
fn master_port_of_slot(rendered: &str, slot: u16) -> Option<u16> {
    let lines: Vec<&str> = rendered.lines().map(str::trim).collect();
    let mut i = 0;
    while i + 3 < lines.len() {
        let (start, end) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>());
        if let (Ok(start), Ok(end)) = (start, end) {
            if (start..=end).contains(&slot) && lines[i + 2].parse::<u16>().is_err() {
                return lines[i + 3].parse().ok();
            }
        }
        i += 1;
    }
    None
}

impl RedisServer {
    /// How many times this node ran `command` (lowercase, `spublish`,
    /// `xreadgroup`, `config|get`), from `INFO commandstats`; 0 if never.
    pub fn command_calls(&self, command: &str) -> u64 {
        let stats = self.cli(["INFO", "commandstats"]);
        let field = format!("cmdstat_{command}");
        parse_info(&stats, &field)
            .and_then(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Every command this node ran, from `INFO commandstats`.
    pub fn commands_run(&self) -> u64 {
        self.cli(["INFO", "commandstats"])
            .lines()
            .filter(|l| l.starts_with("cmdstat_"))
            .filter_map(|l| {
                l.split(':')
                    .nth(1)?
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// CPU seconds this node has used, system and user
    /// (`used_cpu_sys + used_cpu_user` of `INFO cpu`).
    pub fn cpu_seconds(&self) -> f64 {
        let info = self.cli(["INFO", "cpu"]);
        ["used_cpu_sys", "used_cpu_user"]
            .iter()
            .filter_map(|f| parse_info(&info, f)?.parse::<f64>().ok())
            .sum()
    }

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
