//! Following a holder answer. A call whose idempotency key an earlier call
//! holds, for the same job and parameters, does not run: its worker
//! answers with the holder's id, and the call's answer is what is kept
//! under that id (`P:result:{holder}`).
//!
//! What is kept there is not believed blindly. Call ids are chosen by
//! senders, so anyone may send another call under the holder's id, run
//! it, and have its reply kept over the holder's; or answer a call under
//! that id with a holder answer of its own, so that what is kept is no
//! answer at all. A kept result answers the follower only when it is an
//! answer (`ok` or `error`) and carries the fingerprint the holder answer
//! named: the worker that ran the holder wrote the one it ran with. A
//! holder answer without a fingerprint comes from a worker that predates
//! them; its kept result cannot be checked and is taken as before, when
//! it is an answer.

use rpc_protocol::reply::ReplyMessage;

use super::reply::{ok_result, JobLabel};

use crate::call::JobId;
use crate::error::Error;

/// The call a holder answer names, and the fingerprint of the claim it
/// matched (`None` from a worker that predates fingerprints in replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) id: JobId,
    pub(super) fingerprint: Option<String>,
}

/// The holder a reply names, when it is a holder answer.
pub(super) fn holder_of(body: &[u8]) -> Option<Holder> {
    if ok_result(body).is_some() {
        return None;
    }
    let reply = ReplyMessage::decode(body).ok()?;
    let id = JobId::from(reply.holder?.as_ref());
    Some(Holder {
        id,
        fingerprint: reply.fingerprint.map(|f| f.into_owned()),
    })
}

/// `kept`, what is kept under the holder's id, when it answers the call
/// that was pointed there; else the error that says why it does not.
pub(super) fn vouched(job: JobLabel, holder: &Holder, kept: Vec<u8>) -> Result<Vec<u8>, Error> {
    let refuse = |reason: &str| Error::HolderResultRefused {
        job: job.to_string(),
        holder: holder.id.to_string(),
        reason: reason.to_owned(),
    };
    let reply = ReplyMessage::decode(&kept).map_err(|_| refuse("it is not a reply"))?;
    if reply.holder.is_some() {
        return Err(refuse(
            "it is itself a holder answer (another call under its id was answered so)",
        ));
    }
    if !reply.is_answer() {
        return Err(refuse("it has neither `ok` nor `error`"));
    }
    if let Some(expected) = &holder.fingerprint {
        match reply.fingerprint.as_deref() {
            Some(theirs) if theirs == expected => {}
            Some(_) => {
                return Err(refuse(
                    "it answers other parameters (another call was sent under its id)",
                ))
            }
            None => {
                return Err(refuse(
                    "it does not say which parameters it answers (another call was sent under its id, or a worker too old to say ran it)",
                ))
            }
        }
    }
    drop(reply);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_protocol::reply::{encode_holder_reply, encode_ok_reply, with_fingerprint};

    fn holder(fingerprint: Option<&str>) -> Holder {
        Holder {
            id: JobId::from("h"),
            fingerprint: fingerprint.map(str::to_owned),
        }
    }

    #[test]
    fn a_holder_answer_names_its_holder_and_fingerprint() {
        assert_eq!(
            holder_of(&encode_holder_reply("c", "h", "f1")),
            Some(holder(Some("f1")))
        );
        assert_eq!(
            holder_of(br#"{"v":1,"id":"c","holder":"h"}"#),
            Some(holder(None))
        );
        assert_eq!(holder_of(&encode_ok_reply("c", "1")), None);
    }

    #[test]
    fn only_an_answer_with_the_holders_fingerprint_is_taken() {
        let job = JobLabel::default();
        let signed = with_fingerprint(&encode_ok_reply("h", "9"), "f1").unwrap();
        assert!(vouched(job, &holder(Some("f1")), signed.clone()).is_ok());
        // Another call's reply under the holder's id: other parameters,
        // or none said (it was not keyed).
        let other = with_fingerprint(&encode_ok_reply("h", "152399025"), "f2").unwrap();
        let unsigned = encode_ok_reply("h", "152399025");
        for forged in [other, unsigned.clone()] {
            let refused = vouched(job, &holder(Some("f1")), forged).unwrap_err();
            assert!(
                matches!(refused, Error::HolderResultRefused { .. }),
                "{refused}"
            );
            assert!(!refused.to_string().contains("152399025"), "{refused}");
        }
        // A holder answer from a worker that predates fingerprints: taken
        // as before, when it is an answer.
        assert!(vouched(job, &holder(None), unsigned).is_ok());
        assert!(vouched(job, &holder(None), signed).is_ok());
    }

    #[test]
    fn a_holder_chain_or_an_envelope_without_an_answer_is_never_taken() {
        let job = JobLabel::default();
        let chain = encode_holder_reply("h", "g", "f1");
        let empty = br#"{"v":1,"id":"h","fingerprint":"f1"}"#.to_vec();
        for nothing in [chain, empty, b"garbage".to_vec()] {
            for expected in [Some("f1"), None] {
                let refused = vouched(job, &holder(expected), nothing.clone());
                assert!(
                    matches!(refused, Err(Error::HolderResultRefused { .. })),
                    "{refused:?}"
                );
            }
        }
        // `"ok":null` is an answer (a job that returns nothing).
        let unit = with_fingerprint(&encode_ok_reply("h", "null"), "f1").unwrap();
        assert!(vouched(job, &holder(Some("f1")), unit).is_ok());
    }
}
