//! Private `redis-server` processes (and other child processes) for tests
//! and benches.
//!
//! # Why this crate exists
//!
//! The runtime's promises are about what happens when Redis misbehaves: it
//! restarts and loses (or keeps) its streams, it is killed mid-job, it needs a
//! password, it speaks TLS, it is a Cluster. None of that can be tested
//! against a Redis someone else shares: a test that restarts or flushes the
//! developer's Redis on port 6379 breaks every other test and every other
//! program using it, and tests that share one server see each other's keys.
//!
//! So every test that needs Redis starts its own: a `redis-server` child
//! process bound to `127.0.0.1` on a free port, with its data in a temporary
//! directory, configured for exactly what the test exercises. Dropping the
//! handle kills the process and removes the directory. Starting one takes a
//! few milliseconds, so there is no reason to share.
//!
//! The API is plain synchronous `std` (no async runtime), so it works the
//! same from `#[test]`, `#[tokio::test]`, benches and helper binaries. Admin
//! commands go through `redis-cli` rather than a Redis client library: the
//! test kit must not depend on the code it helps to test.
//!
//! # What it offers
//!
//! - [`RedisServer`]: one server; options through [`RedisServer::builder`]
//!   (AOF persistence, ACL file or `requirepass`, TLS with a throwaway CA,
//!   cluster mode, extra arguments). It can be killed, stopped, restarted on
//!   the same port and directory, and queried (`INFO`, `KEYS`, `redis-cli`).
//! - [`RedisCluster`]: a ready Redis Cluster of N masters.
//! - [`ChildGuard`] and the [`process`] module: test worker processes that are
//!   killed when the test ends, whatever way it ends, and signal helpers
//!   (`SIGKILL`, `SIGSTOP`, `SIGCONT`, `SIGTERM`) to simulate crashes and
//!   hangs.
//! - [`Tool`] and the [`tools`] module: the other programs some tests need
//!   (Chromium, chromedriver, libfaketime, promtool) and the one rule for a
//!   missing one: skipped with a line saying what to install, or a failure
//!   when the run requires every tool ([`REQUIRE_TOOLS_VAR`], set by
//!   `scripts/test`, or `CI`).
//!
//! # Requirements
//!
//! `redis-server` and `redis-cli` on `PATH` (Debian: `apt-get install -y
//! redis-server`, which pulls in `redis-tools`), and the `openssl` command for
//! TLS servers. When they are missing, starting a server fails with an error
//! that says what to install; [`require_redis_server`] turns that into a panic
//! for test code. `scripts/test` installs these and every [`Tool`].
//!
//! # Example
//!
//! ```
//! use rpc_testkit::RedisServer;
//!
//! let server = RedisServer::start().expect("start redis-server");
//! assert!(server.url().starts_with("redis://127.0.0.1:"));
//! server.cli(["SET", "greeting", "hello"]);
//! assert_eq!(server.cli(["GET", "greeting"]).trim(), "hello");
//! assert_eq!(server.keys("greet*"), vec!["greeting".to_string()]);
//! // Dropping `server` kills the process and deletes its directory.
//! ```
#![warn(missing_docs)]

mod cluster;
pub mod process;
mod resp;
mod server;
mod tls;
pub mod tools;

pub use cluster::RedisCluster;
pub use process::ChildGuard;
pub use server::{RedisServer, RedisServerBuilder};
pub use tls::TlsFiles;
pub use tools::{tools_required, Tool, REQUIRE_TOOLS_VAR};

use std::process::{Command, Stdio};

/// What to tell a person whose machine lacks Redis.
pub const INSTALL_HINT: &str = "install redis-server: apt-get install -y redis-server";

/// Whether `redis-server` and `redis-cli` can be run from `PATH`.
///
/// Use it to skip, or [`require_redis_server`] to fail loudly.
pub fn redis_server_available() -> bool {
    runs("redis-server") && runs("redis-cli")
}

/// Panics with an install hint unless `redis-server` and `redis-cli` are on
/// `PATH`. Meant for the first line of a test.
pub fn require_redis_server() {
    if !redis_server_available() {
        panic!("redis-server or redis-cli not found on PATH; {INSTALL_HINT}");
    }
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Turns "program not found" into an error that says what to install.
fn explain_spawn_error(program: &str, err: std::io::Error) -> std::io::Error {
    if err.kind() == std::io::ErrorKind::NotFound {
        let hint = match program {
            "openssl" => "install openssl: apt-get install -y openssl",
            _ => INSTALL_HINT,
        };
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("`{program}` not found on PATH; {hint}"),
        )
    } else {
        std::io::Error::new(err.kind(), format!("running `{program}`: {err}"))
    }
}
