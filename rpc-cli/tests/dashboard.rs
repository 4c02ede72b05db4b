//! `rpc dashboard` as a user starts it: the real binary.

mod support;

use support::rpc;

#[test]
fn the_dashboard_refuses_a_public_address_without_a_token() {
    // `--listen 0.0.0.0:...` alone would put replay and delete on the network.
    let (ok, _, stderr) = rpc(
        "redis://127.0.0.1:1/",
        &["dashboard", "--listen", "0.0.0.0:0"],
    );
    assert!(!ok);
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
}
