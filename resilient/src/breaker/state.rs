//! The breaker's state machine over atomics: no lock, no clock of its own (the caller passes
//! the time in microseconds since the breaker's epoch), so loom can check it and the paused
//! tokio clock can drive it.
//!
//! Every transition is one compare-and-swap of the state word (`word.rs`) that bumps the
//! generation, so two callers can never both win the same transition, and an outcome carrying
//! an older generation (a call that began under an earlier state) is thrown away, as in
//! gobreaker.

use std::ops::Deref;

use super::config::{BreakerConfig, TripPolicy};
use super::transition::{Transition, TransitionReason};
use super::word::{Stamp, Word};
use crate::sync::{AtomicU64, Ordering};
use crate::window::{CountWindow, FAILURE, SLOW, Tally, Window};

pub use super::word::BreakerState;

/// What admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A closed-state call of this generation.
    Closed(u32),
    /// A half-open probe of this generation; it holds one probe slot.
    Probe(u32),
    /// The breaker is disabled: run, record nothing.
    Passthrough,
    /// Open: rejected, with the microseconds left until probing (`None` if forced open).
    RejectedOpen(Option<u64>),
    /// Half-open with every probe slot taken.
    RejectedHalfOpen,
}

/// How one call ended, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Success; `slow` if it took at least the slow-call duration.
    Success { slow: bool },
    /// A failure of the dependency (an error that counts, a timeout, a panic).
    Failure { slow: bool },
    /// An error that does not count, or a cancelled call: release, record nothing.
    Ignored,
}

/// The atomics of one breaker, and the transitions between its states.
pub(crate) struct Core {
    word: AtomicU64,
    open_until: Stamp,
    since: Stamp,
}

/// What the state machine needs from its breaker: the configuration (loaded only off the
/// closed success path), the time, and somewhere to report transitions.
pub(crate) trait Env {
    /// A borrowed or shared configuration.
    type Config: Deref<Target = BreakerConfig>;
    /// The current configuration.
    fn config(&self) -> Self::Config;
    /// Microseconds since the breaker's epoch.
    fn now(&self) -> u64;
    /// Called once for every transition this caller made.
    fn on_transition(&self, transition: Transition);
}

impl Core {
    pub(crate) fn new(now: u64) -> Self {
        let core = Core {
            word: AtomicU64::new(Word::new(BreakerState::Closed, 0).0),
            open_until: Stamp::new(),
            since: Stamp::new(),
        };
        core.since.set(0, now);
        core
    }

    #[inline]
    pub(crate) fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    /// When the current state began, in microseconds since the epoch (if already stamped).
    pub(crate) fn since(&self, word: Word) -> Option<u64> {
        self.since.get(word.generation())
    }

    /// When an open breaker will let probes through.
    pub(crate) fn open_until(&self, word: Word) -> Option<u64> {
        self.open_until.get(word.generation())
    }

    /// Decides whether a call may run. The closed state answers from one atomic load; the
    /// others read the time and the configuration.
    pub(crate) fn admit(&self, window: &Window, env: &impl Env) -> Admission {
        let mut word = self.load();
        loop {
            match word.state() {
                BreakerState::Closed => return Admission::Closed(word.generation()),
                BreakerState::Disabled => return Admission::Passthrough,
                BreakerState::ForcedOpen => return Admission::RejectedOpen(None),
                BreakerState::Open => {
                    let now = env.now();
                    let Some(until) = self.open_until(word) else {
                        // The opener has not stamped the deadline yet: it opened just now.
                        let config = env.config();
                        return Admission::RejectedOpen(Some(duration_micros(
                            config.open_wait_after(word.reopenings()),
                        )));
                    };
                    if now < until {
                        return Admission::RejectedOpen(Some(until - now));
                    }
                    let probing = word
                        .next(BreakerState::HalfOpen, word.reopenings())
                        .with_probes(1);
                    let reason = TransitionReason::OpenWaitElapsed;
                    match self.swap(word, probing, now, window, reason, env) {
                        Ok(()) => return Admission::Probe(probing.generation()),
                        Err(actual) => word = actual,
                    }
                }
                BreakerState::HalfOpen => {
                    let config = env.config();
                    if let (Some(limit), Some(since)) =
                        (config.settings.max_half_open, self.since(word))
                    {
                        let now = env.now();
                        if now.saturating_sub(since) >= duration_micros(limit) {
                            let reopened = reopen(word);
                            let reason = TransitionReason::HalfOpenTimedOut;
                            word = match self.swap(word, reopened, now, window, reason, env) {
                                Ok(()) => reopened,
                                Err(actual) => actual,
                            };
                            continue;
                        }
                    }
                    if word.probes() >= config.settings.half_open_probes {
                        return Admission::RejectedHalfOpen;
                    }
                    match self.cas(word, word.with_probes(word.probes() + 1)) {
                        Ok(()) => return Admission::Probe(word.generation()),
                        Err(actual) => word = actual,
                    }
                }
            }
        }
    }

    /// Records the outcome of a closed-state call admitted in `generation`, and judges the
    /// window with it: after every outcome, successes included, once the window holds
    /// `minimum_calls` (MicroProfile Fault Tolerance, resilience4j).
    #[inline]
    pub(crate) fn record_closed(
        &self,
        generation: u32,
        outcome: Outcome,
        window: &Window,
        env: &impl Env,
    ) {
        if outcome == (Outcome::Success { slow: false }) {
            self.record_closed_success(generation, window, env);
        } else {
            self.record_closed_outcome(generation, outcome, window, env);
        }
    }

    /// Records a fast success of a closed-state call admitted in `generation`: the hot path,
    /// small enough to inline into the caller, with nothing decided at run time but the
    /// window's kind.
    ///
    /// In a count window it takes a slot, and is judged only if it is one of the period's first
    /// `minimum_calls` (any later one can only lower the rates; see `may_complete_minimum`). In
    /// a consecutive-failures breaker it is one load, unless it ends a run of failures.
    #[inline]
    pub(crate) fn record_closed_success(&self, generation: u32, window: &Window, env: &impl Env) {
        match window {
            Window::Count(count) => {
                // A stale success must not claim a slot (see `CountWindow::record`).
                if self.load().generation() != generation {
                    return;
                }
                if let Some(claimed) = count.record(generation, 0)
                    && count.may_complete_minimum(claimed)
                {
                    self.judge_count(generation, count, window, env);
                }
            }
            Window::None(consecutive) => {
                // Nothing to reset unless this generation has a run of failures going.
                let current = consecutive.load(Ordering::Relaxed);
                if (current >> 32) as u32 == generation && current as u32 != 0 {
                    self.record_closed_outcome(
                        generation,
                        Outcome::Success { slow: false },
                        window,
                        env,
                    );
                }
            }
            Window::Time(_) => {
                self.record_closed_outcome(
                    generation,
                    Outcome::Success { slow: false },
                    window,
                    env,
                );
            }
        }
    }

    /// Judges a count window after one of the outcomes that may trip it.
    #[cold]
    #[inline(never)]
    fn judge_count(&self, generation: u32, count: &CountWindow, window: &Window, env: &impl Env) {
        if !count.reached_minimum(generation) {
            return;
        }
        if let Some(reason) = judge_rate(&env.config(), count.tally(generation)) {
            self.trip(generation, reason, window, env);
        }
    }

    #[inline(never)]
    fn record_closed_outcome(
        &self,
        generation: u32,
        outcome: Outcome,
        window: &Window,
        env: &impl Env,
    ) {
        let (failed, slow) = match outcome {
            Outcome::Success { slow } => (false, slow),
            Outcome::Failure { slow } => (true, slow),
            Outcome::Ignored => return,
        };
        let bits = if failed { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        match window {
            Window::None(consecutive) => {
                if let Some(reason) = record_consecutive(consecutive, generation, failed, env) {
                    self.trip(generation, reason, window, env);
                }
            }
            Window::Count(count) => {
                if self.load().generation() != generation {
                    return; // stale: see `CountWindow::record`
                }
                if let Some(claimed) = count.record(generation, bits)
                    && (bits != 0 || count.may_complete_minimum(claimed))
                {
                    self.judge_count(generation, count, window, env);
                }
            }
            Window::Time(time) => {
                let failures_only = time.failures_only();
                if failures_only && !failed {
                    return;
                }
                let now = env.now();
                if bits == 0 {
                    time.record_success(generation, now);
                } else {
                    time.record(generation, now, bits, !failures_only);
                }
                // A success raises the rates when older successes have left the window, so it
                // is judged too, unless no bad outcome is left in the window to judge.
                if bits == 0 && !time.may_hold_bad_outcomes(now) {
                    return;
                }
                if let Some(reason) = judge_time(&env.config(), time.tally(generation, now)) {
                    self.trip(generation, reason, window, env);
                }
            }
        }
    }

    /// Judges the window as it stands, without recording anything: after a reconfiguration,
    /// so that new thresholds apply to the outcomes already counted (otherwise a lowered
    /// threshold would wait for the next failure, and successes, which cannot raise a count
    /// window's rates, would leave a condemned window closed).
    pub(crate) fn judge_window(&self, window: &Window, env: &impl Env) {
        let word = self.load();
        if word.state() != BreakerState::Closed {
            return;
        }
        let generation = word.generation();
        let config = env.config();
        let reason = match window {
            Window::None(_) => None,
            Window::Count(count) => judge_rate(&config, count.tally(generation)),
            Window::Time(time) => judge_time(&config, time.tally(generation, env.now())),
        };
        drop(config);
        if let Some(reason) = reason {
            self.trip(generation, reason, window, env);
        }
    }

    /// Opens the breaker, if it is still in the closed state this call was admitted under.
    fn trip(&self, generation: u32, reason: TransitionReason, window: &Window, env: &impl Env) {
        let current = self.load();
        if current.state() == BreakerState::Closed && current.generation() == generation {
            let open = current.next(BreakerState::Open, 0);
            let _ = self.swap(current, open, env.now(), window, reason, env);
        }
    }

    /// Records the outcome of a half-open probe admitted in `generation`.
    pub(crate) fn record_probe(
        &self,
        generation: u32,
        outcome: Outcome,
        window: &Window,
        env: &impl Env,
    ) {
        let mut word = self.load();
        loop {
            if word.generation() != generation || word.state() != BreakerState::HalfOpen {
                return; // a stale probe: its generation ended while it ran
            }
            let released = word.with_probes(word.probes().saturating_sub(1));
            let result = match outcome {
                // A slow probe is still a gray failure: the dependency has not recovered.
                Outcome::Failure { .. } | Outcome::Success { slow: true } => {
                    let reason = TransitionReason::ProbeFailed;
                    self.swap(word, reopen(word), env.now(), window, reason, env)
                }
                Outcome::Success { slow: false } => {
                    let successes = word.successes() + 1;
                    if successes >= env.config().settings.half_open_successes {
                        let closed = word.next(BreakerState::Closed, 0);
                        let reason = TransitionReason::ProbesSucceeded(successes);
                        self.swap(word, closed, env.now(), window, reason, env)
                    } else {
                        self.cas(word, released.with_successes(successes))
                    }
                }
                Outcome::Ignored => self.cas(word, released),
            };
            match result {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// Moves to `state` from whatever state the breaker is in (operator commands, and a
    /// reconfiguration that needs a new window).
    pub(crate) fn force(
        &self,
        state: BreakerState,
        reason: TransitionReason,
        window: &Window,
        env: &impl Env,
    ) {
        let mut word = self.load();
        loop {
            match self.swap(word, word.next(state, 0), env.now(), window, reason, env) {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }

    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        self.word
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// One transition: prepare what the new state's callers read, publish the word, then stamp
    /// the times of the new generation.
    fn swap(
        &self,
        from: Word,
        to: Word,
        now: u64,
        window: &Window,
        reason: TransitionReason,
        env: &impl Env,
    ) -> Result<(), Word> {
        if to.state() == BreakerState::Closed
            && let Window::Count(count) = window
        {
            // Before publishing: no caller of the new generation exists yet, and callers of
            // older generations are discarded by the window itself.
            count.reset(to.generation());
        }
        self.cas(from, to)?;
        self.since.set(to.generation(), now);
        if to.state() == BreakerState::Open {
            let wait = env.config().open_wait_after(to.reopenings());
            self.open_until
                .set(to.generation(), now.saturating_add(duration_micros(wait)));
        }
        env.on_transition(Transition {
            from: from.state(),
            to: to.state(),
            reason,
        });
        Ok(())
    }
}

/// Counts one more failure in a row, or ends the run with a success; returns why the
/// breaker must open, if it must.
fn record_consecutive(
    consecutive: &AtomicU64,
    generation: u32,
    failed: bool,
    env: &impl Env,
) -> Option<TransitionReason> {
    let tag = u64::from(generation) << 32;
    let mut current = consecutive.load(Ordering::Relaxed);
    loop {
        let stored_generation = (current >> 32) as u32;
        if (stored_generation.wrapping_sub(generation) as i32) > 0 {
            return None; // a newer generation owns the counter: this outcome is stale
        }
        let count = if stored_generation == generation {
            current as u32
        } else {
            0
        };
        if !failed && count == 0 {
            return None; // the common success: one load, no write
        }
        let next_count = if failed { count.saturating_add(1) } else { 0 };
        match consecutive.compare_exchange_weak(
            current,
            tag | u64::from(next_count),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) if failed => {
                return match env.config().settings.trip {
                    TripPolicy::ConsecutiveFailures(limit) if next_count >= limit => {
                        Some(TransitionReason::ConsecutiveFailures(next_count))
                    }
                    _ => None,
                };
            }
            Ok(_) => return None,
            Err(actual) => current = actual,
        }
    }
}

/// The open state after a failed recovery: one more re-opening in a row.
fn reopen(word: Word) -> Word {
    word.next(BreakerState::Open, word.reopenings() + 1)
}

/// Whether a time window's tally trips the breaker, by failure count or by rates.
fn judge_time(config: &BreakerConfig, tally: Tally) -> Option<TransitionReason> {
    match config.settings.trip {
        TripPolicy::FailureCount { failures, within } => (tally.failures >= u64::from(failures))
            .then_some(TransitionReason::FailureCount {
                failures: tally.failures,
                within_millis: within.as_millis() as u64,
            }),
        _ => judge_rate(config, tally),
    }
}

/// Whether a rate window's tally trips the breaker.
fn judge_rate(config: &BreakerConfig, tally: Tally) -> Option<TransitionReason> {
    let TripPolicy::FailureRate {
        threshold,
        minimum_calls,
        ..
    } = config.settings.trip
    else {
        return None;
    };
    if tally.calls < u64::from(minimum_calls) {
        return None;
    }
    if tally.failures > 0 && tally.failure_rate() >= threshold {
        return Some(TransitionReason::FailureRate {
            rate: tally.failure_rate(),
            threshold,
            calls: tally.calls,
        });
    }
    if let Some(slow) = config.settings.slow_calls
        && tally.slow > 0
        && tally.slow_rate() >= slow.rate_threshold
    {
        return Some(TransitionReason::SlowCallRate {
            rate: tally.slow_rate(),
            threshold: slow.rate_threshold,
            calls: tally.calls,
        });
    }
    let slo = config.settings.latency_slo?;
    slo.is_breached(tally.calls, tally.slow)
        .then_some(TransitionReason::LatencySlo {
            slo,
            slow: tally.slow,
            calls: tally.calls,
        })
}

/// A duration in whole microseconds, rounded up so a wait never ends early.
pub(crate) fn duration_micros(duration: std::time::Duration) -> u64 {
    let micros = duration.as_nanos().div_ceil(1_000);
    u64::try_from(micros).unwrap_or(u64::MAX)
}
