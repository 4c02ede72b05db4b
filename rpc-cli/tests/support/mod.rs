//! Running the real `rpc` binary from the integration tests.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::process::Command;

/// Runs `rpc --url URL ARGS...`; (success, stdout, stderr).
pub fn rpc(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", url])
        .args(args)
        .output()
        .expect("run rpc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `rpc --url URL ARGS...`; (exit status, stdout, stderr), for the
/// tests of the exit-status rule (0 done, 1 "no", 2 could not run).
pub fn rpc_status(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", url])
        .args(args)
        .output()
        .expect("run rpc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`rpc`] on a blocking thread, so that a worker on the test's runtime
/// keeps running meanwhile.
pub async fn rpc_async(url: &str, args: &[&str]) -> (bool, String, String) {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rpc(&url, &args)
    })
    .await
    .expect("rpc task")
}

/// [`rpc_status`] on a blocking thread, so that a worker on the test's
/// runtime keeps running meanwhile.
pub async fn rpc_status_async(url: &str, args: &[&str]) -> (i32, String, String) {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rpc_status(&url, &args)
    })
    .await
    .expect("rpc task")
}
