//! The lists of a sharded service, merged over its shards (`shards.rs`
//! says why and how names and tokens read): its queued and leased jobs,
//! its schedule, its dead letters, and the look-ups by token or call id
//! behind them. Each shadows the [`Inspection`](crate::backend::Inspection)
//! method of the same name, which answers for one queue.
//!
//! Streams merge by entry id, which is a time: oldest (or newest) first
//! over every shard, ties in shard order. Paging goes on from a marked
//! token `<id>~k`: the shards up to `k` from after `<id>`, the ones after
//! `k` from `<id>` itself, so two entries of two shards with the very same
//! id are neither skipped nor shown twice. Schedules merge by due time.
//! Every read stays bounded: each shard is read for at most what one page
//! shows, the shards at once (pipelined on one connection, each on its
//! own node of a Cluster).

use std::time::Instant;

use futures_util::future::try_join_all;
use rpc_protocol::shards;

use super::shards::{entry_order, locate, mark_token};
use super::{
    DeadLetterExcerpt, Excerpt, Found, Inspector, Lease, LeasedExcerpt, MessageExcerpt,
    ScheduledExcerpt, ScheduledJob, SearchPage, Stream,
};
use crate::error::Error;

/// The bound to read shard `shard`'s stream from, exclusive, to go on
/// after the marked token `after` of `name`.
fn after_in_shard(name: &str, after: Option<&str>, shard: u32) -> Option<String> {
    let after = after?;
    let (queue, bare) = locate(name, after);
    let after_shard = shards::split_queue(&queue).1;
    if shard <= after_shard {
        Some(bare.to_owned())
    } else {
        Some(just_before(bare))
    }
}

/// The entry id just before `id` (`<ms>-<seq>`), so that a read "after" it
/// starts at `id` itself.
fn just_before(id: &str) -> String {
    let (ms, seq) = entry_order(id);
    match (ms, seq) {
        (ms, seq) if seq > 0 => format!("{ms}-{}", seq - 1),
        (ms, _) if ms > 0 => format!("{}-{}", ms - 1, u64::MAX),
        _ => "0-0".to_owned(),
    }
}

/// Sorts `(shard, token, item)` oldest first (ties in shard order) and
/// keeps the first `max`.
fn oldest_first<T>(mut all: Vec<(u32, String, T)>, max: usize) -> Vec<(u32, String, T)> {
    all.sort_by_key(|(shard, token, _)| (entry_order(token), *shard));
    all.truncate(max);
    all
}

impl Inspector {
    /// Up to `max` dead letters of `name`, oldest first over its shards,
    /// after the (marked) token `after`, reasons and messages cut to their
    /// first `window` bytes; tokens come marked.
    pub async fn dead_letter_excerpts(
        &self,
        name: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Vec<DeadLetterExcerpt>, Error> {
        let queues = self.shard_queues(name).await?;
        let pages = try_join_all(queues.iter().map(|(shard, queue)| async move {
            let from = after_in_shard(name, after, *shard);
            self.broker
                .dead_letter_excerpts(queue, from.as_deref(), max, window)
                .await
        }))
        .await?;
        let mut all = Vec::new();
        for ((shard, _), page) in queues.iter().zip(pages) {
            all.extend(page.into_iter().map(|d| (*shard, d.token.clone(), d)));
        }
        Ok(oldest_first(all, max)
            .into_iter()
            .map(|(shard, token, d)| DeadLetterExcerpt {
                token: mark_token(&token, shard),
                ..d
            })
            .collect())
    }

    /// Dead letters of `name` by (marked) token, cut as in
    /// [`dead_letter_excerpts`](Self::dead_letter_excerpts); each answer
    /// keeps the token asked for.
    pub async fn dead_letters_by_token(
        &self,
        name: &str,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error> {
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let (queue, bare) = locate(name, token);
            let found = self
                .broker
                .dead_letters_by_token(&queue, &[bare], window)
                .await?;
            out.push(
                found
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|d| DeadLetterExcerpt {
                        token: (*token).to_owned(),
                        ..d
                    }),
            );
        }
        Ok(out)
    }

    /// Up to `max` queued jobs of `name`, oldest first over its shards,
    /// after the (marked) token `after`, messages cut to their first
    /// `window` bytes; `Ok(None)` when no shard has a queue.
    pub async fn queued_excerpts(
        &self,
        name: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<MessageExcerpt>>, Error> {
        let queues = self.shard_queues(name).await?;
        let pages = try_join_all(queues.iter().map(|(shard, queue)| async move {
            let from = after_in_shard(name, after, *shard);
            self.broker
                .queued_excerpts(queue, from.as_deref(), max, window)
                .await
        }))
        .await?;
        let mut all = Vec::new();
        let mut any = false;
        for ((shard, _), page) in queues.iter().zip(pages) {
            if let Some(page) = page {
                any = true;
                all.extend(page.into_iter().map(|m| (*shard, m.token.clone(), m)));
            }
        }
        Ok(any.then(|| {
            oldest_first(all, max)
                .into_iter()
                .map(|(shard, token, m)| MessageExcerpt {
                    token: mark_token(&token, shard),
                    ..m
                })
                .collect()
        }))
    }

    /// Up to `max` leased jobs of `name`, oldest lease first over its
    /// shards, messages cut to their first `window` bytes; `Ok(None)` when
    /// no shard has a queue.
    pub async fn leased_excerpts(
        &self,
        name: &str,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<LeasedExcerpt>>, Error> {
        let queues = self.shard_queues(name).await?;
        let pages = try_join_all(
            queues
                .iter()
                .map(|(_, queue)| self.broker.leased_excerpts(queue, max, window)),
        )
        .await?;
        let mut all = Vec::new();
        let mut any = false;
        for ((shard, _), page) in queues.iter().zip(pages) {
            if let Some(page) = page {
                any = true;
                all.extend(page.into_iter().map(|l| LeasedExcerpt {
                    token: mark_token(&l.token, *shard),
                    ..l
                }));
            }
        }
        all.sort_by_key(|l| std::cmp::Reverse(l.lease.idle));
        all.truncate(max);
        Ok(any.then_some(all))
    }

    /// Who holds the job (marked) `token` of `name`, if a worker does.
    pub async fn lease(&self, name: &str, token: &str) -> Result<Option<Lease>, Error> {
        let (queue, bare) = locate(name, token);
        self.broker.lease(&queue, bare).await
    }

    /// Jobs (or dead letters) of `name` by (marked) token, messages cut to
    /// their first `window` bytes; each answer keeps the token asked for.
    pub async fn message_excerpts(
        &self,
        name: &str,
        stream: Stream,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<MessageExcerpt>>, Error> {
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let (queue, bare) = locate(name, token);
            let found = self
                .broker
                .message_excerpts(&queue, stream, &[bare], window)
                .await?;
            out.push(found.into_iter().flatten().next().map(|m| MessageExcerpt {
                token: (*token).to_owned(),
                ..m
            }));
        }
        Ok(out)
    }

    /// `len` bytes from `offset` of one field of the job or dead letter
    /// (marked) `token` of `name`.
    pub async fn entry_window(
        &self,
        name: &str,
        stream: Stream,
        token: &str,
        field: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        let (queue, bare) = locate(name, token);
        self.broker
            .entry_window(&queue, stream, bare, field, offset, len)
            .await
    }

    /// The jobs (or dead letters) of `name` whose message holds `call_id`,
    /// newest first, tokens marked: in the shard the id names (`...~k`),
    /// else in every shard, until `deadline`. A call of the jobs stream
    /// found nowhere is not `finished` while `name` has calls parked on
    /// its group keys' waiting lists (or they could not be read): a call
    /// may wait there, off the stream, and they are not searched (parking
    /// ahead parks calls no worker has been handed yet).
    pub async fn find_call(
        &self,
        name: &str,
        stream: Stream,
        call_id: &str,
        max_matches: usize,
        deadline: Instant,
    ) -> Result<Found, Error> {
        let mut queues = self.shard_queues(name).await?;
        if let Some(k) = shards::shard_of_id(call_id) {
            if queues.iter().any(|(shard, _)| *shard == k) {
                queues.retain(|(shard, _)| *shard == k);
            }
        }
        let mut all = Vec::new();
        let mut finished = true;
        for (shard, queue) in queues {
            let found = self
                .broker
                .find_call(&queue, stream, call_id, max_matches, deadline)
                .await?;
            finished &= found.finished;
            all.extend(found.tokens.into_iter().map(|t| (shard, t)));
        }
        all.sort_by_key(|(shard, t)| std::cmp::Reverse((entry_order(t), *shard)));
        if all.len() > max_matches {
            all.truncate(max_matches);
            finished = false;
        }
        if all.is_empty() && finished && stream == Stream::Jobs {
            finished = match self.busy_group_keys(name).await {
                Ok(groups) => {
                    groups.waiting == 0
                        && !groups.capped
                        && groups.keys.iter().all(|k| k.waiting.is_some())
                }
                Err(_) => false,
            };
        }
        Ok(Found {
            tokens: all.into_iter().map(|(k, t)| mark_token(&t, k)).collect(),
            finished,
        })
    }

    /// A page of one of `name`'s streams over its shards, newest first,
    /// below the entry `before` (a marked token, or a bare entry id: a
    /// time): see [`Inspection::search_stream`](crate::backend::Inspection::search_stream).
    /// Tokens come marked; `reached` is a bare entry id (a time every
    /// shard was searched down to).
    pub async fn search_stream(
        &self,
        name: &str,
        stream: Stream,
        text: Option<&str>,
        before: Option<&str>,
        max: usize,
        deadline: Instant,
    ) -> Result<SearchPage, Error> {
        let before = before.map(|b| locate(name, b).1);
        let mut found: Vec<(u32, String)> = Vec::new();
        // Down to where every shard was searched.
        let mut floor: Option<String> = None;
        for (shard, queue) in self.shard_queues(name).await? {
            let page = self
                .broker
                .search_stream(&queue, stream, text, before, max, deadline)
                .await?;
            found.extend(page.tokens.into_iter().map(|t| (shard, t)));
            if let Some(reached) = page.reached {
                if floor
                    .as_deref()
                    .is_none_or(|f| entry_order(&reached) > entry_order(f))
                {
                    floor = Some(reached);
                }
            }
        }
        if let Some(f) = &floor {
            let f = entry_order(f);
            found.retain(|(_, t)| entry_order(t) >= f);
        }
        found.sort_by_key(|(shard, t)| std::cmp::Reverse((entry_order(t), *shard)));
        let mut reached = floor;
        if found.len() > max {
            found.truncate(max);
            reached = found.last().map(|(_, t)| t.clone());
        }
        Ok(SearchPage {
            tokens: found.into_iter().map(|(k, t)| mark_token(&t, k)).collect(),
            reached,
        })
    }

    /// Up to `max` jobs on `name`'s schedules, soonest due first over its
    /// shards, with their messages; `Ok(None)` when no shard is known
    /// (neither a queue nor a schedule). Their ids are call ids, which
    /// name their shard themselves (`...~k`).
    pub async fn scheduled(
        &self,
        name: &str,
        max: usize,
    ) -> Result<Option<Vec<ScheduledJob>>, Error> {
        let queues = self.shard_queues(name).await?;
        let pages = try_join_all(
            queues
                .iter()
                .map(|(_, queue)| self.broker.scheduled(queue, max)),
        )
        .await?;
        let mut all = Vec::new();
        let mut any = false;
        for jobs in pages.into_iter().flatten() {
            any = true;
            all.extend(jobs);
        }
        all.sort_by_key(|j| j.due_ms);
        all.truncate(max);
        Ok(any.then_some(all))
    }

    /// Up to `max` jobs on `name`'s schedules, soonest first over its
    /// shards, from the `from`-th soonest, tokens and messages cut;
    /// `Ok(None)` when no shard is known. Each shard is read for its
    /// first `from + max`.
    pub async fn scheduled_excerpts(
        &self,
        name: &str,
        from: usize,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<ScheduledExcerpt>>, Error> {
        let queues = self.shard_queues(name).await?;
        if queues.len() == 1 {
            return self
                .broker
                .scheduled_excerpts(&queues[0].1, from, max, window)
                .await;
        }
        let first = from.saturating_add(max);
        let pages = try_join_all(
            queues
                .iter()
                .map(|(_, queue)| self.broker.scheduled_excerpts(queue, 0, first, window)),
        )
        .await?;
        let mut all = Vec::new();
        let mut any = false;
        for ((shard, _), page) in queues.iter().zip(pages) {
            if let Some(jobs) = page {
                any = true;
                all.extend(jobs.into_iter().map(|j| (*shard, j)));
            }
        }
        // Soonest first; one moved onto its queue meanwhile (no due time) last.
        all.sort_by_key(|(shard, j)| (j.due_ms.is_none(), j.due_ms, *shard));
        Ok(any.then(|| {
            all.into_iter()
                .skip(from)
                .take(max)
                .map(|(_, j)| j)
                .collect()
        }))
    }

    /// `len` bytes from `offset` of the message of job `id` on `name`'s
    /// schedules, and when it is due: on the shard the id names, else on
    /// the first that has it.
    pub async fn scheduled_window(
        &self,
        name: &str,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<ScheduledExcerpt>, Error> {
        let mut queues = self.shard_queues(name).await?;
        if let Some(k) = shards::shard_of_id(id) {
            // Its own shard first, then the others (a count lowered since).
            queues.sort_by_key(|(shard, _)| *shard != k);
        }
        for (_, queue) in queues {
            if let Some(found) = self
                .broker
                .scheduled_window(&queue, id, offset, len)
                .await?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_goes_on_from_a_marked_token_in_every_shard() {
        assert_eq!(after_in_shard("S", None, 1), None);
        // After 7-2 of shard 1: shards 0 and 1 after it, shard 2 from it.
        assert_eq!(
            after_in_shard("S", Some("7-2~1"), 0).as_deref(),
            Some("7-2")
        );
        assert_eq!(
            after_in_shard("S", Some("7-2~1"), 1).as_deref(),
            Some("7-2")
        );
        assert_eq!(
            after_in_shard("S", Some("7-2~1"), 2).as_deref(),
            Some("7-1")
        );
        assert_eq!(
            after_in_shard("S", Some("7-0"), 3).as_deref(),
            Some(format!("6-{}", u64::MAX).as_str())
        );
    }

    #[test]
    fn merged_pages_are_oldest_first_ties_in_shard_order() {
        let all = vec![
            (2, "5-0".to_owned(), ()),
            (0, "6-0".to_owned(), ()),
            (1, "5-0".to_owned(), ()),
        ];
        let merged: Vec<_> = oldest_first(all, 2)
            .into_iter()
            .map(|(k, t, _)| (k, t))
            .collect();
        assert_eq!(merged, vec![(1, "5-0".to_owned()), (2, "5-0".to_owned())]);
    }
}
