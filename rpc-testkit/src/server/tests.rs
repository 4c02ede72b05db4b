//! The test kit's own tests of `RedisServer`: options, restarts, faults.

use super::*;
use std::net::TcpStream;

fn start(builder: RedisServerBuilder) -> RedisServer {
    crate::require_redis_server();
    builder.start().expect("start redis-server")
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn starts_answers_and_stops() {
    let server = start(RedisServer::builder());
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_ne!(server.port(), 6379, "never the shared Redis");
    assert_eq!(server.cli(["PING"]).trim(), "PONG");
    assert_eq!(server.info("role").as_deref(), Some("master"));
    assert_eq!(server.info("aof_enabled").as_deref(), Some("0"));
    assert!(server.used_memory() > 0);
    assert!(server.ca_cert_path().is_none());

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(!accepts_connections(server.port()));
    // Stopping twice is harmless.
    server.stop().unwrap();
}

#[test]
fn servers_do_not_share_ports_or_data() {
    let a = start(RedisServer::builder());
    let b = start(RedisServer::builder());
    assert_ne!(a.port(), b.port());
    a.cli(["SET", "job:1", "x"]);
    a.cli(["SET", "job:2", "y"]);
    a.cli(["SET", "other", "z"]);
    assert_eq!(a.keys("job:*"), vec!["job:1", "job:2"]);
    assert!(b.keys("*").is_empty());
}

#[test]
fn kill_is_observed() {
    let server = start(RedisServer::builder());
    let pid = server.pid();
    assert!(server.is_running());
    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(!accepts_connections(server.port()));
    // Reaped: the pid no longer names a process.
    assert!(process::signal(pid, process::Signal::SIGCONT).is_err());
}

#[test]
fn restart_after_kill_keeps_aof_data() {
    let server = start(RedisServer::builder().appendfsync_always(true));
    assert_eq!(server.info("aof_enabled").as_deref(), Some("1"));
    server.cli(["RPUSH", "queue", "a", "b", "c"]);
    let first_pid = server.pid();
    let port = server.port();

    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert_eq!(server.cli(["LRANGE", "queue", "0", "-1"]), "a\nb\nc\n");

    // A graceful restart keeps it too.
    server.restart().unwrap();
    assert_eq!(server.cli(["LLEN", "queue"]).trim(), "3");
}

#[test]
fn restart_without_persistence_starts_empty() {
    let server = start(RedisServer::builder());
    server.cli(["SET", "k", "v"]);
    server.restart().unwrap();
    assert!(server.keys("*").is_empty());
}

#[test]
fn requirepass_is_enforced_and_used_by_the_kit() {
    let server = start(RedisServer::builder().requirepass("s3cret"));
    assert_eq!(server.cli(["PING"]).trim(), "PONG");
    let anonymous = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "PING"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&anonymous.stdout).contains("NOAUTH"));
    assert_eq!(
        server.url_as("", "s3cret"),
        format!("redis://:s3cret@127.0.0.1:{}/", server.port())
    );
}

#[test]
fn acl_file_users_and_extra_args() {
    let acl_dir = tempfile::tempdir().unwrap();
    let acl = acl_dir.path().join("users.acl");
    fs::write(
        &acl,
        "user default off\nuser alice on >wonderland ~* &* +@all\n",
    )
    .unwrap();
    let server = start(
        RedisServer::builder()
            .acl_file(&acl)
            .auth("alice", "wonderland")
            .args(["--maxmemory", "10mb"]),
    );
    assert_eq!(server.cli(["ACL", "WHOAMI"]).trim(), "alice");
    assert_eq!(
        server.cli(["CONFIG", "GET", "maxmemory"]),
        "maxmemory\n10485760\n"
    );
}

#[test]
fn tls_server_answers_ping_with_the_generated_ca() {
    let server = start(RedisServer::builder().tls(true));
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    let ca = server.ca_cert_path().expect("a TLS server has a CA");
    let port = server.port().to_string();

    let ping = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port, "PING"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ping.stdout).trim(), "PONG");

    // Plain TCP gets no answer, and a client trusting another CA fails.
    let plain = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "PING"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("PONG"));
    let other = start(RedisServer::builder().tls(true));
    let wrong_ca = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(other.ca_cert_path().unwrap())
        .args(["-h", "127.0.0.1", "-p", &port, "PING"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&wrong_ca.stdout).contains("PONG"));
}

#[test]
fn reports_a_server_that_cannot_start() {
    crate::require_redis_server();
    let err = RedisServer::builder()
        .args(["--no-such-option", "1"])
        .start()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("did not come up"), "{message}");
    assert!(message.contains("no-such-option"), "{message}");
}

#[test]
fn parses_info_fields() {
    let info = "# Server\r\nredis_version:7.0.15\r\nrole:master\r\n";
    assert_eq!(parse_info(info, "role").as_deref(), Some("master"));
    assert_eq!(parse_info(info, "redis_version").as_deref(), Some("7.0.15"));
    assert_eq!(parse_info(info, "missing"), None);
}
