//! The bulkhead's slot count: calls in flight and waiters nobody has served yet, packed in one
//! atomic word, bounded by a limit that may change under it.
//!
//! Taking and giving back a slot is a compare-and-swap and a `fetch_sub` on that word: no lock,
//! whether the bulkhead waits or not, so switching between the two kinds (or changing the
//! limit) never moves a slot between counters. Waiters queue elsewhere ([`super::wait`]); the
//! only thing this module knows of them is how many are still unserved, so that a release or a
//! raised limit can tell whether a waiter needs the slot it frees.
//!
//! The race that matters is a release against a waiter registering: the waiter counts itself
//! in the same word the release decrements, so one of the two sees the other and a slot is
//! never left free while a waiter sleeps. A raised limit is a separate atomic; the raiser and a
//! registering waiter each write, fence and read the other's (the store-fence-load pattern).

use crate::sync::{AtomicU64, AtomicUsize, Ordering, fence};

/// One unserved waiter, in the word's high half.
const WAITER: u64 = 1 << 32;
/// The word's low half: calls in flight.
const IN_FLIGHT: u64 = WAITER - 1;

fn in_flight(word: u64) -> usize {
    // At most `MAX_CONCURRENT` (2^20): it fits.
    (word & IN_FLIGHT) as usize
}

fn unserved(word: u64) -> u64 {
    word >> 32
}

pub(crate) struct Slots {
    /// Calls in flight (low half) and registered waiters no release has served yet (high
    /// half). Waiters are counted and served only under the wait queue's gate.
    word: AtomicU64,
    limit: AtomicUsize,
}

impl Slots {
    pub(crate) fn new(limit: usize) -> Self {
        Slots {
            word: AtomicU64::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    /// Takes a slot if fewer than the limit are in flight, waiters or not.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        self.take_if(|_| true)
    }

    /// Takes a slot if fewer than the limit are in flight and nobody waits (waiters come
    /// first).
    #[inline]
    pub(crate) fn try_take_unqueued(&self) -> bool {
        self.take_if(|word| unserved(word) == 0)
    }

    #[inline]
    fn take_if(&self, allowed: impl Fn(u64) -> bool) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        let mut word = self.word.load(Ordering::Relaxed);
        while in_flight(word) < limit && allowed(word) {
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
        false
    }

    /// Gives a slot back; true when a waiter may need it (the caller then serves the queue).
    #[inline]
    pub(crate) fn put_back(&self) -> bool {
        unserved(self.word.fetch_sub(1, Ordering::AcqRel)) > 0
    }

    /// Changes the limit; true when waiters may now fit (the caller then serves the queue).
    /// Calls over a lowered limit keep their slots and give them back as they finish.
    pub(crate) fn set_limit(&self, limit: usize) -> bool {
        self.limit.store(limit, Ordering::Release);
        // Pairs with the fence in `register_waiter`: either this load sees the waiter, or the
        // waiter sees the new limit.
        fence(Ordering::SeqCst);
        unserved(self.word.load(Ordering::Relaxed)) > 0
    }

    /// Takes a free slot for a new waiter, or counts it as unserved: true when it got a slot
    /// and need not wait. Call under the queue's gate.
    pub(crate) fn register_waiter(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let next = if in_flight(word) < limit {
                word + 1
            } else {
                word + WAITER
            };
            match self
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if next == word + 1 => return true,
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        // A limit raised after the read above, by a raiser that may not have seen this waiter.
        fence(Ordering::SeqCst);
        self.serve_one()
    }

    /// Takes a slot on behalf of an unserved waiter, which stops counting as unserved: true
    /// when the caller must now hand it a slot. Call under the queue's gate.
    pub(crate) fn serve_one(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        let mut word = self.word.load(Ordering::Relaxed);
        while unserved(word) > 0 && in_flight(word) < limit {
            match self.word.compare_exchange_weak(
                word,
                word - WAITER + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
        false
    }

    /// Forgets a waiter that leaves without being served. Call under the queue's gate.
    pub(crate) fn unregister_waiter(&self) {
        self.word.fetch_sub(WAITER, Ordering::AcqRel);
    }

    pub(crate) fn in_flight(&self) -> usize {
        in_flight(self.word.load(Ordering::Relaxed))
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
}
