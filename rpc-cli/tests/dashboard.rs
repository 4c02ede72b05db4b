//! `rpc dashboard` as a user starts it: the real binary.

use std::process::Command;

#[test]
fn the_dashboard_refuses_a_public_address_without_a_token() {
    // `--listen 0.0.0.0:...` alone would put replay and delete on the network.
    let out = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["--url", "redis://127.0.0.1:1/", "dashboard", "--listen", "0.0.0.0:0"])
        .env_remove("RPC_DASHBOARD_TOKEN")
        .output()
        .expect("run rpc");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
}
