//! Lock-free sliding windows of call outcomes, the evidence a closed breaker judges by.
//!
//! Both windows tag what they store with the breaker's *generation* (bumped by every state
//! change), so an outcome recorded by a call that began under an earlier state never counts,
//! and a new closed period starts with an empty window without any clearing pass racing the
//! callers.
//!
//! * [`CountWindow`]: the last `N` outcomes. One `fetch_add` claims a slot, one store fills it;
//!   counting scans the `N` slots. The breaker judges the window after every outcome once it
//!   holds `minimum_calls`, but a fast success can only lower the rates of a window that held
//!   its minimum already, so only a bad outcome, or one of the first `minimum_calls` outcomes
//!   of a closed period, needs the scan: the claim itself tells which.
//! * [`TimeWindow`]: outcomes of the last `D`, in buckets. A bucket belongs to one tick of the
//!   clock; a bucket whose tick has left the window is ignored when counting and overwritten by
//!   the next call that lands in it. Old successes leaving the window raise its rates, so a
//!   success is judged too, but only while a bad outcome is still inside the window. Once a
//!   second thread records successes, each thread counts its successes of the current tick in
//!   a stripe of its own (see [`TimeWindow::record_success_in`]), so threads succeeding
//!   together do not pass a bucket's cache line between them; bad outcomes stay on the
//!   buckets.

use crate::counter::{Stripe, new_stripes, stripe_count};
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, OnceLock, Ordering, fence};

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

/// The window a breaker judges by, chosen by its trip policy.
///
/// The count window comes first: its closed success, the one that does the most, then finds it
/// with the fewest tests.
pub(crate) enum Window {
    /// The last `N` calls.
    Count(CountWindow),
    /// No window: the consecutive-failures policy keeps one counter instead, the failures in a
    /// row tagged with their generation: `generation << 32 | count`.
    None(AtomicU64),
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
