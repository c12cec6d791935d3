//! Slots owned rather than borrowed, for the tower layer: reserved in `poll_ready`, used by
//! the call that follows.

use std::fmt;
use std::sync::atomic::Ordering;

use super::{Bulkhead, WaitingGuard};

/// A slot taken ahead of its call and owned, so that it can be held between a tower service's
/// `poll_ready` and its `call` (see [`crate::tower`]). Given back on drop, as a
/// [`BulkheadPermit`](super::BulkheadPermit) is.
pub(crate) struct OwnedSlot {
    bulkhead: Bulkhead,
}

impl Bulkhead {
    /// Takes a slot if one is free now, without counting a rejection when none is: a full
    /// bulkhead here means "not ready yet", not a refused call.
    pub(crate) fn try_reserve(&self) -> Option<OwnedSlot> {
        let permit = self.shared.semaphore.try_acquire().ok()?;
        // The slot is given back by `OwnedSlot`'s drop, which owns the bulkhead rather than
        // borrowing it.
        permit.forget();
        Some(OwnedSlot {
            bulkhead: self.clone(),
        })
    }

    /// Waits as long as it takes for a slot: the caller (a tower service's readiness) bounds
    /// the wait, as tower's `ConcurrencyLimit` leaves it to its caller. `None` only if the
    /// semaphore were closed, which a bulkhead never does.
    pub(crate) async fn reserve(self) -> Option<OwnedSlot> {
        {
            let _waiting = WaitingGuard::enter(&self.shared.waiting);
            self.shared.semaphore.acquire().await.ok()?.forget();
        }
        Some(OwnedSlot { bulkhead: self })
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        let shared = &*self.bulkhead.shared;
        let retired = shared
            .to_retire
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !retired {
            shared.semaphore.add_permits(1);
        }
    }
}

impl fmt::Debug for OwnedSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSlot")
            .field("bulkhead", &self.bulkhead.name())
            .finish()
    }
}
