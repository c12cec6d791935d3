//! The permit one call holds while it runs through a breaker, and how it tells the call's own
//! panic (a failure) from a panic elsewhere that drops it (a cancellation).

use std::any::Any;
use std::fmt;
use std::sync::atomic::Ordering as StdOrdering;

use super::{Outcome, Shared};

#[derive(Debug, Clone, Copy)]
pub(super) enum PermitKind {
    Closed(u32),
    Probe(u32),
    Passthrough,
    Done,
}

/// Leave to run one call through a breaker. Record the outcome with one of the `record_*`
/// methods. Dropped without an outcome, it records nothing and frees its probe slot (the call
/// was cancelled), or records a failure if the call itself panicked: poll the call through
/// [`run`](Self::run) so the permit can tell; otherwise any drop while the thread panics is
/// taken for the call's panic.
#[must_use = "a permit records nothing unless its outcome is recorded"]
pub struct BreakerPermit<'a> {
    shared: &'a Shared,
    kind: PermitKind,
    /// When a timed call started, in nanoseconds since the breaker's epoch plus one; 0 for a
    /// call not timed. A plain integer, not an `Option<Instant>`: the permit is built in one
    /// function and read in another, and the option's 16 bytes written piecewise (its `None`
    /// is a 4-byte niche) then read whole stalled every closed success on a failed
    /// store-to-load forward (23 ns → 10 ns per call, see BENCHMARKS.md).
    ///
    /// Its top two bits ([`WATCHED`], [`POLLING`]) say what the permit knows of its call's
    /// polling, to tell the call's own panic from another's. They live in this word, not in a
    /// field of their own, for the same reason: a byte of its own, stored apart and then read
    /// with its neighbours, cost the closed success about a third of its time.
    started: u64,
}

/// In `started`: the call is polled through [`BreakerPermit::run`]. Without it, a drop during
/// a panic may be the call's own panic, and is taken for one.
const WATCHED: u64 = 1 << 63;
/// In `started`: inside the call's poll. A permit dropped with it set was dropped after a panic
/// unwound out of that poll (nothing else leaves a poll without returning): the call's own.
const POLLING: u64 = 1 << 62;
/// In `started`: the start time (2^62 ns is 146 years).
const TIME: u64 = POLLING - 1;

/// Polls `future` as `permit`'s call (see [`BreakerPermit::run`]); with no permit, just polls.
pub(crate) async fn watch<F: Future>(
    mut permit: Option<&mut BreakerPermit<'_>>,
    future: F,
) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        let Some(permit) = permit.as_deref_mut() else {
            return future.as_mut().poll(cx);
        };
        permit.poll_call(|| future.as_mut().poll(cx))
    })
    .await
}

impl<'a> BreakerPermit<'a> {
    /// A permit for a call admitted as `kind`; `started` as in the field's comment.
    #[inline]
    pub(super) fn new(shared: &'a Shared, kind: PermitKind, started: u64) -> Self {
        BreakerPermit {
            shared,
            kind,
            started: started & TIME,
        }
    }
}

impl BreakerPermit<'_> {
    /// Runs `poll`, one poll of the protected call, as this permit's call (see
    /// [`run`](Self::run)): a panic out of it is the call's own.
    #[inline]
    pub(crate) fn poll_call<R>(&mut self, poll: impl FnOnce() -> R) -> R {
        self.begin_poll();
        let polled = poll();
        self.end_poll();
        polled
    }

    /// Starts a poll of the protected call: a panic before [`end_poll`](Self::end_poll) is
    /// the call's own (see [`poll_call`](Self::poll_call)).
    #[inline]
    pub(crate) fn begin_poll(&mut self) {
        self.started |= WATCHED | POLLING;
    }

    /// Ends the poll [`begin_poll`](Self::begin_poll) started, without a panic.
    #[inline]
    pub(crate) fn end_poll(&mut self) {
        self.started &= !POLLING;
    }

    /// The call succeeded.
    #[inline]
    pub fn record_success(mut self) {
        // The hot path, decided from the permit alone: a closed-state call that was not timed
        // is a fast success, with nothing left to decide at run time.
        if let PermitKind::Closed(generation) = self.kind
            && self.started & TIME == 0
        {
            self.kind = PermitKind::Done;
            let shared = self.shared;
            shared.counters.successes.increment();
            shared
                .core
                .record_closed_success(generation, shared.window(), &shared.env());
            return;
        }
        self.record_other_success();
    }

    #[inline(never)]
    fn record_other_success(mut self) {
        let slow = self.is_slow();
        self.finish(Outcome::Success { slow });
    }

    /// The call failed in a way that counts against the dependency (a timeout, an outage).
    pub fn record_failure(mut self) {
        let slow = self.is_slow();
        self.finish(Outcome::Failure { slow });
    }

    /// The call ran out of time: a failure, counted among the breaker's timeouts too.
    pub fn record_timeout(mut self) {
        if !matches!(self.kind, PermitKind::Passthrough | PermitKind::Done) {
            self.shared
                .counters
                .cold()
                .timeouts
                .fetch_add(1, StdOrdering::Relaxed);
        }
        let slow = self.is_slow();
        self.finish(Outcome::Failure { slow });
    }

    /// The call failed in a way that says nothing about the dependency (a 404, a validation
    /// error): free the permit, record nothing.
    pub fn record_ignored(mut self) {
        self.finish(Outcome::Ignored);
    }

    /// Records an error, as a failure unless the breaker's predicates say it does not count.
    pub fn record_error<E: Any>(self, error: &E) {
        if self.shared.config.load().counts_as_failure(error) {
            self.record_failure();
        } else {
            self.record_ignored();
        }
    }

    /// Records a result: `Ok` as a success, `Err` through [`record_error`](Self::record_error).
    pub fn record_result<T, E: Any>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.record_success(),
            Err(error) => self.record_error(error),
        }
    }

    /// Starts the slow-call timer again, so that time spent queueing after the breaker
    /// admitted the call (in a bulkhead) does not count as the dependency's latency.
    pub(crate) fn restart_timer(&mut self) {
        if self.started & TIME != 0 {
            let now = self.shared.now_nanos().saturating_add(1) & TIME;
            self.started = (self.started & !TIME) | now;
        }
    }

    /// Polls `future`, the protected call, as this permit's call: a panic out of it is then
    /// recorded as a failure of the call, while a panic elsewhere that drops the permit (a
    /// sibling branch of a `join!` or `select!`, the code around the call) is a cancellation
    /// and records nothing. A permit never passed to `run` cannot tell the two apart: dropped
    /// while its thread panics, it records a failure.
    pub async fn run<F: Future>(&mut self, future: F) -> F::Output {
        watch(Some(self), future).await
    }

    /// Whether this permit is one of the half-open probes.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe(_))
    }

    #[inline]
    fn is_slow(&self) -> bool {
        let started = self.started & TIME;
        if started == 0 {
            return false;
        }
        let limit = self.shared.slow_call_micros.load(StdOrdering::Relaxed);
        let elapsed = self.shared.now_nanos().saturating_sub(started - 1);
        limit != 0 && elapsed / 1_000 >= limit
    }

    #[inline(never)]
    fn finish(&mut self, outcome: Outcome) {
        let shared = self.shared;
        let kind = std::mem::replace(&mut self.kind, PermitKind::Done);
        match outcome {
            Outcome::Success { .. } if !matches!(kind, PermitKind::Passthrough) => {
                shared.counters.successes.increment();
            }
            Outcome::Failure { .. } if !matches!(kind, PermitKind::Passthrough) => {
                shared
                    .counters
                    .cold()
                    .failures
                    .fetch_add(1, StdOrdering::Relaxed);
            }
            Outcome::Ignored if !matches!(kind, PermitKind::Passthrough) => {
                shared
                    .counters
                    .cold()
                    .ignored
                    .fetch_add(1, StdOrdering::Relaxed);
            }
            _ => {}
        }
        let env = shared.env();
        match kind {
            PermitKind::Closed(generation) => {
                shared
                    .core
                    .record_closed(generation, outcome, shared.window(), &env)
            }
            PermitKind::Probe(generation) => {
                shared
                    .core
                    .record_probe(generation, outcome, shared.window(), &env)
            }
            PermitKind::Passthrough | PermitKind::Done => {}
        }
    }
}

impl Drop for BreakerPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        if matches!(self.kind, PermitKind::Done) {
            return;
        }
        let own_panic = if self.started & WATCHED != 0 {
            self.started & POLLING != 0
        } else {
            std::thread::panicking()
        };
        if own_panic {
            self.finish(Outcome::Failure { slow: false });
        } else {
            self.finish(Outcome::Ignored);
        }
    }
}

impl fmt::Debug for BreakerPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.shared.name)
            .field("kind", &self.kind)
            .finish()
    }
}
