//! Rings shared by the pushes onto one queue.
//!
//! On a Cluster a push onto a queue is followed by a ring of its doorbell
//! (`doorbell.rs`). A push needs only some ring sent after Redis took it,
//! not a ring of its own: Redis then added the job before it publishes the
//! ring, so the worker the ring wakes finds the job. So the pushes onto
//! one queue share rings: a task of the queue's own sends them, one at a
//! time, until every push answered so far is covered, and each push waits
//! for the first ring sent after it. (A ring in the push's own pipeline
//! woke the master once instead of twice, but the `redis` crate resends a
//! whole pipeline on a redirect: during a slot migration a caller was
//! told `ASK` for a push that had run, `doorbell.rs`.)

//! The rings are sent by that task, never by a caller: a caller that
//! stops being polled (parked in a `select!`) or is dropped (a deadline)
//! neither holds the other pushes of its queue nor leaves its own push
//! unrung (an adversarial review found both when callers rang for each
//! other).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::sync::lock;

/// The rings of every queue this process rings, by queue.
#[derive(Default)]
pub(super) struct SharedRings {
    queues: Mutex<HashMap<String, Arc<QueueRings>>>,
}

/// One queue's rings, numbered as they are sent.
#[derive(Default)]
struct QueueRings {
    counts: Mutex<Counts>,
    /// Woken when a ring is answered.
    answered: Notify,
}

#[derive(Default)]
struct Counts {
    /// The number of the latest ring sent.
    sent: u64,
    /// The number of the latest ring answered (or refused: a ring is a
    /// hint, and its failure is only logged).
    answered: u64,
    /// The ring every push answered so far needs.
    wanted: u64,
    /// Whether the queue's ringer task runs.
    ringing: bool,
}

impl SharedRings {
    /// Returns once a ring of `queue` sent after this call began has been
    /// answered; the function `ringer` makes (only when no ringer task
    /// runs) sends one. If the caller gives up first, the ring is sent all
    /// the same.
    pub(super) async fn ring<R, Fut>(&self, queue: &str, ringer: impl FnOnce() -> R)
    where
        R: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rings = lock(&self.queues)
            .entry(queue.to_owned())
            .or_default()
            .clone();
        let needed = {
            let mut counts = lock(&rings.counts);
            // The caller's push was answered: the first ring sent from now
            // on covers it.
            let needed = counts.sent + 1;
            counts.wanted = counts.wanted.max(needed);
            if !counts.ringing {
                counts.ringing = true;
                tokio::spawn(ring_until_covered(rings.clone(), ringer()));
            }
            needed
        };
        loop {
            let answered = rings.answered.notified();
            tokio::pin!(answered);
            // Registered before the count is read, so a ring answered in
            // between is not missed.
            answered.as_mut().enable();
            if lock(&rings.counts).answered >= needed {
                return;
            }
            answered.await;
        }
    }
}

/// A queue's ringer: sends rings, one at a time, until every push answered
/// so far is covered.
async fn ring_until_covered<Fut>(rings: Arc<QueueRings>, ring: impl Fn() -> Fut)
where
    Fut: Future<Output = ()>,
{
    loop {
        let number = {
            let mut counts = lock(&rings.counts);
            if counts.answered >= counts.wanted {
                counts.ringing = false;
                return;
            }
            counts.sent += 1;
            counts.sent
        };
        ring().await;
        lock(&rings.counts).answered = number;
        rings.answered.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;

    /// Rings sent, and a gate that holds each ring until opened.
    #[derive(Default)]
    struct Probe {
        sent: AtomicUsize,
        gate: Notify,
    }

    impl Probe {
        fn ringing(self: &Arc<Self>) -> impl Fn() -> futures_util::future::BoxFuture<'static, ()> {
            let probe = self.clone();
            move || {
                let probe = probe.clone();
                Box::pin(async move {
                    probe.sent.fetch_add(1, Ordering::SeqCst);
                    probe.gate.notified().await;
                })
            }
        }

        fn rings(&self) -> usize {
            self.sent.load(Ordering::SeqCst)
        }
    }

    fn push(
        rings: &Arc<SharedRings>,
        probe: &Arc<Probe>,
        queue: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        let (rings, ring) = (rings.clone(), probe.ringing());
        tokio::spawn(async move { rings.ring(queue, || ring).await })
    }

    #[tokio::test]
    async fn pushes_answered_while_a_ring_is_on_its_way_share_the_next() {
        let rings = Arc::new(SharedRings::default());
        let probe = Arc::new(Probe::default());
        // The first push rings; ten more come while its ring is on its way.
        let first = push(&rings, &probe, "Q");
        wait_for(|| probe.rings() == 1).await;
        let later: Vec<_> = (0..10).map(|_| push(&rings, &probe, "Q")).collect();
        tokio::task::yield_now().await;
        // The first ring covers none of them: they were answered after it
        // went. Its answer lets the ringer send the next, for all ten.
        probe.gate.notify_waiters();
        first.await.unwrap();
        wait_for(|| probe.rings() == 2).await;
        assert!(later.iter().all(|t| !t.is_finished()));
        probe.gate.notify_waiters();
        for t in later {
            returns(t, "every push covered by the second ring")
                .await
                .unwrap();
        }
        assert_eq!(probe.rings(), 2);
        // Another queue rings on its own.
        let other = push(&rings, &probe, "R");
        answer_ring(&probe, 3).await;
        other.await.unwrap();
    }

    #[tokio::test]
    async fn a_push_whose_caller_gives_up_still_gets_its_ring() {
        let rings = Arc::new(SharedRings::default());
        let probe = Arc::new(Probe::default());
        // A ring on its way; a push answered meanwhile, its caller dropped
        // while it waits; and the first push's caller dropped too.
        let first = push(&rings, &probe, "Q");
        wait_for(|| probe.rings() == 1).await;
        let second = push(&rings, &probe, "Q");
        tokio::task::yield_now().await;
        second.abort();
        first.abort();
        let _ = (first.await, second.await);
        // The ring on its way is the ringer's, not the caller's: once it is
        // answered, the second push gets the ring after it.
        probe.gate.notify_waiters();
        answer_ring(&probe, 2).await;
        // And nothing more: every push is covered.
        let third = push(&rings, &probe, "Q");
        answer_ring(&probe, 3).await;
        returns(third, "a later push rings again").await.unwrap();
        assert_eq!(probe.rings(), 3);
    }

    #[tokio::test]
    async fn a_caller_that_is_not_polled_holds_no_other_push() {
        let rings = Arc::new(SharedRings::default());
        let probe = Arc::new(Probe::default());
        // A push whose caller polls it once and then parks it.
        let mut parked = Box::pin(rings.ring("Q", || probe.ringing()));
        assert!((&mut parked).now_or_never().is_none());
        answer_ring(&probe, 1).await;
        // Another push goes through while the first is never polled again.
        let other = push(&rings, &probe, "Q");
        answer_ring(&probe, 2).await;
        returns(other, "a parked caller held another push of its queue")
            .await
            .unwrap();
        // The parked one is covered too, when it is polled again.
        returns(parked, "the parked push was covered").await;
    }

    /// Waits until `n` rings were sent, then lets the latest be answered.
    async fn answer_ring(probe: &Probe, n: usize) {
        wait_for(|| probe.rings() == n).await;
        probe.gate.notify_waiters();
    }

    /// Waits for a push's caller to return.
    async fn returns<F: std::future::Future>(caller: F, what: &str) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), caller)
            .await
            .expect(what)
    }

    async fn wait_for(mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("in time");
    }
}
