//! Owed trims (`rpc-runtime/src/backend/redis/reader/owed_trims.rs`), in
//! one test binary: the rules (`rules`), and an adversarial review's
//! attacks on them (`attacks`), against private redis-servers.

mod attacks;
mod rules;
