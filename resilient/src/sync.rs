//! Atomics, swapped for loom's model-checked ones under `--cfg loom`, so the lock-free pieces
//! (the breaker's state word, its sliding windows, the half-open permits) are tested under every
//! interleaving loom can find.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
