//! Lock-free sliding windows of call outcomes, the evidence a closed breaker judges by.
//!
//! Both windows tag what they store with the breaker's *generation* (bumped by every state
//! change), so an outcome recorded by a call that began under an earlier state never counts,
//! and a new closed period starts with an empty window without any clearing pass racing the
//! callers.
//!
//! * [`CountWindow`]: the last `N` outcomes. One `fetch_add` claims a slot, one store fills it;
//!   counting scans the `N` slots, which only failures, slow calls and the call that reaches the
//!   minimum need.
//! * [`TimeWindow`]: outcomes of the last `D`, in buckets. A bucket belongs to one tick of the
//!   clock; a bucket whose tick has left the window is ignored when counting and overwritten by
//!   the next call that lands in it.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The outcome bit for a failure.
pub(crate) const FAILURE: u8 = 0b01;
/// The outcome bit for a call slower than the slow-call threshold.
pub(crate) const SLOW: u8 = 0b10;

/// What a window holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Tally {
    /// `part / calls`, or 0 for an empty window.
    pub(crate) fn rate(part: u64, calls: u64) -> f64 {
        if calls == 0 {
            0.0
        } else {
            part as f64 / calls as f64
        }
    }

    pub(crate) fn failure_rate(&self) -> f64 {
        Self::rate(self.failures, self.calls)
    }

    pub(crate) fn slow_rate(&self) -> f64 {
        Self::rate(self.slow, self.calls)
    }
}

/// Low 24 bits of a generation, as stored in a count-window slot.
const SLOT_GEN_MASK: u32 = 0x00FF_FFFF;

/// The last `N` outcomes of one generation.
///
/// `head` packs the number of calls claimed so far (high 32 bits, wrapping) over the generation
/// the window belongs to (low 32 bits): adding `1 << 32` claims a slot and tells, atomically,
/// whether the window still belongs to the caller's generation. Each slot packs the low 24 bits
/// of the writer's generation over its outcome bits.
pub(crate) struct CountWindow {
    head: AtomicU64,
    slots: Box<[AtomicU32]>,
}

impl CountWindow {
    pub(crate) fn new(size: usize, generation: u32) -> Self {
        debug_assert!(size > 0);
        CountWindow {
            head: AtomicU64::new(u64::from(generation)),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Hands the window to `generation`, empty: slots tagged with older generations no longer
    /// count. Call before publishing the new state, so no caller of `generation` races it.
    pub(crate) fn reset(&self, generation: u32) {
        self.head.store(u64::from(generation), Ordering::Release);
    }

    /// Records one outcome; false when the window belongs to another generation and the
    /// outcome was discarded.
    pub(crate) fn record(&self, generation: u32, outcome: u8) -> bool {
        let previous = self.head.fetch_add(1 << 32, Ordering::AcqRel);
        if previous as u32 != generation {
            // A stale caller moved the next slot index of a newer window on; that only shifts
            // where the ring continues, it adds no outcome.
            return false;
        }
        let index = (previous >> 32) as u32;
        let slot = &self.slots[index as usize % self.slots.len()];
        slot.store(
            ((generation & SLOT_GEN_MASK) << 8) | u32::from(outcome),
            Ordering::Release,
        );
        true
    }

    /// Counts the outcomes `generation` holds.
    pub(crate) fn tally(&self, generation: u32) -> Tally {
        let tag = generation & SLOT_GEN_MASK;
        let mut tally = Tally::default();
        for slot in self.slots.iter() {
            let value = slot.load(Ordering::Acquire);
            if value >> 8 == tag {
                tally.calls += 1;
                tally.failures += u64::from(value as u8 & FAILURE != 0);
                tally.slow += u64::from(value as u8 & SLOW != 0);
            }
        }
        tally
    }
}

/// Bits of a time-window word: tag = generation (16) · tick (24), then a 24-bit count.
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TICK_MASK: u64 = (1 << 24) - 1;

fn time_tag(generation: u32, tick: u64) -> u64 {
    (u64::from(generation as u16) << 24) | (tick & TICK_MASK)
}

fn tag_generation(tag: u64) -> u16 {
    (tag >> 24) as u16
}

fn tag_tick(tag: u64) -> u64 {
    tag & TICK_MASK
}

/// One bucket: each counter carries its own tag so it is self-consistent without a lock.
struct Bucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// Outcomes of the last `buckets × bucket_micros` microseconds of one generation.
pub(crate) struct TimeWindow {
    bucket_micros: u64,
    buckets: Box<[Bucket]>,
    failures_only: bool,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `bucket_micros` each; `failures_only` windows count
    /// failures and nothing else (the failure-count policy).
    pub(crate) fn new(bucket_micros: u64, buckets: usize, failures_only: bool) -> Self {
        debug_assert!(bucket_micros > 0 && buckets > 0);
        TimeWindow {
            bucket_micros,
            failures_only,
            buckets: (0..buckets)
                .map(|_| Bucket {
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    pub(crate) fn failures_only(&self) -> bool {
        self.failures_only
    }

    /// Records an outcome at `now_micros` (microseconds since the breaker's epoch). `count_call`
    /// is false for windows that only count failures.
    pub(crate) fn record(&self, generation: u32, now_micros: u64, outcome: u8, count_call: bool) {
        let tick = now_micros / self.bucket_micros;
        let bucket = &self.buckets[(tick % self.buckets.len() as u64) as usize];
        let tag = time_tag(generation, tick);
        if count_call {
            bump(&bucket.calls, tag);
        }
        if outcome & FAILURE != 0 {
            bump(&bucket.failures, tag);
        }
        if outcome & SLOW != 0 {
            bump(&bucket.slow, tag);
        }
    }

    /// Counts what `generation` recorded within the window ending at `now_micros`.
    pub(crate) fn tally(&self, generation: u32, now_micros: u64) -> Tally {
        let now_tick = now_micros / self.bucket_micros;
        let span = self.buckets.len() as u64;
        let live = |word: u64| -> u64 {
            let tag = word >> COUNT_BITS;
            let age = now_tick.wrapping_sub(tag_tick(tag)) & TICK_MASK;
            if tag_generation(tag) == generation as u16 && age < span {
                word & COUNT_MAX
            } else {
                0
            }
        };
        let mut tally = Tally::default();
        for bucket in self.buckets.iter() {
            tally.calls += live(bucket.calls.load(Ordering::Acquire));
            tally.failures += live(bucket.failures.load(Ordering::Acquire));
            tally.slow += live(bucket.slow.load(Ordering::Acquire));
        }
        tally
    }
}

/// Adds one to a tagged counter: same tag, count up (saturating); an older tag (another tick,
/// or an older generation), start over at one; a newer generation's tag, leave it alone, the
/// caller is stale.
fn bump(word: &AtomicU64, tag: u64) {
    let mut current = word.load(Ordering::Relaxed);
    loop {
        let current_tag = current >> COUNT_BITS;
        let next = if current_tag == tag {
            if current & COUNT_MAX == COUNT_MAX {
                return;
            }
            current + 1
        } else if current != 0 && is_newer_generation(tag_generation(current_tag), tag) {
            return;
        } else {
            (tag << COUNT_BITS) | 1
        };
        match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// Whether `stored` is a later generation than the one in `tag`, on 16 wrapping bits.
fn is_newer_generation(stored: u16, tag: u64) -> bool {
    (stored.wrapping_sub(tag_generation(tag)) as i16) > 0
}

/// The window a breaker judges by, chosen by its trip policy.
pub(crate) enum Window {
    /// No window: the consecutive-failures policy keeps one counter instead.
    None,
    /// The last `N` calls.
    Count(CountWindow),
    /// The calls (or only the failures) of the last `D`.
    Time(TimeWindow),
}

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::*;

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
    fn count_window_discards_other_generations() {
        let window = CountWindow::new(4, 1);
        assert!(window.record(1, FAILURE));
        window.reset(2);
        assert!(!window.record(1, FAILURE));
        assert_eq!(window.tally(2), Tally::default());
        assert!(window.record(2, SLOW));
        assert_eq!(
            window.tally(2),
            Tally {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_drops_buckets_that_left_the_window() {
        let second = 1_000_000;
        let window = TimeWindow::new(second, 10, false);
        window.record(0, 0, FAILURE, true);
        window.record(0, 3 * second, 0, true);
        assert_eq!(window.tally(0, 9 * second).calls, 2);
        assert_eq!(window.tally(0, 10 * second).calls, 1);
        assert_eq!(window.tally(0, 13 * second).calls, 0);
        // A call in the same bucket slot, ten ticks later, starts the bucket over.
        window.record(0, 10 * second, 0, true);
        assert_eq!(
            window.tally(0, 10 * second),
            Tally {
                calls: 2,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_ignores_stale_generations() {
        let window = TimeWindow::new(1_000, 4, false);
        window.record(5, 0, FAILURE, true);
        window.record(4, 0, FAILURE, true);
        assert_eq!(window.tally(5, 0).failures, 1);
        assert_eq!(window.tally(4, 0).failures, 0);
    }
}
