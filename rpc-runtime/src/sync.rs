//! Locking that survives a panic: a task that panicked while holding one of
//! the runtime's mutexes (which guard maps and flags, never half-written
//! invariants) must not make every later caller panic too, so a poisoned
//! lock is taken over as it is.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking it over if a panic poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
