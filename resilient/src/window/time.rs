//! The time window: the outcomes of the last `D`, in tagged buckets, with per-thread success
//! stripes once a second thread succeeds.

use super::{FAILURE, SLOW, Tally};
use crate::counter::{Stripe, new_stripes, stripe_count};
use crate::sync::{AtomicU32, AtomicU64, OnceLock, Ordering};

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

/// `count` tagged counters, all zero.
fn counters(count: usize) -> Box<[AtomicU64]> {
    (0..count).map(|_| AtomicU64::new(0)).collect()
}

/// Outcomes of the last `buckets × bucket_micros` microseconds of one generation.
///
/// Each bucket has a tagged counter (tag and count in one word, so it is self-consistent
/// without a lock) for its calls, its failures and its slow calls, kept by column: the calls
/// up front (none in a window that counts failures only), the failures and slow calls once the
/// first of them is recorded. Until then they would all be zero: a breaker that only succeeds
/// does not carry them.
pub(crate) struct TimeWindow {
    bucket_micros: u64,
    /// Calls per bucket; empty for a window that counts failures only.
    calls: Box<[AtomicU64]>,
    /// Failures per bucket, then, for a window that counts calls, slow calls per bucket.
    bad: OnceLock<Box<[AtomicU64]>>,
    /// How many buckets.
    span: u32,
    /// The latest tick anything was recorded in, plus one (0: never). Bucket tags keep only 24
    /// bits of their tick, so after a silence of 2^24 ticks an old tag could pass for a
    /// current one; a window that has been silent for a whole span is cleared instead.
    last_tick: AtomicU64,
    /// The latest tick a failure or a slow call was recorded in, plus one (0: never): while
    /// none is inside the window its rates are 0, and a success need not be judged.
    last_bad: AtomicU64,
    /// The slot plus one of the first thread to record a success (0: none yet). It counts on
    /// the buckets; a success from any other thread brings the stripes.
    success_owner: AtomicU32,
    /// Per-thread success counts, allocated once a second thread records a success. Each is a
    /// tagged word like a bucket's counters, for the tick its thread last succeeded in; moving
    /// to another tick, the thread adds the old count to that tick's bucket.
    success_stripes: OnceLock<Box<[Stripe]>>,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `bucket_micros` each; `failures_only` windows count
    /// failures and nothing else (the failure-count policy).
    pub(crate) fn new(bucket_micros: u64, buckets: usize, failures_only: bool) -> Self {
        debug_assert!(bucket_micros > 0 && buckets > 0 && buckets <= u32::MAX as usize);
        TimeWindow {
            bucket_micros,
            calls: counters(if failures_only { 0 } else { buckets }),
            bad: OnceLock::new(),
            span: buckets as u32,
            last_tick: AtomicU64::new(0),
            last_bad: AtomicU64::new(0),
            success_owner: AtomicU32::new(0),
            success_stripes: OnceLock::new(),
        }
    }

    /// The bytes it holds on the heap (tests).
    #[cfg(all(test, not(resilient_loom)))]
    pub(crate) fn heap_bytes(&self) -> usize {
        let stripes = self
            .success_stripes
            .get()
            .map_or(0, |s| std::mem::size_of_val(&**s));
        let bad = self
            .bad
            .get()
            .map_or(0, |bad| std::mem::size_of_val(&**bad));
        std::mem::size_of_val(&*self.calls) + bad + stripes
    }

    /// How many buckets, as a tick count.
    fn span(&self) -> u64 {
        u64::from(self.span)
    }

    /// The bucket index of `tick`.
    fn index(&self, tick: u64) -> usize {
        (tick % self.span()) as usize
    }

    /// The failure counters, then the slow-call counters (see the type's comment).
    fn bad(&self) -> &[AtomicU64] {
        let columns = if self.failures_only() { 1 } else { 2 };
        self.bad
            .get_or_init(|| counters(columns * self.span as usize))
    }

    /// The width of one bucket, in microseconds.
    pub(crate) fn bucket_micros(&self) -> u64 {
        self.bucket_micros
    }

    pub(crate) fn failures_only(&self) -> bool {
        self.calls.is_empty()
    }

    /// Records an outcome at `now_micros` (microseconds since the breaker's epoch). `count_call`
    /// is false for windows that only count failures.
    pub(crate) fn record(&self, generation: u32, now_micros: u64, outcome: u8, count_call: bool) {
        let tick = now_micros / self.bucket_micros;
        self.advance_to(tick);
        let index = self.index(tick);
        let tag = time_tag(generation, tick);
        if count_call && let Some(calls) = self.calls.get(index) {
            bump(calls, tag, 1);
        }
        if outcome & FAILURE != 0 {
            bump(&self.bad()[index], tag, 1);
        }
        if outcome & SLOW != 0
            && let Some(slow) = self.bad().get(self.span as usize + index)
        {
            bump(slow, tag, 1);
        }
        if outcome != 0 {
            self.last_bad.fetch_max(tick + 1, Ordering::AcqRel);
        }
    }

    /// Records a fast success at `now_micros` in a window that counts calls, on the calling
    /// thread's stripe once there are stripes.
    #[inline]
    pub(crate) fn record_success(&self, generation: u32, now_micros: u64) {
        self.record_success_in(crate::counter::slot(), generation, now_micros);
    }

    /// [`record_success`](Self::record_success) for the thread holding `slot`.
    ///
    /// A thread moving its stripe to a new tick adds the old tick's count to that bucket
    /// before it starts the stripe over, so a tally racing the move may count those successes
    /// twice, never zero times: a success counted twice can only lower the rates, while one
    /// missed could open the breaker on a rate it never had. The tally after the move is exact.
    pub(crate) fn record_success_in(&self, slot: Option<usize>, generation: u32, now_micros: u64) {
        let tick = now_micros / self.bucket_micros;
        self.advance_to(tick);
        let tag = time_tag(generation, tick);
        match slot.and_then(|slot| self.success_stripe(slot)) {
            Some(Stripe(stripe)) => {
                let word = stripe.load(Ordering::Relaxed);
                let stored = word >> COUNT_BITS;
                if word != 0 && stored == tag {
                    if word & COUNT_MAX != COUNT_MAX {
                        stripe.store(word + 1, Ordering::Release);
                    }
                    return;
                }
                if word != 0 {
                    self.flush(stored, word & COUNT_MAX, tick);
                }
                stripe.store((tag << COUNT_BITS) | 1, Ordering::Release);
            }
            None => {
                if let Some(calls) = self.calls.get(self.index(tick)) {
                    bump(calls, tag, 1);
                }
            }
        }
    }

    /// The stripe `slot`'s thread counts its successes in; `None` for the first thread to
    /// succeed while it is the only one (it counts on the buckets), or past the stripes.
    #[inline]
    fn success_stripe(&self, slot: usize) -> Option<&Stripe> {
        if let Some(stripes) = self.success_stripes.get() {
            return stripes.get(slot);
        }
        // A slot past `u32::MAX - 1` never owns the buckets: it takes a stripe (or none).
        let mine = u32::try_from(slot).map_or(0, |slot| slot.wrapping_add(1));
        let owner = self.success_owner.load(Ordering::Relaxed);
        if mine != 0
            && (owner == mine
                || (owner == 0
                    && self
                        .success_owner
                        .compare_exchange(0, mine, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()))
        {
            return None;
        }
        self.second_thread(slot)
    }

    #[cold]
    #[inline(never)]
    fn second_thread(&self, slot: usize) -> Option<&Stripe> {
        self.success_stripes
            .get_or_init(|| new_stripes(stripe_count()))
            .get(slot)
    }

    /// Adds a stripe's `count` successes of the tick in `tag` to that tick's bucket, unless
    /// the tick has left the window ending at `now_tick` (they no longer count).
    fn flush(&self, tag: u64, count: u64, now_tick: u64) {
        let age = now_tick.wrapping_sub(tag_tick(tag)) & TICK_MASK;
        if age >= self.span() {
            return;
        }
        if let Some(calls) = self.calls.get(self.index(now_tick - age)) {
            bump(calls, tag, count);
        }
    }

    /// Whether a failure or a slow call (of any generation: a stale one only costs a judgement)
    /// may still be inside the window ending at `now_micros`.
    ///
    /// No fence orders this read after the caller's own bucket write, unlike the count
    /// window's judgement: a success racing the failure that completes a condemned window may
    /// miss it while the failure's count misses the success. The next outcome recorded while
    /// the failure is inside the window judges it again, so a time window trips one call late
    /// there. A count window, whose later successes are not judged, would wait for the next
    /// failure instead: it pays for the fence, this one does not.
    pub(crate) fn may_hold_bad_outcomes(&self, now_micros: u64) -> bool {
        let last_bad = self.last_bad.load(Ordering::Acquire);
        let now_tick = now_micros / self.bucket_micros;
        last_bad != 0 && now_tick.saturating_sub(last_bad - 1) < self.span()
    }

    /// Notes that time reached `tick`, clearing every bucket when nothing was recorded for a
    /// whole span (each is expired anyway). Costs one load while time stays in a bucket.
    fn advance_to(&self, tick: u64) {
        let last = self.last_tick.load(Ordering::Relaxed);
        if last > tick {
            return;
        }
        let silent = last == 0 || tick - (last - 1) >= self.span();
        // One caller wins the move to the new tick; only it clears. A caller recording in the
        // same tick while the clearing runs may lose that one count: the window was empty.
        if self
            .last_tick
            .compare_exchange(last, tick + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && silent
        {
            // Columns not allocated yet hold nothing to clear.
            for counter in self
                .calls
                .iter()
                .chain(self.bad.get().into_iter().flatten())
            {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Counts what `generation` recorded within the window ending at `now_micros`.
    pub(crate) fn tally(&self, generation: u32, now_micros: u64) -> Tally {
        let now_tick = now_micros / self.bucket_micros;
        let span = self.span();
        let last = self.last_tick.load(Ordering::Relaxed);
        if last == 0 || now_tick.saturating_sub(last - 1) >= span {
            return Tally::default();
        }
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
        // The stripes before the buckets: a stripe read after its thread moved it to a new
        // tick (a release store, after adding the old count to its bucket) makes that bucket's
        // new count visible to the reads below, so successes moving from a stripe to a bucket
        // are seen twice at worst, never missed (see `record_success_in`).
        for Stripe(stripe) in self.success_stripes.get().into_iter().flatten() {
            tally.calls += live(stripe.load(Ordering::Acquire));
        }
        for calls in self.calls.iter() {
            tally.calls += live(calls.load(Ordering::Acquire));
        }
        let bad = self.bad.get().map_or(&[][..], |bad| &bad[..]);
        let (failures, slow) = bad.split_at(bad.len().min(self.span as usize));
        for failure in failures {
            tally.failures += live(failure.load(Ordering::Acquire));
        }
        for slow in slow {
            tally.slow += live(slow.load(Ordering::Acquire));
        }
        tally
    }
}

/// Adds `count` to a tagged counter: same tag, count up (saturating); an older tag (another
/// tick, or an older generation), start over at `count`; a newer generation's tag, leave it
/// alone, the caller is stale.
fn bump(word: &AtomicU64, tag: u64, count: u64) {
    let mut current = word.load(Ordering::Relaxed);
    loop {
        let current_tag = current >> COUNT_BITS;
        let next = if current_tag == tag {
            if current & COUNT_MAX == COUNT_MAX {
                return;
            }
            current + count.min(COUNT_MAX - (current & COUNT_MAX))
        } else if current != 0 && is_newer_generation(tag_generation(current_tag), tag) {
            return;
        } else {
            (tag << COUNT_BITS) | count.min(COUNT_MAX)
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

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::*;
    use crate::window::FAILURE;

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
    fn a_silence_longer_than_the_tick_tags_does_not_resurrect_old_outcomes() {
        let window = TimeWindow::new(1_000, 20, true);
        window.record(0, 0, FAILURE, false);
        // 2^24 ticks later the old bucket's 24-bit tag matches the current tick again.
        let later = (1 << 24) * 1_000;
        assert_eq!(window.tally(0, later).failures, 0);
        window.record(0, later, FAILURE, false);
        assert_eq!(window.tally(0, later).failures, 1);
    }

    #[test]
    fn successes_of_a_second_thread_go_to_stripes_and_move_to_their_bucket() {
        let second = 1_000_000;
        let window = TimeWindow::new(second, 10, false);
        window.record_success_in(Some(0), 0, 0);
        assert!(
            window.success_stripes.get().is_none(),
            "one thread counts on buckets"
        );
        window.record_success_in(Some(1), 0, 0);
        assert!(
            window.success_stripes.get().is_some(),
            "a second thread brings stripes"
        );
        window.record_success_in(Some(1), 0, 0);
        window.record_success_in(Some(0), 0, 0);
        assert_eq!(window.tally(0, 0).calls, 4);
        window.record(0, 3 * second, FAILURE, true);
        // Slot 1 moves to tick 3: its two successes of tick 0 join tick 0's bucket.
        window.record_success_in(Some(1), 0, 3 * second);
        let expected = Tally {
            calls: 6,
            failures: 1,
            slow: 0,
        };
        assert_eq!(window.tally(0, 3 * second), expected);
        // Tick 0 has left the window: what remains is tick 3's failure and success.
        assert_eq!(window.tally(0, 10 * second).calls, 2);
        // Slot 0's stripe still holds tick 0, out of the window: dropped, not moved.
        window.record_success_in(Some(0), 0, 12 * second);
        assert_eq!(window.tally(0, 12 * second).calls, 3);
        // A thread without a slot counts on the buckets.
        window.record_success_in(None, 0, 12 * second);
        assert_eq!(window.tally(0, 12 * second).calls, 4);
        // Another generation's stripes and buckets do not count.
        assert_eq!(window.tally(1, 12 * second).calls, 0);
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
