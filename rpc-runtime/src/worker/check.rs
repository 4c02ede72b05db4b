//! The checks before anything of a job message is believed, and what a
//! message that fails them becomes: its size, its form (strictly
//! decoded, [`JobMessage::decode`]), where it wants replies (an inbox of
//! this worker's prefix, [`Queue::is_inbox`](crate::backend::Queue::is_inbox)),
//! its protocol version. A message that fails is dead-lettered once with
//! the reason, and answered `bad_request` when its caller's inbox is known
//! and valid; nothing it names is touched. Split from `job.rs`, which runs
//! what passes.

use rpc_protocol::job::JobMessage;

use super::shared::Shared;

use crate::backend::{Broker, Completion, Delivery};
use crate::error::ErrorKind;

/// The checks before anything of a message is believed: its size, its
/// form, where it wants replies, its protocol version. A message that fails
/// is dead-lettered (the completion saying so is the error).
pub(super) fn check<'a>(
    shared: &Shared,
    delivery: &'a Delivery,
) -> Result<JobMessage<'a>, Box<Completion>> {
    let inbox_ttl = Some(shared.settings.inbox_ttl);
    if delivery.payload.len() > shared.settings.max_message_bytes {
        let reason = format!(
            "oversized job message: {} bytes, over the worker's limit of {} bytes",
            delivery.payload.len(),
            shared.settings.max_message_bytes
        );
        tracing::warn!(queue = %delivery.queue, token = %delivery.token, "{reason}; dead-lettering");
        // Not parsed at all (that is the point), so the caller is not told;
        // it times out at its deadline.
        return Err(Box::new(Completion {
            dead_letter: Some(reason),
            ..Completion::default()
        }));
    }
    let backend = &*shared.backend;
    let msg = match JobMessage::decode(&delivery.payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(queue = %delivery.queue, token = %delivery.token, error = %e, "dead-lettering an unreadable message");
            let mut c = unreadable(backend, delivery, &e.to_string());
            c.inbox_ttl = inbox_ttl;
            return Err(Box::new(c));
        }
    };
    if let Some(to) = msg.reply_to.as_deref().filter(|to| !backend.is_inbox(to)) {
        // Anyone who may add a job could otherwise make the worker push to,
        // and expire, any key it can write: the jobs stream, a hash, another
        // application's inbox.
        let reason = format!(
            "`reply_to` {to:?} is not a client inbox of this worker's prefix ({}); nothing was run or written",
            backend.inbox_name("<client id>")
        );
        tracing::warn!(queue = %delivery.queue, token = %delivery.token, id = %msg.id, "{reason}; dead-lettering");
        return Err(Box::new(Completion {
            dead_letter: Some(reason),
            ..Completion::default()
        }));
    }
    if !(rpc_protocol::job::PROTOCOL_VERSION..=rpc_protocol::job::NEWEST_VERSION).contains(&msg.v) {
        // A message of another protocol version is kept (a worker that
        // speaks it can have it replayed), and its caller told why.
        let reason = format!(
            "protocol version {} is not spoken here (this worker speaks {} to {})",
            msg.v,
            rpc_protocol::job::PROTOCOL_VERSION,
            rpc_protocol::job::NEWEST_VERSION
        );
        let reply = msg.reply_to.as_deref().map(|to| {
            (
                to.to_owned(),
                rpc_protocol::reply::encode_error_reply(
                    &msg.id,
                    ErrorKind::BadRequest,
                    &reason,
                    None,
                ),
            )
        });
        return Err(Box::new(Completion {
            reply_to: reply.as_ref().map(|(to, _)| to.clone()),
            reply: reply.map(|(_, body)| body),
            dead_letter: Some(reason),
            inbox_ttl,
            ..Completion::default()
        }));
    }
    Ok(msg)
}

/// The completion for a message that is not a job message: dead-letter it,
/// and if enough of it parses to know the caller, tell the caller why.
fn unreadable(backend: &dyn Broker, delivery: &Delivery, reason: &str) -> Completion {
    #[derive(serde::Deserialize)]
    struct Header {
        id: String,
        reply_to: Option<String>,
    }
    let reason = format!("unreadable job message: {reason}");
    let reply = Some(&delivery.payload)
        .filter(|p| rpc_protocol::job::is_json_object(p))
        .and_then(|p| serde_json::from_slice::<Header>(p).ok())
        // An id no call can have is not echoed back (it may be a megabyte).
        .filter(|h| (1..=rpc_protocol::limits::MAX_ID_BYTES).contains(&h.id.len()))
        .and_then(|h| {
            h.reply_to.filter(|to| backend.is_inbox(to)).map(|to| {
                (
                    to,
                    rpc_protocol::reply::encode_error_reply(
                        &h.id,
                        ErrorKind::BadRequest,
                        &reason,
                        None,
                    ),
                )
            })
        });
    Completion {
        reply_to: reply.as_ref().map(|(to, _)| to.clone()),
        reply: reply.map(|(_, body)| body),
        dead_letter: Some(reason),
        ..Completion::default()
    }
}
