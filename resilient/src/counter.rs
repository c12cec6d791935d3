//! A counter for hot paths: each thread bumps its own stripe, on its own cache line, with a
//! plain load and store — no lock-prefixed read-modify-write, no line shared with another
//! core. Reading sums the stripes.
//!
//! A breaker's success count is one: a success in the closed state must not cost a contended
//! atomic (see the benchmarks), yet operators want `resilient_calls_total{outcome="success"}`.
//!
//! Each live thread owns a distinct *slot* (claimed on its first bump, handed back when it
//! exits), so a stripe has one writer at a time and `load + 1, store` loses nothing. A thread
//! whose slot is past the stripes (more live threads than stripes) falls back to a shared
//! `fetch_add`, slower but exact. A slot is handed back through a mutex, so the next owner
//! starts from everything the previous one stored.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize as SlotCounter;

use crate::sync::{AtomicU64, AtomicUsize, OnceLock, Ordering};

/// Most stripes per counter. A counter has one stripe per hardware thread plus two (a
/// runtime's workers, the main thread and one more), up to this: 128 bytes each.
const MAX_STRIPES: usize = 64;

/// How many stripes a counter gets on this machine.
pub(crate) fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        (threads + 2).min(MAX_STRIPES)
    })
}

/// Slots handed back by exited threads, smallest first, so slots stay dense.
static FREE_SLOTS: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());
/// The next never-used slot.
static NEXT_SLOT: SlotCounter = SlotCounter::new(0);

thread_local! {
    /// This thread's slot plus one; 0 until the thread first counts. A `const` cell with no
    /// destructor, so reading it is a plain thread-local load with no lazy-init check.
    static SLOT: Cell<usize> = const { Cell::new(0) };
    /// Hands the slot back when the thread exits (registered on the thread's first count).
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let slot = SLOT.with(Cell::get);
        if slot != 0 {
            // Anything this thread counts from now on (from other destructors) goes to the
            // shared count: see `claim`.
            SLOT.with(|cell| cell.set(usize::MAX));
            FREE_SLOTS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Reverse(slot - 1));
        }
    }
}

/// This thread's slot: an index no other live thread holds, so a cell picked by it has one
/// writer at a time. `None` for a thread that is exiting.
#[inline]
pub(crate) fn slot() -> Option<usize> {
    match SLOT.with(Cell::get) {
        0 => claim(),
        usize::MAX => None, // the thread is exiting and gave its slot back
        slot => Some(slot - 1),
    }
}

/// Claims a slot for this thread, on its first count.
#[cold]
#[inline(never)]
fn claim() -> Option<usize> {
    // Register the release first: a thread whose locals are already being destroyed gets no
    // slot, since nothing would give it back.
    RELEASE.try_with(|_| ()).ok()?;
    let reused = FREE_SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let slot = match reused {
        Some(Reverse(slot)) => slot,
        None => NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    SLOT.with(|cell| cell.set(slot + 1));
    Some(slot)
}

/// One stripe, alone on its cache line (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
pub(crate) struct Stripe(pub(crate) AtomicU64);

/// `count` stripes, all zero.
pub(crate) fn new_stripes(count: usize) -> Box<[Stripe]> {
    (0..count).map(|_| Stripe(AtomicU64::new(0))).collect()
}

/// A monotonic counter bumped from many threads without contention.
///
/// Stripes cost a cache line per hardware thread, so they come only once a second thread
/// counts (the spirit of Java's `LongAdder`, which stripes once a compare-and-swap fails):
/// until then the first thread to count owns `base` and bumps it with a plain load and store,
/// so a counter used from one thread costs 40 bytes. The owner is told by its slot, the same
/// single-writer guarantee as a stripe's; once stripes exist the owner moves to its stripe
/// too, and `base` keeps what it counted.
///
/// Taking a second thread for contention, rather than a failed compare-and-swap, keeps the
/// single-thread path free of any read-modify-write.
#[derive(Default)]
pub(crate) struct StripedCounter {
    /// The slot plus one of the thread that owns `base`; 0 until the first count.
    owner: AtomicUsize,
    /// Counted by the owner before the stripes existed (and while it raced their creation).
    base: AtomicU64,
    stripes: OnceLock<Box<[Stripe]>>,
    /// For threads without a stripe of their own.
    shared: AtomicU64,
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}

impl StripedCounter {
    /// Adds one.
    #[inline]
    pub(crate) fn increment(&self) {
        self.increment_in(slot());
    }

    /// Adds one for the thread holding `slot` (`None`: a thread without a slot).
    #[inline]
    pub(crate) fn increment_in(&self, slot: Option<usize>) {
        let cell = match (self.stripes.get(), slot) {
            (Some(stripes), Some(slot)) => stripes.get(slot).map(|Stripe(count)| count),
            (None, Some(slot)) => Some(self.unstriped(slot)),
            (_, None) => None,
        };
        match cell {
            // This thread is the cell's only writer: a plain load and store cannot race.
            Some(count) => count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The cell `slot`'s thread bumps while there are no stripes: `base` if the thread owns it
    /// (or is first to count), else its new stripe.
    #[inline]
    fn unstriped(&self, slot: usize) -> &AtomicU64 {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner == slot + 1
            || (owner == 0
                && self
                    .owner
                    .compare_exchange(0, slot + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
        {
            return &self.base;
        }
        self.second_thread(slot)
    }

    /// A second thread counts: from now on every thread has a stripe.
    #[cold]
    #[inline(never)]
    fn second_thread(&self, slot: usize) -> &AtomicU64 {
        let stripes = self.stripes.get_or_init(|| new_stripes(stripe_count()));
        match stripes.get(slot) {
            Some(Stripe(count)) => count,
            None => &self.shared,
        }
    }

    /// The total. Each cell only grows, so successive reads never go down.
    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .get()
            .into_iter()
            .flat_map(|stripes| stripes.iter())
            .map(|Stripe(count)| count.load(Ordering::Relaxed))
            .fold(
                self.shared
                    .load(Ordering::Relaxed)
                    .wrapping_add(self.base.load(Ordering::Relaxed)),
                u64::wrapping_add,
            )
    }

    /// The bytes it holds on the heap (tests).
    #[cfg(all(test, not(resilient_loom)))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.stripes
            .get()
            .map_or(0, |s| std::mem::size_of_val(&**s))
    }

    /// Whether the stripes have been allocated (tests).
    #[cfg(all(test, not(resilient_loom)))]
    pub(crate) fn is_striped(&self) -> bool {
        self.stripes.get().is_some()
    }
}

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_counter_that_never_counts_allocates_no_stripes() {
        let counter = StripedCounter::default();
        assert!(!counter.is_striped());
        assert_eq!(counter.get(), 0);
    }

    #[test]
    fn one_thread_counts_without_stripes_and_a_second_brings_them() {
        let counter = Arc::new(StripedCounter::default());
        for _ in 0..3 {
            counter.increment();
        }
        assert!(!counter.is_striped(), "one thread owns the base cell");
        assert_eq!(counter.get(), 3);
        let other = counter.clone();
        std::thread::spawn(move || other.increment())
            .join()
            .unwrap();
        assert!(counter.is_striped(), "a second thread brings the stripes");
        counter.increment();
        assert_eq!(counter.get(), 5);
    }

    #[test]
    fn counts_every_increment_from_every_thread() {
        let counter = Arc::new(StripedCounter::default());
        // More threads than stripes, in waves, so slots are reused and some threads fall back
        // to the shared count.
        for _ in 0..3 {
            let threads: Vec<_> = (0..stripe_count() + 8)
                .map(|_| {
                    let counter = counter.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1000 {
                            counter.increment();
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
        }
        assert_eq!(counter.get(), 3 * (stripe_count() as u64 + 8) * 1000);
    }
}
