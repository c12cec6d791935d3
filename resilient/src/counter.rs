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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Most stripes per counter. A counter has one stripe per hardware thread plus two (a
/// runtime's workers, the main thread and one more), up to this: 128 bytes each.
const MAX_STRIPES: usize = 64;

/// How many stripes a counter gets on this machine.
fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        (threads + 2).min(MAX_STRIPES)
    })
}

/// Slots handed back by exited threads, smallest first, so slots stay dense.
static FREE_SLOTS: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());
/// The next never-used slot.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

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

/// This thread's slot.
#[inline]
fn slot() -> Option<usize> {
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
        None => NEXT_SLOT.fetch_add(1, Ordering::Relaxed),
    };
    SLOT.with(|cell| cell.set(slot + 1));
    Some(slot)
}

/// One stripe, alone on its cache line (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A monotonic counter bumped from many threads without contention.
///
/// The stripes are allocated on the first count, so a counter that never counts (a breaker
/// declared but never called) costs 16 bytes, not a cache line per thread.
#[derive(Default)]
pub(crate) struct StripedCounter {
    stripes: std::sync::OnceLock<Box<[Stripe]>>,
    /// For threads without a stripe of their own.
    shared: AtomicU64,
}

impl StripedCounter {
    /// Adds one.
    #[inline]
    pub(crate) fn increment(&self) {
        let stripes = self.stripes.get_or_init(|| {
            (0..stripe_count())
                .map(|_| Stripe(AtomicU64::new(0)))
                .collect()
        });
        let stripe = slot().and_then(|slot| stripes.get(slot));
        match stripe {
            // This thread is the stripe's only writer: a plain load and store cannot race.
            Some(Stripe(count)) => {
                count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed)
            }
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The total. Each stripe only grows, so successive reads never go down.
    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .get()
            .into_iter()
            .flat_map(|stripes| stripes.iter())
            .map(|Stripe(count)| count.load(Ordering::Relaxed))
            .fold(self.shared.load(Ordering::Relaxed), u64::wrapping_add)
    }
}

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_counter_that_never_counts_allocates_no_stripes() {
        let counter = StripedCounter::default();
        assert!(counter.stripes.get().is_none());
        assert_eq!(counter.get(), 0);
        counter.increment();
        assert_eq!(counter.stripes.get().map(|s| s.len()), Some(stripe_count()));
        assert_eq!(counter.get(), 1);
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
