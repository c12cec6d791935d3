//! Atomics, swapped for loom's model-checked ones under `--cfg resilient_loom`, so the lock-free pieces
//! (the breaker's state word, its sliding windows, the half-open permits, the bulkhead's slot
//! counter) are tested under every interleaving loom can find.

#[cfg(resilient_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(resilient_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
