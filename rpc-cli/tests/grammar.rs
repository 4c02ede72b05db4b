//! One grammar for every command of the real `rpc` binary, against a
//! private redis-server: the exit-status rule (0 done, 1 the answer is
//! "no", 2 could not run), a call to a service that never existed failing
//! at once, a closed pipe ending the output quietly, `--version`,
//! `completions` and the exit-status text in `--help`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rpc_testkit::{ChildGuard, RedisServer};

mod support;

use support::rpc_status;

/// Reproduces `rpc call Calculater.add ...` (a typo) waiting out its 30 s
/// timeout and leaving a stream `rpc:{Calculater}:jobs` behind: it now
/// fails at once, exit 2, naming the known services, and writes nothing;
/// `--allow-new-service` queues it anyway.
#[test]
fn a_call_to_a_service_that_never_existed_fails_at_once_naming_the_known_ones() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    redis.cli([
        "XGROUP",
        "CREATE",
        "rpc:{Calculator}:jobs",
        "workers",
        "0",
        "MKSTREAM",
    ]);

    let t0 = Instant::now();
    let (code, out, err) = rpc_status(
        &url,
        &[
            "call",
            "Calculater.add",
            r#"{"a":1,"b":2}"#,
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "it waited: {:?}",
        t0.elapsed()
    );
    assert!(
        err.contains("`Calculater`") && err.contains("known services: Calculator"),
        "{err}"
    );
    assert!(err.contains("--allow-new-service"), "{err}");
    assert_eq!(
        redis.cli(["KEYS", "*Calculater*"]).trim(),
        "",
        "nothing written for the typo"
    );

    // Asked for: queued for a service whose workers are not up yet.
    let (code, id, err) = rpc_status(
        &url,
        &[
            "call",
            "Mail.send",
            "{}",
            "--allow-new-service",
            "--no-wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!id.trim().is_empty());
    assert_ne!(
        redis.cli(["KEYS", "*Mail*"]).trim(),
        "",
        "the call is queued"
    );
    // Once queued, the service is known: no flag needed.
    let (code, _, err) = rpc_status(&url, &["call", "Mail.send", "{}", "--no-wait"]);
    assert_eq!(code, 0, "{err}");
}

/// Every command by the one rule: the answer "no" is 1, could not run is 2.
#[test]
fn every_command_exits_by_one_rule() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    redis.cli([
        "XGROUP",
        "CREATE",
        "rpc:{Calculator}:jobs",
        "workers",
        "0",
        "MKSTREAM",
    ]);

    // 0: done.
    for args in [
        &["stats"][..],
        &["stats", "Calculator", "--format", "json"],
        &["scheduled"],
        &["dead-letters"],
        &["periodic"],
        &["ping"],
    ] {
        let (code, out, err) = rpc_status(&url, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    // 1: it ran, and the answer is no.
    for (args, says) in [
        (
            &["call", "Calculator.add", "{}", "--timeout", "300ms"][..],
            "no reply",
        ),
        (&["fetch", "nope"], "no result is kept"),
        (&["cancel", "deadbeef"], "no such call"),
    ] {
        let (code, out, err) = rpc_status(&url, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // 2: could not run (bad arguments, an unknown service, no Redis).
    for (args, says) in [
        (&["call"][..], "Usage"),
        (&["stats", "--format", "yaml"], "invalid value"),
        (
            &["call", "Calculator.add", "not json"],
            "read the parameters",
        ),
        (&["stats", "Nope"], "no such service"),
        (&["scheduled", "Nope"], "no such service"),
        (&["dead-letters", "Nope"], "no such service"),
        (&["replay", "Nope", "--all"], "no such service"),
        (&["pause", "Nope"], "no such service"),
    ] {
        let (code, out, err) = rpc_status(&url, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    drop(redis);
    // No Redis: a port nothing listens on (the one just freed may be
    // taken at once by another test's redis-server).
    let nothing = "redis://127.0.0.1:1/";
    for args in [&["stats"][..], &["call", "Calculator.add", "{}"], &["ping"]] {
        let (code, out, err) = rpc_status(nothing, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
    }
}

/// Reproduces `rpc ... --format json | head -1` panicking with a backtrace
/// on the closed pipe: the reader closes a real pipe after one line while
/// `rpc` still has most of its output to write; `rpc` exits 0, silent.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    // Far more than a pipe holds (64 KiB): rpc is mid-write when it closes.
    let message = format!(
        r#"{{"v":1,"id":"x","job":"Pipe.echo","params":{{"pad":"{}"}}}}"#,
        "p".repeat(200)
    );
    redis.cli([
        "EVAL",
        "for i = 1, 3000 do redis.call('XADD', KEYS[1], '*', 'reason', 'r', 'm', ARGV[1]) end",
        "1",
        "rpc:{Pipe}:dead",
        &message,
    ]);
    let mut rpc = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args(["--url", &url, "dead-letters", "Pipe", "--max", "5000"])
            .args(["--format", "json"])
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("spawn rpc");
    let stdout = rpc.child_mut().stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read a line");
    // The reader is dropped here: the pipe's read end is closed.
    assert!(first.contains("Pipe.echo"), "{first}");
    let status = rpc
        .wait_timeout(Duration::from_secs(30))
        .expect("wait")
        .expect("rpc ends once its reader is gone");
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(
        rpc.child_mut().stderr.as_mut().expect("stderr"),
        &mut stderr,
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn version_completions_and_the_exit_rule_in_help() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args(args)
            .output()
            .expect("run rpc");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let version = run(&["--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_rpc()") && bash.contains("backlog-check") && bash.contains("--format"),
        "{bash}"
    );
    assert!(run(&["completions", "zsh"]).starts_with("#compdef rpc"));
    let help = run(&["--help"]);
    assert!(
        help.contains("Exit status") && help.contains("could not run"),
        "{help}"
    );
}

/// `rpc replay --all` over many dead letters shows its progress on stderr
/// when that is a terminal (`replaying N/TOTAL`), and never when stderr is
/// a pipe or a file: no carriage returns in a log.
#[test]
fn replay_all_shows_progress_on_a_terminal_only() {
    rpc_testkit::require_redis_server();
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let fill = |service: &str| {
        redis.cli([
            "EVAL",
            "for i = 1, 300 do redis.call('XADD', KEYS[1], '*', 'reason', 'r', 'm', \
             '{\"v\":1,\"id\":\"p' .. i .. '\",\"job\":\"' .. ARGV[1] .. '.echo\",\"params\":{}}') end",
            "1",
            &format!("rpc:{{{service}}}:dead"),
            service,
        ]);
    };

    // On a pseudo-terminal: the progress line is drawn.
    fill("OnTty");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpc"));
    command.args(["--url", &url, "replay", "OnTty", "--all"]);
    let mut session = expectrl::Session::spawn(command).expect("spawn rpc on a pty");
    let mut seen = Vec::new();
    let t0 = Instant::now();
    loop {
        let mut buf = [0u8; 8192];
        match session.try_read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => {
                let status = session.get_process().status();
                if !matches!(status, Ok(expectrl::process::unix::WaitStatus::StillAlive)) {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "rpc did not end");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("replaying 1/300"), "{text}");
    assert_eq!(redis.cli(["XLEN", "rpc:{OnTty}:jobs"]).trim(), "300");

    // On pipes: the same replay, and no progress at all.
    fill("OnPipe");
    let (code, out, err) = rpc_status(&url, &["replay", "OnPipe", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 300, "{out}");
    assert!(!err.contains("replaying") && !err.contains('\r'), "{err}");
}
