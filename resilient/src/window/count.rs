//! The count window: the last `N` outcomes, one byte each, claimed in one shared order.

use super::{FAILURE, SLOW, Tally};
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

/// Set in every slot that holds an outcome: a slot cleared by [`CountWindow::reset`] reads 0.
const SLOT_FILLED: u8 = 0x80;
/// The generation's bits a slot keeps, above its two outcome bits.
const SLOT_GEN_MASK: u32 = 0x1F;
/// Slots kept on the claim counter's own cache lines: a window of up to 120 calls needs no
/// other allocation.
const INLINE_SLOTS: usize = 120;

/// What a slot holds for `generation`'s outcome: filled, the low 5 bits of the generation,
/// the outcome bits.
#[inline]
fn slot_value(generation: u32, outcome: u8) -> u8 {
    SLOT_FILLED | (((generation & SLOT_GEN_MASK) as u8) << 2) | (outcome & (FAILURE | SLOW))
}

/// The claim counter of a count window, alone on its cache line (128 bytes covers
/// adjacent-line prefetching): every closed call writes it, so a line it shared with anything
/// read on every call (the state word, this window's own fields) would move between cores on
/// every call of every thread. The rest of the line holds the slots of a small window: the
/// call that has just claimed a slot stores its outcome on the line the claim brought in.
#[repr(align(128))]
struct Head {
    /// The number of calls claimed so far (high 32 bits, wrapping) over the generation the
    /// window belongs to (low 32 bits).
    claims: AtomicU64,
    slots: [AtomicU8; INLINE_SLOTS],
}

/// The last `N` outcomes of one generation.
///
/// `head.claims` packs the number of calls claimed so far over the generation the window
/// belongs to: adding `1 << 32` claims a slot and tells, atomically, whether the window still
/// belongs to the caller's generation. Each slot is one byte: filled, the low 5 bits of the
/// writer's generation, its outcome bits. [`reset`](Self::reset) clears every slot before the
/// new generation starts, so a slot only ever holds a tag of an older generation when its
/// writer stalled between claim and store: 5 bits tell it apart unless 32 transitions passed
/// meanwhile.
pub(crate) struct CountWindow {
    head: Box<Head>,
    /// The slots past the first [`INLINE_SLOTS`], for a window larger than those hold.
    spill: Box<[AtomicU8]>,
    size: usize,
    /// `2^64 / N` rounded up, so that a slot index is two multiplications, not a division: the
    /// division sat between the claiming `fetch_add` and the slot's store on every closed
    /// success and cost about a tenth of it (see BENCHMARKS.md).
    reciprocal: u64,
    /// The breaker's `minimum_calls`, mirrored here because a closed success compares its claim
    /// with it: on the cache line the claim has just brought in, not behind the configuration.
    minimum: AtomicU32,
}

impl CountWindow {
    pub(crate) fn new(size: usize, generation: u32) -> Self {
        debug_assert!(size > 0);
        CountWindow {
            head: Box::new(Head {
                claims: AtomicU64::new(u64::from(generation)),
                slots: std::array::from_fn(|_| AtomicU8::new(0)),
            }),
            spill: (INLINE_SLOTS..size).map(|_| AtomicU8::new(0)).collect(),
            size,
            reciprocal: (u64::MAX / size as u64).wrapping_add(1),
            minimum: AtomicU32::new(0),
        }
    }

    /// How many outcomes it holds.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Every slot of the window.
    fn slots(&self) -> impl Iterator<Item = &AtomicU8> {
        let inline = self.size.min(INLINE_SLOTS);
        self.head.slots[..inline].iter().chain(self.spill.iter())
    }

    /// Slot `index` (below `N`).
    #[inline]
    fn slot(&self, index: usize) -> &AtomicU8 {
        match self.head.slots.get(index) {
            Some(slot) => slot,
            None => &self.spill[index - INLINE_SLOTS],
        }
    }

    /// Sets the number of calls the window must hold before it is judged.
    pub(crate) fn set_minimum(&self, minimum: u32) {
        self.minimum.store(minimum, Ordering::Relaxed);
    }

    /// Hands the window to `generation`, empty: every slot is cleared, then the claims start
    /// over. Call before publishing the new state, so no caller of `generation` races it.
    ///
    /// The claims are swapped, not stored: they race the `fetch_add` of stale callers, and
    /// loom orders a plain store against a read-modify-write wrongly (its model let a
    /// `fetch_add` ordered after the store read the value before it).
    pub(crate) fn reset(&self, generation: u32) {
        for slot in self.slots() {
            slot.store(0, Ordering::Release);
        }
        self.head
            .claims
            .swap(u64::from(generation), Ordering::AcqRel);
    }

    /// Records one outcome. Returns how many calls `generation` has claimed in the window with
    /// this one (wrapping at 2^32), or `None` when the window belongs to another generation and
    /// the outcome was discarded.
    ///
    /// A stale caller must not claim a slot: the newer window would skip it and keep the
    /// outcome it holds for another round, so the window would no longer be the last N. The
    /// caller checks its generation against the breaker's state word first (a line written
    /// only by transitions), not against `head`: a read of `head` before the claim would fetch
    /// its contended line twice.
    #[inline]
    pub(crate) fn record(&self, generation: u32, outcome: u8) -> Option<u32> {
        let previous = self.head.claims.fetch_add(1 << 32, Ordering::AcqRel);
        if previous as u32 != generation {
            // The window changed hands between the check and the claim (a transition racing
            // this very call): the skipped slot keeps what it holds one round longer.
            return None;
        }
        let index = (previous >> 32) as u32;
        self.slot(self.slot_of(index))
            .store(slot_value(generation, outcome), Ordering::Release);
        Some(index.wrapping_add(1))
    }

    /// Whether a fast success that made the `claimed`-th claim may have to be judged: it is one
    /// of the first `minimum_calls` of its period. Any later one only adds a call to, or
    /// replaces an outcome of, a window that held its minimum and was judged below both
    /// thresholds, so it can only lower the rates. (After 2^32 claims the count wraps and a few
    /// successes are judged for nothing.)
    #[inline]
    pub(crate) fn may_complete_minimum(&self, claimed: u32) -> bool {
        claimed <= self.minimum.load(Ordering::Relaxed)
    }

    /// Makes this caller's slot visible to every judge that comes after it, and tells whether
    /// `generation` has claimed its `minimum_calls`, so the caller must judge.
    ///
    /// The fence pairs with the one every other judging caller runs after its own slot's
    /// store: of the callers racing over the first `minimum_calls` slots, the one whose fence
    /// comes last sees every slot written and the full claim count, so the window is judged
    /// once complete even when the completing claim is not the last slot written.
    pub(crate) fn reached_minimum(&self, generation: u32) -> bool {
        fence(Ordering::SeqCst);
        let head = self.head.claims.load(Ordering::Acquire);
        head as u32 == generation && (head >> 32) as u32 >= self.minimum.load(Ordering::Relaxed)
    }

    /// `index % N` by Lemire's "fastmod" (exact for every 32-bit index and size).
    #[inline]
    fn slot_of(&self, index: u32) -> usize {
        let low = self.reciprocal.wrapping_mul(u64::from(index));
        ((u128::from(low) * self.size as u128) >> 64) as usize
    }

    /// The bytes it holds on the heap (tests).
    #[cfg(all(test, not(resilient_loom)))]
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Head>() + std::mem::size_of_val(&*self.spill)
    }

    /// Counts the outcomes `generation` holds.
    pub(crate) fn tally(&self, generation: u32) -> Tally {
        let tag = slot_value(generation, 0);
        let mut tally = Tally::default();
        for slot in self.slots() {
            let value = slot.load(Ordering::Acquire);
            if value & !(FAILURE | SLOW) == tag {
                tally.calls += 1;
                tally.failures += u64::from(value & FAILURE != 0);
                tally.slow += u64::from(value & SLOW != 0);
            }
        }
        tally
    }
}

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::*;
    use crate::window::{FAILURE, SLOW, Tally};

    #[test]
    fn count_window_slides_over_the_last_n_outcomes() {
        let window = CountWindow::new(10, 7);
        for _ in 0..100 {
            window.record(7, 0);
        }
        assert_eq!(window.tally(7).failures, 0);
        for expected in 1..=5 {
            window.record(7, FAILURE);
            let tally = window.tally(7);
            assert_eq!((tally.calls, tally.failures), (10, expected));
        }
        assert_eq!(window.tally(7).failure_rate(), 0.5);
    }

    #[test]
    fn slot_indices_are_the_remainder_for_every_size() {
        for size in [1, 2, 3, 7, 100, 1_000, 999_983, 1_000_000] {
            let window = CountWindow::new(size, 0);
            let edges = [
                0,
                1,
                size as u32 - 1,
                size as u32,
                u32::MAX / 2,
                u32::MAX - 1,
            ];
            for index in edges.into_iter().chain([u32::MAX]).chain(0..1_000) {
                assert_eq!(
                    window.slot_of(index),
                    index as usize % size,
                    "{index} % {size}"
                );
            }
        }
    }

    #[test]
    fn a_count_window_stays_full_when_its_claims_wrap() {
        let window = CountWindow::new(4, 3);
        for outcome in [0, FAILURE, 0, FAILURE, 0, FAILURE] {
            window.record(3, outcome).unwrap();
        }
        assert_eq!((window.tally(3).calls, window.tally(3).failures), (4, 2));
        // 2^32 claims later (the slots hold the same outcomes, as if they had been rewritten
        // with them) the count starts over; the success that wrapped it has not been judged
        // yet (a caller descheduled between its claim and its judgement).
        window
            .head
            .claims
            .store(((u64::from(u32::MAX) - 1) << 32) | 3, Ordering::Relaxed);
        assert_eq!(window.record(3, 0), Some(u32::MAX));
        assert_eq!(window.record(3, 0), Some(0));
        assert_eq!(window.record(3, 0), Some(1));
        // Still the last four outcomes: the window is full, not one call long with a failure
        // rate of 100 %.
        let tally = window.tally(3);
        assert_eq!((tally.calls, tally.failures), (4, 1), "{tally:?}");
    }

    #[test]
    fn a_reset_window_holds_nothing_of_a_generation_with_the_same_slot_tag() {
        let window = CountWindow::new(4, 1);
        for _ in 0..3 {
            window.record(1, FAILURE);
        }
        // Generation 33 keeps the same 5 bits as generation 1 in its slots.
        window.reset(33);
        assert_eq!(window.tally(33), Tally::default());
        window.record(33, 0);
        assert_eq!((window.tally(33).calls, window.tally(33).failures), (1, 0));
    }

    #[test]
    fn count_window_discards_other_generations() {
        let window = CountWindow::new(4, 1);
        assert_eq!(window.record(1, FAILURE), Some(1));
        window.reset(2);
        // A stale caller that got past the breaker's generation check (a transition racing
        // it) writes nothing, though its claim is spent.
        assert_eq!(window.record(1, FAILURE), None);
        assert_eq!(window.tally(2), Tally::default());
        assert_eq!(window.record(2, SLOW), Some(2));
        assert_eq!(
            window.tally(2),
            Tally {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
    }
}
