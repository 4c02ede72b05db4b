//! What a worker-role user could do that only operators should (issue 19,
//! point 2): pause and resume services, replay or delete dead letters,
//! delete streams, write keys other than replies and kept results. Each is
//! refused now, also from inside a script of the worker's own: Redis checks
//! every command a script runs against the user who runs it.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_do_what_only_operators_may() {
    let (redis, _dir) = redis_with_roles();
    for attack in [
        // Pause and resume.
        &["SET", "rpc:{Acl}:paused", "1"][..],
        &["DEL", "rpc:{Acl}:paused"],
        // Replay or delete dead letters (reading them is the first step).
        &["XRANGE", "rpc:{Acl}:dead", "-", "+"],
        &["XREVRANGE", "rpc:{Acl}:dead", "+", "-"],
        &["XDEL", "rpc:{Acl}:dead", "0-1"],
        &["DEL", "rpc:{Acl}:dead"],
        // Delete streams and the schedule, trim dead letters. (A worker may
        // XTRIM the jobs streams it serves: its batched completions trim
        // what they acked, and XDEL and XADD MAXLEN gave it that already.)
        &["DEL", "rpc:{Acl}:jobs"],
        &["XTRIM", "rpc:{Acl}:dead", "MAXLEN", "0"],
        &["DEL", "rpc:{Acl}:schedule"],
        &["UNLINK", "rpc:{Acl}:jobs"],
        // Read what it does not serve; write outside its role.
        &["GET", "rpc:result:{someone}"],
        &["SCAN", "0"],
        &["SET", "rpc:{Acl}:jobs", "x"],
        &["SET", "app:key", "x"],
        &["RPUSH", "other:inbox:{x}", "x"],
        &["FLUSHALL"],
        &["CONFIG", "SET", "maxmemory", "1"],
    ] {
        denied(&redis, WORKER, attack);
    }
    // A script of its own runs with its rights, no more.
    let sha = cli_as(
        &redis,
        WORKER,
        &["SCRIPT", "LOAD", "return redis.call('SET', KEYS[1], '1')"],
    );
    let sha = sha.trim();
    assert_eq!(sha.len(), 40, "{sha}");
    let out = cli_as(&redis, WORKER, &["EVALSHA", sha, "1", "rpc:{Acl}:paused"]);
    assert!(
        out.contains("can't access") || out.contains("NOPERM"),
        "{out}"
    );
    assert_eq!(redis.cli(["EXISTS", "rpc:{Acl}:paused"]).trim(), "0");
}

/// The operator role, for its part, cannot write inboxes or kept results,
/// nor touch keys outside the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_forge_replies_or_leave_the_prefix() {
    let (redis, _dir) = redis_with_roles();
    denied(&redis, OPERATOR, &["RPUSH", "rpc:inbox:{x}", "x"]);
    denied(&redis, OPERATOR, &["SET", "rpc:result:{x}", "x"]);
    denied(&redis, OPERATOR, &["GET", "app:key"]);
    denied(&redis, OPERATOR, &["FLUSHALL"]);
    denied(&redis, CLIENT, &["RPUSH", "rpc:inbox:{someone}", "forged"]);
    denied(&redis, CLIENT, &["SET", "rpc:result:{call}", "forged"]);
    denied(&redis, CLIENT, &["XADD", "rpc:{Acl}:dead", "*", "m", "x"]);
    denied(&redis, CLIENT, &["RPUSH", "other:{Acl}:intake", "x"]);
}
