//! Issue 24 point 5, the operator's view of priorities and group keys: how
//! many calls wait in each priority lane of a service (summed over its
//! shards, adding up to `queued`), and its busiest group keys with their
//! calls running and parked (bounded: the top ones of a capped look).
//! Built through the broker traits on both brokers, and by hand on Redis
//! for the garbage and the bound.

use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::priority::lane_queue;
use rpc_runtime::backend::{connect, Broker, BrokerConfig, GroupAdmission, GroupSlot};
use rpc_runtime::inspect::{GroupKeyLoad, Inspector, MAX_GROUP_KEYS_VISITED, TOP_GROUP_KEYS};
use rpc_testkit::{RedisCluster, RedisServer};

const QUEUE: &str = "Lanes";

fn job(id: &str, key: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"id":"{id}","job":"Lanes.send","params":{{}},"group":"{key}","attempt":1}}"#)
        .into_bytes()
}

/// The lanes' depths and the busy keys, as one broker shows them.
#[derive(Debug, PartialEq)]
struct Seen {
    queued: u64,
    leased: u64,
    consumers: Vec<(String, u64)>,
    lanes: Vec<(u8, u64, bool)>,
    bounded_lanes: Vec<(u8, u64, bool)>,
    keys: Vec<GroupKeyLoad>,
    every: Vec<(String, Vec<GroupKeyLoad>)>,
}

/// Two calls at priority 1 and one at 5 beside three at the default; one
/// of the default's taken and holding the one slot of key `t1`, a second
/// of `t1` taken and parked behind it, a third of key `t3` queued, and one
/// urgent call taken.
async fn scenario(broker: Arc<dyn Broker>) -> Seen {
    let urgent = lane_queue(QUEUE, 1).into_owned();
    let idle = lane_queue(QUEUE, 5).into_owned();
    broker
        .prepare_queues(&[QUEUE.to_owned(), urgent.clone(), idle.clone()])
        .await
        .unwrap();
    // d3 of another key: one of `t1` would be parked ahead behind d2.
    for (queue, id, key) in [
        (QUEUE, "d1", "t1"),
        (QUEUE, "d2", "t1"),
        (QUEUE, "d3", "t3"),
    ] {
        broker.push_job(queue, &job(id, key)).await.unwrap();
    }
    for (queue, id) in [(&urgent, "u1"), (&urgent, "u2"), (&idle, "i1")] {
        broker.push_job(queue, &job(id, "t9")).await.unwrap();
    }
    let mut reader = broker.open_reader().await.unwrap();
    let taken = reader
        .take_jobs(&[QUEUE.to_owned()], "w1", 2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    let slot = GroupSlot {
        job: "send",
        key: "t1",
        limit: 1,
    };
    let lease = Duration::from_secs(60);
    let first = broker
        .take_group_slot(&taken[0], "d1", &slot, lease)
        .await
        .unwrap();
    let second = broker
        .take_group_slot(&taken[1], "d2", &slot, lease)
        .await
        .unwrap();
    assert_eq!(
        (first, second),
        (GroupAdmission::Run, GroupAdmission::Parked)
    );
    // One urgent call taken: leased in its lane.
    let urgent_taken = reader
        .take_jobs(
            std::slice::from_ref(&urgent),
            "w1",
            1,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(urgent_taken.len(), 1);

    let inspector = Inspector::new(broker.clone());
    let lanes = |s: &rpc_runtime::inspect::ServiceStats| {
        s.lanes
            .iter()
            .map(|l| (l.priority, l.queued, l.unreadable))
            .collect::<Vec<_>>()
    };
    let stats = inspector.service_stats(QUEUE).await.unwrap().unwrap();
    let bounded = inspector
        .service_stats_bounded(QUEUE)
        .await
        .unwrap()
        .unwrap();
    let busy = inspector.busy_group_keys(QUEUE).await.unwrap();
    assert!(!busy.capped);
    Seen {
        queued: stats.queued,
        leased: stats.leased,
        consumers: stats
            .consumers
            .iter()
            .map(|c| (c.name.clone(), c.pending))
            .collect(),
        lanes: lanes(&stats),
        bounded_lanes: lanes(&bounded),
        keys: busy.keys,
        every: inspector
            .every_busy_group_key()
            .await
            .unwrap()
            .into_iter()
            .map(|(s, b)| (s, b.keys))
            .collect(),
    }
}

/// Both brokers count each lane's waiting calls, add them up into
/// `queued`, and show the key whose one slot is held with the call parked
/// behind it.
#[tokio::test]
async fn both_brokers_show_each_lanes_depth_and_the_busy_group_keys() {
    let redis = RedisServer::start().expect("start redis-server");
    let on_redis = scenario(connect(&BrokerConfig::new(redis.url())).await.unwrap()).await;
    let on_memory = scenario(
        connect(&BrokerConfig::new("memory://inspect-lanes-and-groups"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(on_redis, on_memory);
    let seen = on_memory;
    // d3 waits at the default priority (d1 runs, d2 is parked).
    let lanes = vec![
        (1, 1, false),
        (2, 0, false),
        (3, 1, false),
        (4, 0, false),
        (5, 1, false),
    ];
    assert_eq!(seen.lanes, lanes);
    assert_eq!(seen.bounded_lanes, lanes);
    assert_eq!(seen.queued, 3, "the sum of the lanes");
    // d1 (running) and u1; d2 was parked, off the stream.
    assert_eq!(seen.leased, 2, "every lane's leases");
    assert_eq!(seen.consumers, [("w1".to_owned(), 2)]);
    let t1 = GroupKeyLoad {
        job: "send".into(),
        key: "t1".into(),
        running: Some(1),
        waiting: Some(1),
    };
    assert_eq!(seen.keys, std::slice::from_ref(&t1));
    assert_eq!(seen.every, [(QUEUE.to_owned(), vec![t1])]);
}

fn server_ms(cli: impl Fn(&[&str]) -> String) -> u64 {
    let time = cli(&["TIME"]);
    let mut parts = time.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    let (secs, micros) = (parts.next().unwrap(), parts.next().unwrap());
    secs * 1000 + micros / 1000
}

/// Lanes of a sharded service add up over its shards; a lane key of
/// another type is marked unreadable and the rest still add up; group
/// state of the wrong type reads as unreadable, lapsed slots do not
/// count, absurd scores count as what they say; the busiest keys come
/// first and only `TOP_GROUP_KEYS` of them.
#[tokio::test]
async fn garbage_lanes_and_group_state_read_as_unreadable_never_an_error() {
    let redis = RedisServer::start().expect("start redis-server");
    let cli = |args: &[&str]| redis.cli(args.iter().copied());
    // Shard 0: 2 queued at the default, one leased; lane 1 with a group and
    // 3 entries, one delivered; lane 5 without a group (nothing
    // delivered); lane 4 a string.
    cli(&[
        "XGROUP",
        "CREATE",
        "rpc:{S}:jobs",
        "workers",
        "0",
        "MKSTREAM",
    ]);
    for _ in 0..3 {
        cli(&["XADD", "rpc:{S}:jobs", "*", "m", "{}"]);
    }
    cli(&[
        "XGROUP",
        "CREATE",
        "rpc:{S}:jobs:1",
        "workers",
        "0",
        "MKSTREAM",
    ]);
    for _ in 0..3 {
        cli(&["XADD", "rpc:{S}:jobs:1", "*", "m", "{}"]);
    }
    for stream in ["rpc:{S}:jobs", "rpc:{S}:jobs:1"] {
        cli(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w",
            "COUNT",
            "1",
            "STREAMS",
            stream,
            ">",
        ]);
    }
    for _ in 0..2 {
        cli(&["XADD", "rpc:{S}:jobs:5", "*", "m", "{}"]);
    }
    cli(&["SET", "rpc:{S}:jobs:4", "not a stream"]);
    // Shard 1: one call at priority 1.
    cli(&["XADD", "rpc:{S~1}:jobs", "*", "m", "{}"]);
    cli(&["XADD", "rpc:{S~1}:jobs:1", "*", "m", "{}"]);

    let now = server_ms(cli);
    let later = (now + 60_000).to_string();
    let lapsed = (now - 1_000).to_string();
    // 12 keys of job `send`, key `k<i>` with i running; `k1` also one lapsed.
    for i in 1..=12 {
        let running = format!("rpc:{{S}}:group:send:k{i}:running");
        for c in 0..i {
            cli(&["ZADD", &running, &later, &format!("c{c}")]);
        }
    }
    cli(&["ZADD", "rpc:{S}:group:send:k1:running", &lapsed, "gone"]);
    // Absurd scores: forever counts as running, minus forever does not.
    let absurd = "rpc:{S~1}:group:send:forever:running";
    cli(&["ZADD", absurd, "+inf", "a", "1e300", "b", "-inf", "c"]);
    cli(&["RPUSH", "rpc:{S~1}:group:send:forever:waiting", "m1", "m2"]);
    // A running set that is a string; a waiting list that is a hash.
    cli(&["SET", "rpc:{S}:group:send:junk:running", "x"]);
    cli(&["ZADD", "rpc:{S}:group:mail:odd:running", &later, "c"]);
    cli(&["HSET", "rpc:{S}:group:mail:odd:waiting", "f", "v"]);

    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    let stats = inspector
        .service_stats("S")
        .await
        .expect("no error")
        .unwrap();
    let lanes: Vec<_> = stats
        .lanes
        .iter()
        .map(|l| (l.priority, l.queued, l.unreadable))
        .collect();
    assert_eq!(
        lanes,
        [
            (1, 3, false),
            (2, 0, false),
            (3, 3, false),
            (4, 0, true),
            (5, 2, false)
        ]
    );
    assert_eq!(stats.queued, 8);
    assert_eq!(
        stats.leased, 2,
        "every lane's, as the memory broker counts them"
    );
    assert_eq!(stats.consumers.len(), 1, "one worker, in two lanes' groups");
    assert_eq!(stats.consumers[0].pending, 2);

    let busy = inspector.busy_group_keys("S").await.expect("no error");
    assert!(!busy.capped);
    assert_eq!(busy.visited, 15);
    let shown: Vec<_> = busy
        .keys
        .iter()
        .map(|k| (k.job.as_str(), k.key.as_str(), k.running, k.waiting))
        .collect();
    assert_eq!(shown.len(), TOP_GROUP_KEYS);
    assert_eq!(shown[0], ("send", "k12", Some(12), Some(0)));
    assert_eq!(shown[9], ("send", "k3", Some(3), Some(0)));
    let every = inspector.every_busy_group_key().await.expect("no error");
    assert_eq!(every["S"], busy);

    // The wrong types, and the absurd scores, among fewer keys.
    cli(&[
        "EVAL",
        "for i = 2, 12 do redis.call('DEL', 'rpc:{S}:group:send:k' .. i .. ':running') end",
        "0",
    ]);
    let busy = inspector.busy_group_keys("S").await.expect("no error");
    let shown: Vec<_> = busy
        .keys
        .iter()
        .map(|k| (k.job.as_str(), k.key.as_str(), k.running, k.waiting))
        .collect();
    assert_eq!(
        shown,
        [
            ("send", "forever", Some(2), Some(2)),
            ("mail", "odd", Some(1), None),
            ("send", "k1", Some(1), Some(0)),
            ("send", "junk", None, Some(0)),
        ]
    );
    assert!(busy.keys[1].is_unreadable() && busy.keys[3].is_unreadable());
}

/// However many group keys a service has, one look reads at most
/// `MAX_GROUP_KEYS_VISITED` and says it stopped there.
#[tokio::test]
async fn a_look_at_group_keys_stops_at_its_bound_and_says_so() {
    let redis = RedisServer::start().expect("start redis-server");
    redis.cli(["XADD", "rpc:{Many}:jobs", "*", "m", "{}"]);
    let script = "for i = 1, tonumber(ARGV[1]) do \
        redis.call('ZADD', 'rpc:{Many}:group:j:t' .. i .. ':running', '+inf', 'c') end";
    let over = (MAX_GROUP_KEYS_VISITED + 50).to_string();
    redis.cli(["EVAL", script, "0", &over]);
    let inspector = Inspector::connect(&redis.url(), "rpc").await.unwrap();
    for busy in [
        inspector.busy_group_keys("Many").await.unwrap(),
        inspector.every_busy_group_key().await.unwrap()["Many"].clone(),
    ] {
        assert!(busy.capped, "{busy:?}");
        assert_eq!(busy.visited, MAX_GROUP_KEYS_VISITED as u64);
        assert_eq!(busy.keys.len(), TOP_GROUP_KEYS);
    }
}

/// On a Cluster a queue's lanes and group keys live on the master of its
/// slot: one `EXISTS` of the lanes and one pipeline of the keys there.
#[tokio::test]
async fn lanes_and_group_keys_are_read_on_a_cluster() {
    let cluster = RedisCluster::start(3).expect("start a cluster");
    for s in ["Alpha", "Beta", "Gamma"] {
        cluster.cli(["XADD", &format!("rpc:{{{s}}}:jobs"), "*", "m", "{}"]);
        cluster.cli(["XADD", &format!("rpc:{{{s}}}:jobs:2"), "*", "m", "{}"]);
        let running = format!("rpc:{{{s}}}:group:j:t:running");
        cluster.cli(["ZADD", &running, "+inf", "c"]);
        cluster.cli(["SET", &format!("rpc:{{{s}}}:group:j:bad:running"), "x"]);
    }
    let seeds: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| {
            u.trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    let url = format!("redis+cluster://{}/", seeds.join(","));
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let every = inspector.every_busy_group_key().await.unwrap();
    for s in ["Alpha", "Beta", "Gamma"] {
        let stats = inspector.service_stats(s).await.unwrap().unwrap();
        assert_eq!((stats.queued, stats.lanes[1].queued), (2, 1), "{s}");
        let busy = inspector.busy_group_keys(s).await.unwrap();
        let shown: Vec<_> = busy
            .keys
            .iter()
            .map(|k| (k.key.as_str(), k.running))
            .collect();
        assert_eq!(shown, [("t", Some(1)), ("bad", None)], "{s}");
        assert_eq!(every[s], busy, "{s}");
    }
}
