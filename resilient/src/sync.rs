//! Atomics, swapped for loom's model-checked ones under `--cfg resilient_loom`, so the lock-free pieces
//! (the breaker's state word, its sliding windows, the half-open permits, the bulkhead's slot
//! counter) are tested under every interleaving loom can find.

#[cfg(resilient_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(resilient_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(not(resilient_loom))]
pub(crate) use std::sync::OnceLock;

/// `std::sync::OnceLock`'s subset the crate uses, with its publication made of loom atomics so
/// loom sees the race between a lazy initialisation and the readers that find it done.
#[cfg(resilient_loom)]
pub(crate) struct OnceLock<T> {
    /// 0: empty, 1: being initialised, 2: ready.
    state: AtomicUsize,
    value: std::sync::OnceLock<T>,
}

#[cfg(resilient_loom)]
impl<T> Default for OnceLock<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(resilient_loom)]
impl<T> OnceLock<T> {
    pub(crate) fn new() -> Self {
        OnceLock {
            state: AtomicUsize::new(0),
            value: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == 2 {
            self.value.get()
        } else {
            None
        }
    }

    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            let _ = self.value.set(init());
            self.state.store(2, Ordering::Release);
        }
        loop {
            if let Some(value) = self.get() {
                return value;
            }
            loom::thread::yield_now();
        }
    }
}
