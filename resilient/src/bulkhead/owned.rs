//! Slots owned rather than borrowed, for the tower layer: reserved in `poll_ready`, used by
//! the call that follows.

use std::fmt;
use std::time::Duration;

use super::{Bulkhead, WaitingGuard};

/// A slot taken ahead of its call and owned, so that it can be held between a tower service's
/// `poll_ready` and its `call` (see [`crate::tower`]). Given back on drop, as a
/// [`BulkheadPermit`](super::BulkheadPermit) is, whether the bulkhead waits or not.
pub(crate) struct OwnedSlot {
    bulkhead: Bulkhead,
}

impl Bulkhead {
    /// Takes a slot if one is free now and nobody is queued for it, without counting a
    /// rejection when none is: a full bulkhead here means "not ready yet", not a refused call.
    pub(crate) fn try_reserve(&self) -> Option<OwnedSlot> {
        self.shared.slots.try_take_unqueued().then(|| OwnedSlot {
            bulkhead: self.clone(),
        })
    }

    /// Waits as long as it takes for a slot: the caller (a tower service's readiness) bounds
    /// the wait, as tower's `ConcurrencyLimit` leaves it to its caller. Always `Some`; the
    /// `Option` keeps the tower layer's contract of a wait that may find no slot.
    pub(crate) async fn reserve(self) -> Option<OwnedSlot> {
        {
            let shared = &*self.shared;
            let _waiting = WaitingGuard::enter(&shared.waiting);
            if !shared.queue.wait(&shared.slots, None).await {
                return None;
            }
        }
        Some(OwnedSlot { bulkhead: self })
    }
}

impl OwnedSlot {
    /// Whether the bulkhead learns its limit from [`record`](Self::record).
    pub(crate) fn is_adaptive(&self) -> bool {
        self.bulkhead
            .shared
            .adaptive
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives the slot back after a call that took `latency` and succeeded or not, for an
    /// adaptive limit to learn from (as [`BulkheadPermit::record`](super::BulkheadPermit::record)).
    pub(crate) fn record(self, latency: Duration, ok: bool) {
        self.bulkhead.shared.record(latency, ok);
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        self.bulkhead.shared.release();
    }
}

impl fmt::Debug for OwnedSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSlot")
            .field("bulkhead", &self.bulkhead.name())
            .finish()
    }
}
