//! Rings shared by the pushes onto one queue.
//!
//! On a Cluster a push onto a queue is followed by a ring of its doorbell
//! (`doorbell.rs`): an `SPUBLISH` per call, a third of a sharded service's
//! commands (`rpc-bench --shards 8 --cluster 3`: 0.99 `SPUBLISH` per call
//! at 64 in flight). A push needs only some ring sent after Redis took it,
//! not a ring of its own: Redis then added the job before it publishes the
//! ring, so the worker the ring wakes finds the job. So the pushes onto one
//! queue share rings: one is on its way at a time, and every push answered
//! meanwhile waits for the next one, which covers them all.
//!
//! A caller that gives up while its ring is on its way (a batch past its
//! deadline) hands the ringing on: the next waiting caller sends one.

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
    /// Woken when a ring is answered or given up.
    ended: Notify,
}

#[derive(Default)]
struct Counts {
    /// The number of the latest ring sent.
    sent: u64,
    /// The number of the latest ring answered (or refused: a ring is a
    /// hint, and its failure is only logged).
    answered: u64,
    /// Whether a ring is on its way.
    ringing: bool,
}

impl SharedRings {
    /// Returns once a ring of `queue` sent after this call began has been
    /// answered; `ring` sends one when none is on its way.
    pub(super) async fn ring<Fut>(&self, queue: &str, ring: impl Fn() -> Fut)
    where
        Fut: Future<Output = ()>,
    {
        let rings = lock(&self.queues)
            .entry(queue.to_owned())
            .or_default()
            .clone();
        rings.covered(ring).await;
    }
}

impl QueueRings {
    async fn covered<Fut>(&self, ring: impl Fn() -> Fut)
    where
        Fut: Future<Output = ()>,
    {
        // The caller's push was answered: the first ring sent from now on
        // covers it.
        let needed = lock(&self.counts).sent + 1;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            let number = {
                let mut counts = lock(&self.counts);
                if counts.answered >= needed {
                    return;
                }
                if counts.ringing {
                    // Registered before the lock is let go, so the end of
                    // the ring on its way cannot be missed.
                    ended.as_mut().enable();
                    None
                } else {
                    counts.ringing = true;
                    counts.sent += 1;
                    Some(counts.sent)
                }
            };
            match number {
                Some(number) => {
                    let mut on_its_way = OnItsWay {
                        rings: self,
                        number,
                        answered: false,
                    };
                    ring().await;
                    on_its_way.answered = true;
                    return;
                }
                None => ended.await,
            }
        }
    }
}

/// A ring on its way. When it ends, answered or given up (its caller was
/// dropped), the callers waiting on it are woken: answered, it covers
/// those it was sent for; given up, one of them sends another.
struct OnItsWay<'a> {
    rings: &'a QueueRings,
    number: u64,
    answered: bool,
}

impl Drop for OnItsWay<'_> {
    fn drop(&mut self) {
        {
            let mut counts = lock(&self.rings.counts);
            counts.ringing = false;
            if self.answered {
                counts.answered = counts.answered.max(self.number);
            }
        }
        self.rings.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Rings sent, and a gate that holds each ring until opened.
    #[derive(Default)]
    struct Probe {
        sent: AtomicUsize,
        gate: Notify,
    }

    impl Probe {
        async fn ring(&self) {
            self.sent.fetch_add(1, Ordering::SeqCst);
            self.gate.notified().await;
        }
    }

    #[tokio::test]
    async fn pushes_answered_while_a_ring_is_on_its_way_share_the_next() {
        let rings = Arc::new(SharedRings::default());
        let probe = Arc::new(Probe::default());
        let ringer = |rings: Arc<SharedRings>, probe: Arc<Probe>| {
            tokio::spawn(async move { rings.ring("Q", || probe.ring()).await })
        };
        // The first push rings; ten more come while its ring is on its way.
        let first = ringer(rings.clone(), probe.clone());
        wait_for(|| probe.sent.load(Ordering::SeqCst) == 1).await;
        let later: Vec<_> = (0..10)
            .map(|_| ringer(rings.clone(), probe.clone()))
            .collect();
        tokio::task::yield_now().await;
        // The first ring covers none of them: they were answered after it
        // went. Its answer lets one of them send the next, for all ten.
        probe.gate.notify_waiters();
        first.await.unwrap();
        wait_for(|| probe.sent.load(Ordering::SeqCst) == 2).await;
        assert!(later.iter().all(|t| !t.is_finished()));
        probe.gate.notify_waiters();
        for t in later {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("every push covered by the second ring")
                .unwrap();
        }
        assert_eq!(probe.sent.load(Ordering::SeqCst), 2);
        // Another queue rings on its own.
        let other = tokio::spawn({
            let (rings, probe) = (rings.clone(), probe.clone());
            async move { rings.ring("R", || probe.ring()).await }
        });
        wait_for(|| probe.sent.load(Ordering::SeqCst) == 3).await;
        probe.gate.notify_waiters();
        other.await.unwrap();
    }

    #[tokio::test]
    async fn a_ringer_that_gives_up_hands_the_ringing_on() {
        let rings = Arc::new(SharedRings::default());
        let probe = Arc::new(Probe::default());
        let first = tokio::spawn({
            let (rings, probe) = (rings.clone(), probe.clone());
            async move { rings.ring("Q", || probe.ring()).await }
        });
        wait_for(|| probe.sent.load(Ordering::SeqCst) == 1).await;
        let second = tokio::spawn({
            let (rings, probe) = (rings.clone(), probe.clone());
            async move { rings.ring("Q", || probe.ring()).await }
        });
        tokio::task::yield_now().await;
        // The first caller is dropped mid-ring: the second sends its own.
        first.abort();
        wait_for(|| probe.sent.load(Ordering::SeqCst) == 2).await;
        probe.gate.notify_waiters();
        tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the second push rang after the first gave up")
            .unwrap();
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
