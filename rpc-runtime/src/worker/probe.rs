//! The broker probe: tells readiness within seconds that the broker went
//! away, whatever the worker is doing.
//!
//! The taker's reads are the worker's usual word from the broker, but they
//! are not enough on their own: a worker whose slots are all busy does not
//! read, and a read from a broker that stopped answering (a frozen process,
//! a half-open connection) only gives up after its stall guard (the block
//! time plus 5 s). So, once every [`PROBE_EVERY`], when nothing has heard
//! from the broker for half of that, the probe asks for the broker's `TIME`
//! and gives it [`PROBE_TIMEOUT`] to answer; a failure or no answer marks
//! the broker unreachable at once. Readiness also fails when the broker's last
//! answer is older than [`READY_WINDOW`], which a healthy broker never lets
//! happen with the probe running.
//!
//! Worst cases: a broker that dies is known at the next probe (about 1 s;
//! at once when the taker is reading: its connection fails); one that stops
//! answering within `PROBE_EVERY + PROBE_TIMEOUT` (about 3 s). The probe
//! runs only when a metrics listener serves the checks, and costs at most
//! one `TIME` per second (none while the taker reads, which answers more
//! often than that).

use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;

/// How often the probe looks, and how old the broker's last answer must be
/// for it to ask.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long the probe waits for the broker's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// With no answer from the broker for this long, the worker is not ready:
/// a probe and its timeout, and a second of slack for a loaded machine.
pub(super) const READY_WINDOW: Duration = Duration::from_secs(4);

pub(super) async fn probe_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Half a period: the probe's own answer, a period ago, is not enough
        // (a broker answering only the probe is asked every turn).
        if !shared.health.needs_probe(PROBE_EVERY / 2) {
            continue;
        }
        match tokio::time::timeout(PROBE_TIMEOUT, shared.backend.broker_time_ms()).await {
            Ok(Ok(_)) => shared.health.broker_answered(),
            Ok(Err(e)) => {
                shared.broker_error();
                tracing::debug!(error = %e, "the broker probe failed");
                shared.health.broker_failed(e);
            }
            Err(_) => {
                shared.broker_error();
                tracing::debug!("the broker probe timed out");
                shared.health.broker_failed(format_args!(
                    "no answer to a probe within {} ms",
                    PROBE_TIMEOUT.as_millis()
                ));
            }
        }
    }
}
