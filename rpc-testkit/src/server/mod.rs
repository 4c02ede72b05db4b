//! One private `redis-server` process: configuration, start-up, restarts and
//! the handful of admin queries tests make.
//!
//! Start-up picks a free port by binding `127.0.0.1:0` and releasing it,
//! which races with every other test doing the same; when Redis then fails
//! to bind, the server is started again on another port. A server is only
//! handed out once it answers `PING` (and has finished loading its data
//! after a restart), so tests never see a half-started Redis.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use self::builder::RedisServerBuilder;

mod builder;
#[cfg(test)]
mod tests;

use crate::process::{self, wait_child_timeout};
use crate::{explain_spawn_error, resp, TlsFiles};

/// How often start-up tries to bind a fresh port before giving up.
const PORT_ATTEMPTS: usize = 8;
/// How long a graceful stop may take before the server is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The name of the server's log inside its directory.
const LOG_FILE: &str = "redis.log";

#[derive(Debug)]
struct Process {
    child: Option<Child>,
    pid: u32,
}

/// A `redis-server` process of this test's own, on `127.0.0.1` and a free
/// port, with its data in a temporary directory.
///
/// Dropping it kills the process and deletes the directory. Every method
/// takes `&self`, so one server can be shared (e.g. in an `Arc`) between a
/// test and the thread that kills it.
#[derive(Debug)]
pub struct RedisServer {
    config: RedisServerBuilder,
    port: u16,
    cluster_port: Option<u16>,
    tls: Option<TlsFiles>,
    process: Mutex<Process>,
    // Last, so it is removed after the process is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server with the default options (no persistence, no
    /// password, plain TCP).
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::builder().start()
    }

    /// Options for a server; finish with [`RedisServerBuilder::start`].
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Always `127.0.0.1`: the kit never listens on other interfaces.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port clients connect to (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster bus port of a cluster-mode node.
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://...` for a TLS server. It
    /// carries no credentials; see [`url_as`](Self::url_as).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/", self.scheme(), self.port)
    }

    /// This server's port on another loopback address,
    /// `redis://127.0.0.3:PORT/`, where nothing listens (every test's
    /// server binds 127.0.0.1): for a test of a dead Redis, a URL that
    /// still cannot connect after this server is killed and another test,
    /// running beside it, has started a server on the freed port.
    pub fn unreachable_url(&self) -> String {
        format!("{}://127.0.0.3:{}/", self.scheme(), self.port)
    }

    /// The URL with credentials: `redis://USER:PASSWORD@127.0.0.1:PORT/`
    /// (an empty `user` means the `default` user). Both are used verbatim,
    /// so keep them free of characters that need percent-encoding.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "{}://{user}:{password}@127.0.0.1:{}/",
            self.scheme(),
            self.port
        )
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The CA certificate a TLS client must trust; `None` without TLS.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca_cert.as_path())
    }

    /// All certificate and key files of a TLS server.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The server's working directory (`--dir`): AOF, RDB, `nodes.conf`,
    /// its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server has logged so far (useful in a failing test's
    /// message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// The process id of the current (or, once stopped, the last) process.
    pub fn pid(&self) -> u32 {
        self.lock().pid
    }

    /// Whether the process is alive (a `SIGSTOP`ped one counts as alive).
    pub fn is_running(&self) -> bool {
        let mut process = self.lock();
        match process.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                process.child = None;
                false
            }
            None => false,
        }
    }

    /// Kills the server with `SIGKILL` (a crash: nothing is flushed beyond
    /// what `appendfsync` already wrote) and waits until it is gone.
    pub fn kill(&self) -> io::Result<()> {
        let mut process = self.lock();
        if let Some(mut child) = process.child.take() {
            // A stopped process dies on SIGKILL too.
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops the server gracefully (`SIGTERM`: Redis flushes the AOF and
    /// writes an RDB if `save` is configured, then exits) and waits until it
    /// is gone; kills it if that takes over 10 s.
    pub fn stop(&self) -> io::Result<()> {
        let mut process = self.lock();
        if let Some(mut child) = process.child.take() {
            if child.try_wait()?.is_none() {
                // In case the test froze it.
                let _ = process::sigcont(child.id());
                process::sigterm(child.id())?;
                if wait_child_timeout(&mut child, STOP_GRACE)?.is_none() {
                    child.kill()?;
                    child.wait()?;
                }
            }
        }
        Ok(())
    }

    /// Stops the server (gracefully) if it runs, then starts it again on the
    /// same port, in the same directory and with the same options, and waits
    /// until it has loaded its data and answers. With
    /// [`appendonly`](RedisServerBuilder::appendonly) the data survives.
    ///
    /// To simulate a crash and recovery, call [`kill`](Self::kill) first.
    pub fn restart(&self) -> io::Result<()> {
        self.stop()?;
        let mut last_error = None;
        // Nobody should take our port in between, but a lingering socket or
        // a racing test can hold it for a moment.
        for _ in 0..PORT_ATTEMPTS {
            match self.spawn_and_wait(false) {
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                    last_error = Some(err);
                    thread::sleep(Duration::from_millis(250));
                }
                other => return other,
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("restart failed")))
    }

    /// A `redis-cli` command already pointed at this server (host, port,
    /// TLS files, credentials); add arguments and run it.
    pub fn cli_command(&self) -> Command {
        let mut command = Command::new("redis-cli");
        command
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(Stdio::null());
        if let Some(tls) = &self.tls {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(&tls.ca_cert)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        if let Some((user, password)) = &self.config.auth {
            command
                .arg("--user")
                .arg(user)
                .arg("--pass")
                .arg(password)
                .arg("--no-auth-warning");
        }
        command
    }

    /// Runs `redis-cli ARGS...` against this server and returns its standard
    /// output. Redis errors are output too (`ERR ...`), not failures; only
    /// a `redis-cli` that cannot run or exits non-zero is an error.
    pub fn try_cli<I, S>(&self, args: I) -> io::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cli(self.cli_command().args(args))
    }

    /// [`try_cli`](Self::try_cli) for test code: panics (with the server's
    /// log) when `redis-cli` fails.
    pub fn cli<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self.try_cli(args) {
            Ok(output) => output,
            Err(err) => panic!(
                "redis-cli against port {} failed: {err}\n--- redis log ---\n{}",
                self.port,
                self.log()
            ),
        }
    }

    /// One field of `INFO everything`, e.g. `info("role")` is `Some("master")`.
    pub fn info(&self, field: &str) -> Option<String> {
        parse_info(&self.cli(["INFO", "everything"]), field)
    }

    /// `INFO`'s `used_memory`, in bytes.
    pub fn used_memory(&self) -> u64 {
        self.info("used_memory")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no used_memory in INFO from port {}", self.port))
    }

    /// The keys matching a glob `pattern`, sorted (uses `KEYS`: fine for a
    /// test's small data set).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cli(["KEYS", pattern])
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// Arguments for `redis-server`, options first so extra args override.
    fn server_args(&self) -> Vec<String> {
        let config = &self.config;
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir,
            "--daemonize".into(),
            "no".into(),
            "--logfile".into(),
            String::new(),
            "--save".into(),
            config.save.clone().unwrap_or_default(),
            "--appendonly".into(),
            yes_no(config.appendonly).into(),
            // Lets tests use DEBUG SLEEP and friends on their private server.
            "--enable-debug-command".into(),
            "local".into(),
        ];
        if config.appendfsync_always {
            args.extend(["--appendfsync".into(), "always".into()]);
        }
        match &self.tls {
            None => args.extend(["--port".into(), self.port.to_string()]),
            Some(tls) => {
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    self.port.to_string(),
                    "--tls-cert-file".into(),
                    tls.server_cert.to_string_lossy().into_owned(),
                    "--tls-key-file".into(),
                    tls.server_key.to_string_lossy().into_owned(),
                    "--tls-ca-cert-file".into(),
                    tls.ca_cert.to_string_lossy().into_owned(),
                    "--tls-auth-clients".into(),
                    yes_no(config.tls_auth_clients).into(),
                ]);
                if config.cluster_enabled {
                    args.extend([
                        "--tls-cluster".into(),
                        "yes".into(),
                        "--tls-replication".into(),
                        "yes".into(),
                    ]);
                }
            }
        }
        if let Some(password) = &config.requirepass {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        if let Some(path) = &config.acl_file {
            args.extend(["--aclfile".into(), path.to_string_lossy().into_owned()]);
        }
        if config.cluster_enabled {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                config.cluster_node_timeout.as_millis().to_string(),
            ]);
            if let Some(bus) = self.cluster_port {
                args.extend(["--cluster-port".into(), bus.to_string()]);
            }
        }
        args.extend(config.extra_args.iter().cloned());
        args
    }

    /// Spawns `redis-server` and waits until it answers; on failure the
    /// process is reaped and the error carries the log.
    fn spawn_and_wait(&self, fresh_log: bool) -> io::Result<()> {
        let log_path = self.dir.path().join(LOG_FILE);
        let log = if fresh_log {
            File::create(&log_path)?
        } else {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?
        };
        let child = Command::new("redis-server")
            .args(self.server_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| explain_spawn_error("redis-server", err))?;
        {
            let mut process = self.lock();
            process.pid = child.id();
            process.child = Some(child);
        }
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = self.kill();
                let log = self.log();
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    err.kind()
                };
                Err(io::Error::new(
                    kind,
                    format!(
                        "redis-server on port {} did not come up: {err}\n--- redis log ---\n{}",
                        self.port,
                        tail(&log, 30)
                    ),
                ))
            }
        }
    }

    /// Polls until the server answers `PING` with anything but `LOADING`
    /// (an auth error also proves it is up), or it exits, or time runs out.
    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + self.config.startup_timeout;
        loop {
            {
                let mut process = self.lock();
                let child = process
                    .child
                    .as_mut()
                    .ok_or_else(|| io::Error::other("process vanished"))?;
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!("redis-server exited: {status}")));
                }
            }
            let last = match self.ping() {
                Ok(reply) if is_ready(&reply) => return Ok(()),
                Ok(reply) => reply,
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no PONG within {:?} (last: {last})",
                        self.config.startup_timeout
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(if self.tls.is_some() {
                50
            } else {
                10
            }));
        }
    }

    /// One `PING`: over raw RESP for plain TCP, through `redis-cli` for TLS.
    fn ping(&self) -> io::Result<String> {
        if self.tls.is_some() {
            let output = run_cli(self.cli_command().arg("PING"))?;
            Ok(output.trim().to_string())
        } else {
            let auth = self
                .config
                .auth
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.as_str()));
            let reply = resp::ping(self.port, auth, Duration::from_millis(500))?;
            Ok(reply.trim_start_matches(['+', '-']).to_string())
        }
    }

    fn lock(&self) -> MutexGuard<'_, Process> {
        // A panic while holding the lock leaves the data consistent (it is
        // only ever replaced whole), so poisoning is ignored.
        self.process.lock().unwrap_or_else(|err| err.into_inner())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Ports that were free a moment ago. All are held at once while probing,
/// so one call never returns the same port twice.
fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

fn yes_no(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// Any answer but `LOADING` means the server is up: `PONG`, or an auth
/// error when the kit has no (or the wrong) credentials.
fn is_ready(reply: &str) -> bool {
    !reply.is_empty() && !reply.starts_with("LOADING")
}

pub(crate) fn parse_info(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (name, value) = line.trim_end().split_once(':')?;
        (name == field).then(|| value.to_string())
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a prepared `redis-cli` and returns its standard output.
pub(crate) fn run_cli(command: &mut Command) -> io::Result<String> {
    let output = command
        .output()
        .map_err(|err| explain_spawn_error("redis-cli", err))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "redis-cli exited with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
