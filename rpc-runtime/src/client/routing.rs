//! A client's reply inbox: who holds its reader, and how each reply gets
//! to the call waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::backend::{Broker, PushedAndPopped, Reader};
use crate::call::JobId;
use crate::error::Error;
use crate::sync::lock;

/// Replies fetched per blocking read.
pub(super) const REPLY_BATCH: usize = 256;
/// How long one blocking read of the inbox waits before looping (to
/// notice shutdown).
pub(super) const REPLY_POLL: Duration = Duration::from_secs(1);

/// A client's reply inbox and who reads it.
pub(super) struct Inbox {
    /// The inbox's key. It changes when the client moves to a fresh inbox
    /// because something overwrote this one (see [`Inbox::move_if_clobbered`]).
    pub(super) name: Mutex<Arc<str>>,
    /// What every client id of this client starts with (may be empty).
    pub(super) id_prefix: String,
    pub(super) state: Mutex<InboxState>,
    /// Tells the router that calls wait and the reader is free.
    pub(super) wake_router: tokio::sync::Notify,
    /// Counts failed reads of the inbox. A read cut short by a connection
    /// failure may have popped replies that never arrived; calls whose
    /// result is kept then look for it too (see [`Pending::wait_reply`]).
    pub(super) read_failures: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
pub(super) struct InboxState {
    /// Calls whose replies someone else reads for them.
    pub(super) waiters: HashMap<Box<str>, oneshot::Sender<Vec<u8>>>,
    /// Whether a leading call or the router holds the reader.
    pub(super) busy: bool,
    /// The reader while nobody holds it (`None` before its first use and
    /// after its connection failed: the next holder opens a new one).
    pub(super) idle: Option<Box<dyn Reader>>,
}

/// A new random client id, after `prefix` and a dash when there is one.
pub(super) fn fresh_client_id(prefix: &str) -> String {
    fresh_call_id(prefix, None).as_str().to_owned()
}

/// A new random call id: `prefix-` when there is a prefix, 32 hex digits,
/// and `~shard` when the call is marked with its shard. Made on every
/// send, so it is written on the stack and allocated once (formatting a
/// UUID to a `String` and copying it into the id took three).
pub(super) fn fresh_call_id(prefix: &str, shard: Option<u32>) -> JobId {
    use std::io::Write;

    let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
    let random = uuid::Uuid::new_v4().simple().encode_lower(&mut hex);
    if prefix.is_empty() && shard.is_none() {
        return JobId::from(&*random);
    }
    let write = |out: &mut dyn Write| {
        if !prefix.is_empty() {
            write!(out, "{prefix}-")?;
        }
        out.write_all(random.as_bytes())?;
        match shard {
            Some(shard) => write!(out, "{}{shard}", rpc_protocol::shards::SEPARATOR),
            None => Ok(()),
        }
    };
    // On the stack when it fits (a prefix of up to about 80 bytes).
    let mut buf = [0u8; 128];
    let mut stack = std::io::Cursor::new(&mut buf[..]);
    if write(&mut stack).is_ok() {
        let len = stack.position() as usize;
        return JobId::from(std::str::from_utf8(&buf[..len]).expect("the id is UTF-8"));
    }
    let mut long = Vec::with_capacity(prefix.len() + 48);
    write(&mut long).expect("writing to a Vec does not fail");
    JobId::from(String::from_utf8(long).expect("the id is UTF-8"))
}

impl Inbox {
    /// The inbox's key now.
    pub(super) fn name(&self) -> Arc<str> {
        lock(&self.name).clone()
    }

    /// After a failed read of `read_from`: if Redis said the key holds
    /// something other than a list (something overwrote the inbox), moves
    /// the client to a fresh inbox, so later calls are answered again.
    /// Calls already in flight named the old one; those whose result is
    /// kept find it through the kept result (their wait watches
    /// `read_failures`), the others time out at their deadline.
    fn move_if_clobbered(&self, backend: &dyn Broker, read_from: &str, error: &Error) {
        if !matches!(error, Error::Broker(m) if m.contains("WRONGTYPE")) {
            return;
        }
        let mut name = lock(&self.name);
        if &**name != read_from {
            return; // another read moved it already
        }
        let fresh: Arc<str> = backend.inbox_name(&fresh_client_id(&self.id_prefix)).into();
        tracing::warn!(old = %name, new = %fresh, "the client's inbox was overwritten by a key that is not a list; moving to a fresh inbox");
        *name = fresh;
    }

    /// Takes the reader if nobody holds it.
    pub(super) fn try_lease(self: &Arc<Self>) -> Option<ReaderLease> {
        self.lease_if(|_| true)
    }

    /// Takes the reader if nobody holds it and calls wait for replies.
    pub(super) fn try_lease_for_waiters(self: &Arc<Self>) -> Option<ReaderLease> {
        self.lease_if(|state| !state.waiters.is_empty())
    }

    pub(super) fn lease_if(
        self: &Arc<Self>,
        wanted: impl FnOnce(&InboxState) -> bool,
    ) -> Option<ReaderLease> {
        let mut state = lock(&self.state);
        if state.busy || !wanted(&state) {
            return None;
        }
        state.busy = true;
        Some(ReaderLease {
            inbox: self.clone(),
            reader: state.idle.take(),
            held: true,
            reading: false,
        })
    }

    /// Hands each reply to its waiting call; returns the one for `mine`
    /// (the holder's own call), if it is among them.
    pub(super) fn route(&self, replies: Vec<Vec<u8>>, mine: Option<&str>) -> Option<Vec<u8>> {
        let mut own = None;
        // One lock per batch, not per reply; the sends (which wake the
        // callers) happen after it is released.
        let mut ready = Vec::with_capacity(replies.len());
        {
            let mut state = lock(&self.state);
            for body in replies {
                // A reply that is not whole JSON (truncated, garbled) ends
                // no call: its call waits on for a readable one.
                if !is_whole_json(&body) {
                    tracing::warn!(
                        bytes = body.len(),
                        "dropping a reply that is not whole JSON"
                    );
                    continue;
                }
                let waiter = match reply_id(&body) {
                    Some(id) if Some(&*id) == mine => None,
                    Some(id) => match state.waiters.remove(&*id) {
                        Some(tx) => Some(tx),
                        // Late (its call gave up) or a duplicate: dropped.
                        None => continue,
                    },
                    None => {
                        tracing::warn!("dropping an unreadable reply");
                        continue;
                    }
                };
                match waiter {
                    Some(tx) => ready.push((tx, body)),
                    None => own = Some(body),
                }
            }
        }
        for (tx, body) in ready {
            // The caller may have given up (deadline); that is fine.
            let _ = tx.send(body);
        }
        own
    }
}

/// The inbox's reader, held by one call or the router. Dropping it gives
/// it back, and wakes the router if calls are left waiting, so a holder
/// that is cancelled or fails cannot strand them.
pub(super) struct ReaderLease {
    pub(super) inbox: Arc<Inbox>,
    /// The connection; `None` until opened, and after it failed.
    pub(super) reader: Option<Box<dyn Reader>>,
    /// Whether this lease still holds the reader.
    pub(super) held: bool,
    /// Whether a read is in flight on it: a lease dropped then (its holder
    /// cancelled) throws the connection away, since a blocking read left on
    /// it would hold up the next command and could pop a reply nobody gets.
    pub(super) reading: bool,
}

impl ReaderLease {
    /// Pops replies as [`Reader::pop_replies`] does, opening the reader if
    /// needed. (After a failure the reader reconnects by itself.)
    pub(super) async fn pop(
        &mut self,
        backend: &dyn Broker,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let reader = open(&mut self.reader, backend).await?;
        let name = self.inbox.name();
        self.reading = true;
        let popped = reader.pop_replies(&name, max, wait).await;
        self.reading = false;
        if let Err(e) = &popped {
            self.inbox.move_if_clobbered(backend, &name, e);
            self.inbox.read_failures.send_modify(|n| *n += 1);
        }
        popped
    }

    /// Pushes a job and pops replies as [`Reader::push_and_pop`] does,
    /// opening the reader if needed (`Err` if it cannot be opened).
    pub(super) async fn push_and_pop(
        &mut self,
        backend: &dyn Broker,
        queue: &str,
        payload: &[u8],
        max: usize,
        wait: Duration,
    ) -> Result<PushedAndPopped, Error> {
        let reader = open(&mut self.reader, backend).await?;
        let name = self.inbox.name();
        self.reading = true;
        let sent = reader.push_and_pop(queue, payload, &name, max, wait).await;
        self.reading = false;
        if let Err(e) = &sent.popped {
            self.inbox.move_if_clobbered(backend, &name, e);
            self.inbox.read_failures.send_modify(|n| *n += 1);
        }
        Ok(sent)
    }

    /// Gives the reader back, unless calls still wait: then keeps it (the
    /// router reads on) and says so.
    pub(super) fn release_if_idle(&mut self) -> bool {
        self.give_back(true)
    }

    /// Gives the reader back (with its connection, unless a read on it was
    /// cut short) and wakes the router if calls wait; with `only_if_idle`,
    /// only when none do.
    pub(super) fn give_back(&mut self, only_if_idle: bool) -> bool {
        let mut state = lock(&self.inbox.state);
        if only_if_idle && !state.waiters.is_empty() {
            return false;
        }
        state.busy = false;
        state.idle = if self.reading {
            None
        } else {
            self.reader.take()
        };
        self.held = false;
        if !state.waiters.is_empty() {
            self.inbox.wake_router.notify_one();
        }
        true
    }

    /// Gives the reader back after registering a waiter for `id`, whose
    /// reply somebody else must now read.
    pub(super) fn release_waiting(self, id: &JobId) -> oneshot::Receiver<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inbox.state)
            .waiters
            .insert(id.as_str().into(), tx);
        // Drop gives the reader back and wakes the router.
        rx
    }
}

/// The reader in `slot`, opened first if there is none.
pub(super) async fn open<'r>(
    slot: &'r mut Option<Box<dyn Reader>>,
    backend: &dyn Broker,
) -> Result<&'r mut Box<dyn Reader>, Error> {
    match slot {
        Some(reader) => Ok(reader),
        None => Ok(slot.insert(backend.open_reader().await?)),
    }
}

impl Drop for ReaderLease {
    fn drop(&mut self) {
        if self.held {
            self.give_back(false);
        }
    }
}

/// The router task: while calls wait for replies and no leading call holds
/// the reader, block on the inbox and hand each reply to its waiter.
pub(super) async fn route_replies(backend: Arc<dyn Broker>, inbox: std::sync::Weak<Inbox>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(ib) = inbox.upgrade() else { return };
        // Register before looking, so a wake-up sent in between is kept.
        let notified = ib.wake_router.notified();
        let Some(mut lease) = ib.try_lease_for_waiters() else {
            notified.await;
            continue;
        };
        loop {
            match lease.pop(&*backend, REPLY_BATCH, REPLY_POLL).await {
                Ok(replies) => {
                    backoff = Duration::from_millis(50);
                    ib.route(replies, None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reply reader failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if lease.release_if_idle() {
                break;
            }
            // Let the woken callers run before the next blocking read is
            // sent: its write is off the callers' critical path.
            tokio::task::yield_now().await;
        }
    }
}

/// The call id of a reply, borrowed from it when possible.
///
/// Replies from this crate's workers start with `{"v":1,"id":"` (see
/// [`rpc_protocol::reply::encode_ok_reply`]); an id without escapes is then read straight
/// from the bytes. Anything else goes through the JSON parser.
/// Whether `body` is one whole JSON object (checked without building it).
fn is_whole_json(body: &[u8]) -> bool {
    rpc_protocol::job::is_json_object(body)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

pub(super) fn reply_id(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    const HEAD: &[u8] = b"{\"v\":1,\"id\":\"";
    if let Some(rest) = body.strip_prefix(HEAD) {
        if let Some(end) = rest.iter().position(|&b| b == b'"') {
            let id = &rest[..end];
            if !id.contains(&b'\\') {
                if let Ok(id) = std::str::from_utf8(id) {
                    return Some(std::borrow::Cow::Borrowed(id));
                }
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    if !rpc_protocol::job::is_json_object(body) {
        return None;
    }
    serde_json::from_slice::<IdOnly>(body).ok().map(|r| r.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_hex(s: &str) -> bool {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    #[test]
    fn call_ids_carry_the_prefix_and_the_shard_mark() {
        let plain = fresh_call_id("", None);
        assert!(is_hex(plain.as_str()), "{plain}");
        assert_ne!(plain, fresh_call_id("", None));

        let prefixed = fresh_call_id("tenant-a", None);
        let random = prefixed.as_str().strip_prefix("tenant-a-").expect("prefix");
        assert!(is_hex(random), "{prefixed}");

        let marked = fresh_call_id("tenant-a", Some(7));
        assert_eq!(rpc_protocol::shards::shard_of_id(marked.as_str()), Some(7));
        let (front, _) = marked.as_str().rsplit_once('~').expect("mark");
        assert!(is_hex(front.strip_prefix("tenant-a-").expect("prefix")));

        // A prefix too long for the stack buffer takes the other path.
        let long = "p".repeat(200);
        let id = fresh_call_id(&long, Some(12));
        assert!(id.as_str().starts_with(&format!("{long}-")));
        assert_eq!(rpc_protocol::shards::shard_of_id(id.as_str()), Some(12));
        assert_eq!(id.as_str().len(), 200 + 1 + 32 + 3);
        assert!(is_hex(&fresh_client_id("")));
    }
}
