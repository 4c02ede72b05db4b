//! Concurrent single sends gathered into pipelines
//! (`rpc-runtime/src/backend/redis/coalesce.rs`), in one test binary: each
//! send still its own (`each_alone`), and an adversarial review's attacks
//! (`attacks`), against private redis-servers.

mod attacks;
mod each_alone;
