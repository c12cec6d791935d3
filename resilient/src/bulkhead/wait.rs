//! The queue of calls waiting for a slot, first come first served.
//!
//! A waiter registers under the gate (counting itself as unserved in [`Slots`], then looking
//! for a free slot), and otherwise waits on a semaphore that starts with no permits. A release
//! that finds unserved waiters takes its slot back for them under the gate and adds one permit:
//! the slot passes to the longest waiter (the semaphore is FIFO) without ever being free, so a
//! newcomer cannot overtake the queue. Releases that find nobody waiting never touch the gate
//! or the semaphore.
//!
//! Invariant, under the gate: permits not yet taken by a departed waiter never outnumber the
//! registered waiters, so a permit is never left behind once the last waiter has gone.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::slots::Slots;

pub(crate) struct Queue {
    gate: Mutex<()>,
    handoff: Semaphore,
}

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
            gate: Mutex::new(()),
            handoff: Semaphore::new(0),
        }
    }

    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands freed slots to waiters for as long as there are both.
    #[cold]
    pub(crate) fn serve(&self, slots: &Slots) {
        let _gate = self.gate();
        let mut served = 0;
        while slots.serve_one() {
            served += 1;
        }
        if served > 0 {
            self.handoff.add_permits(served);
        }
    }

    /// Waits for a slot, at most `max_wait` (`None`: as long as it takes); true when one was
    /// taken. Cancel safe: dropping the future leaves the queue and holds no slot.
    pub(crate) async fn wait(&self, slots: &Slots, max_wait: Option<Duration>) -> bool {
        let mut registration = {
            let _gate = self.gate();
            if slots.register_waiter() {
                return true;
            }
            Registration {
                queue: self,
                slots,
                done: false,
            }
        };
        let permit = match max_wait {
            Some(max_wait) => tokio::time::timeout(max_wait, self.handoff.acquire())
                .await
                .ok(),
            None => Some(self.handoff.acquire().await),
        };
        if let Some(Ok(permit)) = permit {
            permit.forget();
            registration.done = true;
            return true;
        }
        registration.leave()
    }
}

/// A registered waiter; leaves the queue on drop if the wait was cancelled.
struct Registration<'a> {
    queue: &'a Queue,
    slots: &'a Slots,
    /// Whether the waiter has left the queue, with or without a slot.
    done: bool,
}

impl Registration<'_> {
    /// Leaves the queue after the wait ran out: a slot handed over meanwhile is taken (true),
    /// otherwise the waiter stops counting as unserved (false).
    fn leave(mut self) -> bool {
        self.done = true;
        self.leave_queue()
    }

    fn leave_queue(&self) -> bool {
        let _gate = self.queue.gate();
        match self.queue.handoff.try_acquire() {
            Ok(permit) => {
                // Handed over for a waiter, maybe another one whose wait ended just as it came:
                // the waiter that finds it takes it, and the count of unserved waiters
                // already went down for it.
                permit.forget();
                true
            }
            Err(_) => {
                self.slots.unregister_waiter();
                false
            }
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.leave_queue() && self.slots.put_back() {
            // The cancelled waiter had been handed a slot it will not use.
            self.queue.serve(self.slots);
        }
    }
}
