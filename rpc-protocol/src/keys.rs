//! Every Redis key of the protocol, built here and nowhere else.
//!
//! `P` is the prefix (`rpc` unless configured): applications with different
//! prefixes share one Redis without seeing each other's keys. The `{...}`
//! parts are Redis Cluster hash tags: every key of one service lives in one
//! slot (so a script may touch several of them), and an inbox or a kept
//! result lives in the slot of its client or call. docs/PROTOCOL.md, "Keys",
//! is the normative table; this module is its one implementation, so a
//! change of a key is a change here, seen by every crate.
//!
//! ```
//! let keys = rpc_protocol::Keys::new("rpc");
//! assert_eq!(keys.jobs("Calculator"), "rpc:{Calculator}:jobs");
//! assert_eq!(keys.inbox("c1"), "rpc:inbox:{c1}");
//! assert_eq!(keys.service_of_jobs("rpc:{Calculator}:jobs"), Some("Calculator"));
//! // Templates for documents: the placeholders are the arguments.
//! assert_eq!(rpc_protocol::Keys::new("{prefix}").jobs("queue"), "{prefix}:{queue}:jobs");
//! ```

use crate::limits::is_client_id;
use crate::priority;

/// A queue's name without its lane (`Q^p` -> `Q`): every key of a lane but
/// its stream is its queue's.
fn lane_free(queue: &str) -> &str {
    priority::split_lane(queue).0
}

/// The keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn of_service(&self, service: &str, what: &str) -> String {
        self.in_slot(service, format_args!("{what}"))
    }

    /// `P:{Q}:<rest>`: a key in the slot of queue `queue`, a lane's in its
    /// queue's (every key of a lane but its stream is its queue's).
    fn in_slot(&self, queue: &str, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{{{}}}:{rest}", self.prefix, lane_free(queue))
    }

    /// `P:{S}:jobs`, the service's stream of jobs (consumer group
    /// [`GROUP`](crate::stream::GROUP)); for a lane `Q^p` of a queue
    /// ([`crate::priority`]), `P:{Q}:jobs:<p>`, the stream of its calls at
    /// priority `p`. Every other key of a lane is its queue's.
    pub fn jobs(&self, service: &str) -> String {
        match priority::split_lane(service) {
            (queue, priority::DEFAULT) => self.of_service(queue, "jobs"),
            (queue, p) => self.in_slot(queue, format_args!("jobs:{p}")),
        }
    }

    /// `P:{Q}:jobs` or `P:{Q}:jobs:<p>`: the stream of queue `queue`'s calls
    /// at priority `p`.
    pub fn jobs_at(&self, queue: &str, p: u8) -> String {
        self.jobs(&priority::lane_queue(lane_free(queue), p))
    }

    /// `P:{S}:intake`, the list clients without `XADD` rights append to.
    pub fn intake(&self, service: &str) -> String {
        self.of_service(service, "intake")
    }

    /// `P:{S}:moving`, what a worker's mover took off the intake and has
    /// not moved yet.
    pub fn moving(&self, service: &str) -> String {
        self.of_service(service, "moving")
    }

    /// `P:{S}:dead`, the service's dead letters.
    pub fn dead(&self, service: &str) -> String {
        self.of_service(service, "dead")
    }

    /// `P:{S}:schedule`, the sorted set of tokens by due time.
    pub fn schedule(&self, service: &str) -> String {
        self.of_service(service, "schedule")
    }

    /// `P:{S}:scheduled`, the hash of token -> scheduled message.
    pub fn scheduled(&self, service: &str) -> String {
        self.of_service(service, "scheduled")
    }

    /// `P:{S}:cancelled`, the sorted set of call id -> when cancelled.
    pub fn cancelled(&self, service: &str) -> String {
        self.of_service(service, "cancelled")
    }

    /// `P:{S}:paused`, the pause flag.
    pub fn paused(&self, service: &str) -> String {
        self.of_service(service, "paused")
    }

    /// `P:{S}:shards`, a service's shard count (a hash: `count`, what
    /// clients place calls on; `seen`, the most it ever had, what workers
    /// read). Lives once, in shard 0's slot ([`crate::shards`]).
    pub fn shards(&self, service: &str) -> String {
        self.of_service(service, "shards")
    }

    /// `P:{Q}:ready`, the channel a client `SPUBLISH`es to after adding a
    /// job to queue `Q` on a Redis Cluster, so a worker waiting on that
    /// master wakes up (one shard-channel per queue, in its slot).
    pub fn ready(&self, queue: &str) -> String {
        self.of_service(queue, "ready")
    }

    /// `P:{S}:once:<key>`, an idempotency key of the service.
    pub fn once(&self, service: &str, key: &str) -> String {
        self.in_slot(service, format_args!("once:{key}"))
    }

    /// `P:{S}:rate` (the service's rate limit, `job` `None`) or
    /// `P:{S}:rate:<job>` (job `job`'s): the limit's state, a hash that
    /// `rate_limit.lua` keeps (`tat`, and counts for operators). Lives once
    /// per service, in the slot of its unsharded name.
    pub fn rate(&self, service: &str, job: Option<&str>) -> String {
        match job {
            Some(job) => self.in_slot(service, format_args!("rate:{job}")),
            None => self.of_service(service, "rate"),
        }
    }

    /// `P:{S}:turns` or `P:{S}:turns:<job>`: the turns given to calls that
    /// wait on that rate limit (a sorted set of call id -> µs).
    pub fn rate_turns(&self, service: &str, job: Option<&str>) -> String {
        match job {
            Some(job) => self.in_slot(service, format_args!("turns:{job}")),
            None => self.of_service(service, "turns"),
        }
    }

    /// `P:{Q}:group:<job>:<key>:running`, the calls of job `job` (the wire
    /// name inside its service) with group key `key` that hold one of the
    /// key's slots on queue `Q`: a sorted set of call id -> when the slot
    /// lapses (broker ms). See docs/PROTOCOL.md, "Per-key concurrency".
    pub fn group_running(&self, queue: &str, job: &str, key: &str) -> String {
        self.in_slot(queue, format_args!("group:{job}:{key}:running"))
    }

    /// `SCAN MATCH` pattern of queue `queue`'s running sets
    /// ([`group_running`](Self::group_running)), every job and key (read
    /// back with [`Keys::group_of_running`]).
    pub fn group_running_pattern(&self, queue: &str) -> String {
        let head = self.in_slot(queue, format_args!("group:"));
        format!("{}*:running", glob_escape(&head))
    }

    /// `SCAN MATCH` pattern of every queue's running sets (read back with
    /// [`Keys::group_of_running`]).
    pub fn groups_running_pattern(&self) -> String {
        format!("{}:{{*}}:group:*:running", glob_escape(&self.prefix))
    }

    /// The queue, job and key of running set `key`
    /// ([`group_running`](Self::group_running)); `None` when it is none
    /// of this prefix's.
    pub fn group_of_running<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str, &'k str)> {
        let inner = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{")?;
        let (queue, member) = inner.split_once("}:group:")?;
        let (job, group_key) = Self::split_group_member(member.strip_suffix(":running")?)?;
        if queue.is_empty() || job.is_empty() || group_key.is_empty() {
            return None;
        }
        Some((queue, job, group_key))
    }

    /// `P:{Q}:group:<job>:<key>:waiting`, the messages of that job and key
    /// parked until a slot is free: a list, oldest first.
    pub fn group_waiting(&self, queue: &str, job: &str, key: &str) -> String {
        self.in_slot(queue, format_args!("group:{job}:{key}:waiting"))
    }

    /// `P:{Q}:groups`, the groups of queue `Q` with parked messages: a set
    /// of [`group_member`](Self::group_member)s, swept by the lifecycle
    /// poll.
    pub fn groups_waiting(&self, queue: &str) -> String {
        self.of_service(queue, "groups")
    }

    /// A member of [`groups_waiting`](Self::groups_waiting): `<job>:<key>`
    /// (a job name has no `:`, so the first one splits it).
    pub fn group_member(job: &str, key: &str) -> String {
        format!("{job}:{key}")
    }

    /// The job and key a [`group_member`](Self::group_member) names.
    pub fn split_group_member(member: &str) -> Option<(&str, &str)> {
        member.split_once(':')
    }

    /// `P:{S}:periodic`, the periodic jobs' definitions by name.
    pub fn periodic(&self, service: &str) -> String {
        self.of_service(service, "periodic")
    }

    /// `P:{S}:periodic:last`, the periodic jobs' last ticks by name.
    pub fn periodic_last(&self, service: &str) -> String {
        self.of_service(service, "periodic:last")
    }

    // Daily counts (the dashboard's history), in the service's slot.

    /// `P:{S}:stat:processed:<day>`, how many of the service's jobs ended
    /// on day `day` (`YYYY-MM-DD`, UTC), whatever the outcome: a string
    /// counter that workers `INCRBY` and that expires
    /// [`DAILY_STATS_KEPT`](crate::limits::DAILY_STATS_KEPT) after it was
    /// last written (Sidekiq's `stat:processed:<date>`).
    pub fn stat_processed(&self, service: &str, day: &str) -> String {
        self.in_slot(service, format_args!("stat:processed:{day}"))
    }

    /// `P:{S}:stat:failed:<day>`, how many of them ended in a failure
    /// (answered with an error, retried, dead-lettered); kept as long.
    pub fn stat_failed(&self, service: &str, day: &str) -> String {
        self.in_slot(service, format_args!("stat:failed:{day}"))
    }

    /// `P:{S}:failures`, the stream of the service's recent failed
    /// attempts (retried, or answered with an error): workers `XADD` one
    /// entry per failed attempt, capped at
    /// [`FAILURES_CAP`](crate::limits::FAILURES_CAP) with `MAXLEN ~`, and
    /// `PEXPIRE` it [`FAILURES_KEPT`](crate::limits::FAILURES_KEPT) on each
    /// write; its fields are in [`crate::stream`] (`FAILURE_*`).
    pub fn failures(&self, service: &str) -> String {
        self.of_service(service, "failures")
    }

    /// `P:{S}:workers`, the sorted set of worker id -> its last beat (ms,
    /// Redis's clock) of the workers serving the service: who serves it,
    /// and when one was last seen ([`crate::worker`]).
    pub fn workers(&self, service: &str) -> String {
        self.of_service(service, "workers")
    }

    /// `P:worker:{id}`, one worker's beat (JSON, with a TTL).
    pub fn worker(&self, worker_id: &str) -> String {
        format!("{}:worker:{{{worker_id}}}", self.prefix)
    }

    /// `P:worker:{id}:control`, what an operator asks of one worker
    /// (`quiet` or `stop`), in the slot of its beat.
    pub fn worker_control(&self, worker_id: &str) -> String {
        format!("{}:worker:{{{worker_id}}}:control", self.prefix)
    }

    /// `P:inbox:{client}`, one client's reply list.
    pub fn inbox(&self, client_id: &str) -> String {
        format!("{}:inbox:{{{client_id}}}", self.prefix)
    }

    /// `P:result:{call}`, a call's kept reply.
    pub fn result(&self, call_id: &str) -> String {
        format!("{}:result:{{{call_id}}}", self.prefix)
    }

    /// `P:progress:{call}`, a call's newest progress value (JSON, with a
    /// TTL; [`crate::progress`]), in the slot of its call.
    pub fn progress(&self, call_id: &str) -> String {
        format!("{}:progress:{{{call_id}}}", self.prefix)
    }

    /// The client of an inbox key of this prefix, if `key` is one: exactly
    /// `P:inbox:{client}` with a valid client id (see
    /// [`is_client_id`](crate::limits::is_client_id)). The only keys a worker
    /// pushes replies to, whatever a message's `reply_to` says.
    pub fn client_of_inbox<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(":inbox:{"))
            .and_then(|rest| rest.strip_suffix('}'))
            .filter(|client| is_client_id(client))
    }

    /// Whether `key` is an inbox of this prefix.
    pub fn is_inbox(&self, key: &str) -> bool {
        self.client_of_inbox(key).is_some()
    }

    /// The service of a `P:{S}:jobs` key of this prefix.
    pub fn service_of_jobs<'k>(&self, key: &'k str) -> Option<&'k str> {
        self.service_of(key, "jobs")
    }

    /// The service of a `P:{S}:periodic` key of this prefix.
    pub fn service_of_periodic<'k>(&self, key: &'k str) -> Option<&'k str> {
        self.service_of(key, "periodic")
    }

    fn service_of<'k>(&self, key: &'k str, what: &str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix(what)?
            .strip_suffix("}:")
    }

    /// `SCAN MATCH` pattern of every jobs stream of this prefix.
    pub fn jobs_pattern(&self) -> String {
        format!("{}:{{*}}:jobs", glob_escape(&self.prefix))
    }

    /// `SCAN MATCH` pattern of every periodic definitions hash.
    pub fn periodic_pattern(&self) -> String {
        format!("{}:{{*}}:periodic", glob_escape(&self.prefix))
    }

    /// `SCAN MATCH` pattern of service `service`'s rate limits: `P:{S}:rate`
    /// and `P:{S}:rate:<job>` (and whatever else starts so; read the job
    /// back with [`Keys::job_of_rate`]).
    pub fn rate_pattern(&self, service: &str) -> String {
        format!("{}*", glob_escape(&self.rate(service, None)))
    }

    /// Which limit of `service` key `key` holds: `Some(None)` the service's
    /// own (`P:{S}:rate`), `Some(Some(job))` a job's (`P:{S}:rate:<job>`),
    /// `None` when it is no rate limit of `service`.
    pub fn job_of_rate<'k>(&self, service: &str, key: &'k str) -> Option<Option<&'k str>> {
        let rest = key.strip_prefix(self.rate(service, None).as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        let job = rest.strip_prefix(':')?;
        (!job.is_empty()).then_some(Some(job))
    }

    /// `SCAN MATCH` pattern of every service's rate limits (read back with
    /// [`Keys::rate_of`]).
    pub fn rates_pattern(&self) -> String {
        format!("{}:{{*}}:rate*", glob_escape(&self.prefix))
    }

    /// The service and job of rate limit key `key` (job `None` for the
    /// service's own limit), `None` when it is no rate limit's key.
    pub fn rate_of<'k>(&self, key: &'k str) -> Option<(&'k str, Option<&'k str>)> {
        let inner = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{")?;
        let (service, _) = inner.split_once("}:rate")?;
        if service.is_empty() {
            return None;
        }
        Some((service, self.job_of_rate(service, key)?))
    }

    /// `SCAN MATCH` pattern of every inbox of this prefix.
    pub fn inbox_pattern(&self) -> String {
        format!("{}:inbox:{{*}}", glob_escape(&self.prefix))
    }

    /// `SCAN MATCH` pattern of every key of this prefix.
    pub fn all_pattern(&self) -> String {
        format!("{}:*", glob_escape(&self.prefix))
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_service_shares_its_hash_tag() {
        let keys = Keys::new("app");
        for key in [
            keys.jobs("S"),
            keys.intake("S"),
            keys.moving("S"),
            keys.dead("S"),
            keys.schedule("S"),
            keys.scheduled("S"),
            keys.cancelled("S"),
            keys.paused("S"),
            keys.once("S", "k:1"),
            keys.periodic("S"),
            keys.periodic_last("S"),
            keys.stat_processed("S", "2026-12-06"),
            keys.stat_failed("S", "2026-12-06"),
            keys.failures("S"),
            keys.workers("S"),
            keys.group_running("S", "j", "tenant:1"),
            keys.group_waiting("S", "j", "tenant:1"),
            keys.groups_waiting("S"),
        ] {
            assert!(key.starts_with("app:{S}:"), "{key}");
        }
        assert_eq!(
            keys.group_running("S", "j", "t"),
            "app:{S}:group:j:t:running"
        );
        let member = Keys::group_member("j", "tenant:1");
        assert_eq!(Keys::split_group_member(&member), Some(("j", "tenant:1")));
        assert_eq!(keys.once("S", "k:1"), "app:{S}:once:k:1");
        assert_eq!(keys.failures("S"), "app:{S}:failures");
        assert_eq!(keys.result("c-1"), "app:result:{c-1}");
        assert_eq!(keys.progress("c-1"), "app:progress:{c-1}");
        assert_eq!(
            keys.stat_processed("S", "2026-12-06"),
            "app:{S}:stat:processed:2026-12-06"
        );
    }

    #[test]
    fn a_workers_beat_and_control_share_its_hash_tag() {
        let keys = Keys::new("app");
        assert_eq!(keys.workers("S"), "app:{S}:workers");
        assert_eq!(keys.worker("w-1"), "app:worker:{w-1}");
        assert_eq!(keys.worker_control("w-1"), "app:worker:{w-1}:control");
    }

    #[test]
    fn keys_are_read_back_only_when_they_are_of_this_prefix() {
        let keys = Keys::new("rpc");
        assert_eq!(keys.service_of_jobs("rpc:{A}:jobs"), Some("A"));
        assert_eq!(keys.service_of_jobs("other:{A}:jobs"), None);
        assert_eq!(keys.service_of_jobs("rpc:{A}:dead"), None);
        assert_eq!(keys.service_of_periodic("rpc:{A}:periodic"), Some("A"));
        assert_eq!(keys.client_of_inbox("rpc:inbox:{c1}"), Some("c1"));
        for not_an_inbox in [
            "rpc:{A}:jobs",
            "other:inbox:{c1}",
            "rpc:inbox:{}",
            "rpc:inbox:{a b}",
            "rpc:inbox:{x}}",
            "",
        ] {
            assert!(!keys.is_inbox(not_an_inbox), "{not_an_inbox}");
        }
        assert_eq!(Keys::new("a*b").jobs_pattern(), "a\\*b:{*}:jobs");
        assert_eq!(Keys::new("a*b").rate_pattern("S?"), "a\\*b:{S\\?}:rate*");
        assert_eq!(keys.job_of_rate("A", "rpc:{A}:rate"), Some(None));
        assert_eq!(
            keys.job_of_rate("A", "rpc:{A}:rate:send"),
            Some(Some("send"))
        );
        for not_a_limit in [
            "rpc:{A}:rate:",
            "rpc:{A}:rates",
            "rpc:{B}:rate",
            "rpc:{A}:turns",
        ] {
            assert_eq!(keys.job_of_rate("A", not_a_limit), None, "{not_a_limit}");
        }
        assert_eq!(
            Keys::new("a*b").group_running_pattern("S?^1"),
            "a\\*b:{S\\?}:group:*:running"
        );
        assert_eq!(keys.groups_running_pattern(), "rpc:{*}:group:*:running");
        let running = keys.group_running("A~1", "send", "tenant:7");
        assert_eq!(
            keys.group_of_running(&running),
            Some(("A~1", "send", "tenant:7"))
        );
        for not_running in [
            "rpc:{A}:group:send:t:waiting",
            "rpc:{A}:group:send:running",
            "rpc:{A}:group::t:running",
            "rpc:{}:group:send:t:running",
            "other:{A}:group:send:t:running",
        ] {
            assert_eq!(keys.group_of_running(not_running), None, "{not_running}");
        }
        assert_eq!(keys.rates_pattern(), "rpc:{*}:rate*");
        assert_eq!(keys.rate_of("rpc:{A~1}:rate"), Some(("A~1", None)));
        assert_eq!(keys.rate_of("rpc:{A}:rate:send"), Some(("A", Some("send"))));
        for not_a_limit in [
            "rpc:{A}:rates",
            "rpc:{}:rate",
            "other:{A}:rate",
            "rpc:{A}:jobs",
        ] {
            assert_eq!(keys.rate_of(not_a_limit), None, "{not_a_limit}");
        }
    }
}
