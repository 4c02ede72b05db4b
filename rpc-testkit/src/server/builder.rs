//! Options for a private `redis-server` ([`RedisServerBuilder`]), and
//! starting one on a free port.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::{free_ports, Process, RedisServer, PORT_ATTEMPTS};
use crate::TlsFiles;

/// Options for a [`RedisServer`]; get one from [`RedisServer::builder`].
///
/// By default the server keeps nothing on disk (`--save ""`,
/// `--appendonly no`), needs no password and speaks plain TCP.
///
/// ```
/// use rpc_testkit::RedisServer;
///
/// let server = RedisServer::builder()
///     .appendonly(true)
///     .appendfsync_always(true)
///     .requirepass("s3cret")
///     .start()
///     .unwrap();
/// assert_eq!(server.info("aof_enabled").as_deref(), Some("1"));
/// assert!(server.url_as("", "s3cret").starts_with("redis://:s3cret@127.0.0.1:"));
/// ```
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    pub(super) appendonly: bool,
    pub(super) appendfsync_always: bool,
    pub(super) save: Option<String>,
    pub(super) requirepass: Option<String>,
    pub(super) acl_file: Option<PathBuf>,
    pub(super) auth: Option<(String, String)>,
    pub(super) tls: bool,
    pub(super) tls_auth_clients: bool,
    pub(super) cluster_enabled: bool,
    pub(super) cluster_node_timeout: Duration,
    pub(super) extra_args: Vec<String>,
    pub(super) startup_timeout: Duration,
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        RedisServerBuilder {
            appendonly: false,
            appendfsync_always: false,
            save: None,
            requirepass: None,
            acl_file: None,
            auth: None,
            tls: false,
            tls_auth_clients: false,
            cluster_enabled: false,
            cluster_node_timeout: Duration::from_millis(5000),
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

impl RedisServerBuilder {
    /// Turns the append-only file on (`--appendonly yes`), so data survives
    /// [`RedisServer::restart`] and, depending on
    /// [`appendfsync_always`](Self::appendfsync_always),
    /// [`RedisServer::kill`].
    pub fn appendonly(mut self, on: bool) -> Self {
        self.appendonly = on;
        self
    }

    /// Fsyncs the append-only file after every write (`--appendfsync
    /// always`), so not even `SIGKILL` loses an acknowledged write. Turning
    /// it on turns on [`appendonly`](Self::appendonly) too.
    pub fn appendfsync_always(mut self, on: bool) -> Self {
        self.appendfsync_always = on;
        if on {
            self.appendonly = true;
        }
        self
    }

    /// Enables RDB snapshots with a Redis `save` rule such as `"60 1"`
    /// (disabled by default).
    pub fn save(mut self, rule: impl Into<String>) -> Self {
        self.save = Some(rule.into());
        self
    }

    /// Requires this password for the `default` user (`--requirepass`).
    /// The kit's own commands authenticate with it.
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        let password = password.into();
        self.auth
            .get_or_insert_with(|| ("default".into(), password.clone()));
        self.requirepass = Some(password);
        self
    }

    /// Loads users from an ACL file (`--aclfile`). Tell the kit which user to
    /// run its own commands as with [`auth`](Self::auth); without it they run
    /// unauthenticated.
    pub fn acl_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.acl_file = Some(path.into());
        self
    }

    /// The user and password the kit uses for `redis-cli` and readiness
    /// checks. (Clients under test bring their own, see
    /// [`RedisServer::url_as`].)
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// Serves TLS only: generates a throwaway CA and certificates with the
    /// `openssl` command, listens with `--tls-port` and disables the plain
    /// port. [`RedisServer::url`] then starts with `rediss://` and
    /// [`RedisServer::ca_cert_path`] is the CA to trust.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// With [`tls`](Self::tls): require client certificates (mutual TLS,
    /// `--tls-auth-clients yes`). Off by default; the client certificate is
    /// in [`RedisServer::tls_files`].
    pub fn tls_auth_clients(mut self, on: bool) -> Self {
        self.tls_auth_clients = on;
        self
    }

    /// Runs the node in cluster mode (`--cluster-enabled yes`, its own
    /// `nodes.conf`, a free cluster bus port). Alone it is a cluster of no
    /// slots; [`RedisCluster`](crate::RedisCluster) forms real ones.
    pub fn cluster_enabled(mut self, on: bool) -> Self {
        self.cluster_enabled = on;
        self
    }

    /// `--cluster-node-timeout` (5 s by default).
    pub fn cluster_node_timeout(mut self, timeout: Duration) -> Self {
        self.cluster_node_timeout = timeout;
        self
    }

    /// Adds one raw `redis-server` argument, e.g. `"--maxmemory"` then
    /// `"10mb"`. Extra arguments come last, so they override the kit's.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Adds raw `redis-server` arguments; see [`arg`](Self::arg).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long to wait for the server to answer `PING` (10 s by default).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the server and waits until it answers.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] and an install hint when
    /// `redis-server` (or, for TLS, `openssl`) is missing, and with the
    /// server's log when it does not come up.
    pub fn start(self) -> io::Result<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("rpc-testkit-redis-")
            .tempdir()?;
        let tls = if self.tls {
            Some(TlsFiles::generate(&dir.path().join("tls"))?)
        } else {
            None
        };
        let acl_file = match &self.acl_file {
            // Redis resolves a relative path against its own --dir.
            Some(path) => Some(std::path::absolute(path)?),
            None => None,
        };
        let mut server = RedisServer {
            config: RedisServerBuilder { acl_file, ..self },
            port: 0,
            cluster_port: None,
            tls,
            process: Mutex::new(Process {
                child: None,
                pid: 0,
            }),
            dir,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(if server.config.cluster_enabled { 2 } else { 1 })?;
            server.port = ports[0];
            server.cluster_port = ports.get(1).copied();
            match server.spawn_and_wait(true) {
                Ok(()) => return Ok(server),
                // Someone took the port between our probe and Redis' bind:
                // try another one.
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free port found")))
    }
}
