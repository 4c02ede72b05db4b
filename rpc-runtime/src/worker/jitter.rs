//! The worker's randomness: the jitter of retry backoffs and hand-back
//! delays, so that jobs failing together do not all come back at once.
//! (The policies themselves are the protocol's, `rpc_protocol::backoff`;
//! only the random draw is the worker's.)

/// A random number (from the UUID generator the runtime already has).
pub(super) fn random() -> u64 {
    u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("a UUID has 16 bytes"),
    )
}

/// A random number in `0..=max`.
pub(super) fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    random() % (max + 1)
}
