//! The doorbell of a queue on a Cluster (`SPUBLISH P:{Q}:ready`,
//! docs/PROTOCOL.md "Reading many queues on a Cluster") under the roles:
//! clients and workers may ring it, workers may listen to it, and nobody
//! may use another channel, nor an operator any (`ACL DRYRUN`, so the
//! roles are checked on the commands the cluster reader sends without a
//! Cluster).

use super::*;

/// `ACL DRYRUN <user> ARGS...`: `OK`, or why the user may not.
fn dry_run(redis: &RedisServer, user: &str, args: &[&str]) -> String {
    let mut all = vec!["ACL", "DRYRUN", user];
    all.extend_from_slice(args);
    redis.cli(all).trim().to_owned()
}

#[test]
fn clients_and_workers_ring_workers_listen_and_no_other_channel_is_open() {
    let (redis, _dir) = redis_with_roles();
    let ready = "rpc:{Calc~3}:ready";
    let allowed: &[(&str, &[&str])] = &[
        (CLIENT.0, &["SPUBLISH", ready, ""]),
        (TENANT_A.0, &["SPUBLISH", ready, ""]),
        (WORKER.0, &["SPUBLISH", ready, ""]),
        (WORKER.0, &["SSUBSCRIBE", ready]),
        (WORKER.0, &["SUNSUBSCRIBE", ready]),
    ];
    for (user, args) in allowed {
        assert_eq!(dry_run(&redis, user, args), "OK", "{user} {args:?}");
    }
    let refused: &[(&str, &[&str])] = &[
        (CLIENT.0, &["SSUBSCRIBE", ready]),
        (CLIENT.0, &["SPUBLISH", "rpc:{Calc}:jobs", ""]),
        (CLIENT.0, &["PUBLISH", ready, ""]),
        (CLIENT.0, &["SUBSCRIBE", ready]),
        (WORKER.0, &["SSUBSCRIBE", "rpc:{Calc}:cancelled"]),
        (WORKER.0, &["SPUBLISH", "other:{Calc}:ready", ""]),
        (WORKER.0, &["PSUBSCRIBE", "*"]),
        (OPERATOR.0, &["SPUBLISH", ready, ""]),
        (OPERATOR.0, &["SSUBSCRIBE", ready]),
    ];
    for (user, args) in refused {
        let answer = dry_run(&redis, user, args);
        assert!(
            answer.contains("no permissions"),
            "{user} {args:?}: {answer}"
        );
    }
}
