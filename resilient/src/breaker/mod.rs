//! Named circuit breakers: stop calling a dependency that is failing, probe it carefully, and
//! resume when it has recovered.
//!
//! ```text
//!            failures / slow calls reach the threshold
//!   Closed ─────────────────────────────────────────────▶ Open
//!     ▲                                                   │  open wait elapsed
//!     │ enough probes succeed      a probe fails          ▼  (first caller probes)
//!     └──────────────────────── HalfOpen ◀────────────────┘
//!                                  │  ▲
//!                                  └──┘ at most N probes in flight, the rest rejected
//! ```
//!
//! A handle ([`CircuitBreaker`]) is a cheap clone of a shared breaker. A call asks it for a
//! [`BreakerPermit`], runs, and records its outcome on the permit. A permit dropped without an
//! outcome (the call was cancelled) frees its probe slot and records nothing; one dropped
//! because its call panicked records a failure, while a panic elsewhere that drops it (a
//! sibling `join!` branch) is a cancellation. So no call can wedge a breaker half-open.

mod config;
mod counters;
mod early;
#[cfg(all(test, not(resilient_loom)))]
mod footprint;
mod permit;
mod slo;
mod state;
mod transition;
mod window_cell;
mod word;

use std::fmt;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering as StdOrdering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

pub use config::{BreakerConfig, LatencySlo, MAX_PROBES, SlidingWindow, SlowCalls, TripPolicy};
pub(crate) use config::{TIME_BUCKETS, WindowShape};
pub use permit::BreakerPermit;
use permit::PermitKind;
pub(crate) use permit::watch;
pub use state::BreakerState;
pub(crate) use state::{Admission, Core, Env, Outcome};
pub use transition::{Transition, TransitionReason};

use crate::error::{ConfigError, Rejection};
use crate::event::{Event, Listeners};
use crate::window::{Tally, Window};
pub(crate) use counters::STATES;
pub use counters::{BreakerMetrics, TransitionCount};
use counters::{Counters, state_index};
use window_cell::WindowCell;

/// A handle to a named circuit breaker. Clones share the breaker; a handle stays valid, and
/// follows every reconfiguration, for as long as it lives.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    epoch: Instant,
    core: Core,
    config: ArcSwap<BreakerConfig>,
    /// The slow-call duration in microseconds, or 0: read on every admission to decide whether
    /// the call must be timed, so it is mirrored out of `config` into a plain atomic.
    slow_call_micros: StdAtomicU64,
    windows: WindowCell,
    counters: Counters,
    reconfigure: Mutex<()>,
    /// Where events go; `None` for a breaker made without listeners.
    listeners: Option<Arc<Listeners>>,
}

impl Shared {
    fn env(&self) -> SharedEnv<'_> {
        SharedEnv { shared: self }
    }

    #[inline]
    fn window(&self) -> &Window {
        &self.windows.latest().window
    }

    /// Nanoseconds since the epoch (slow-call timing).
    fn now_nanos(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the epoch: every rejection reads it, so in 64-bit arithmetic, not
    /// `Duration::as_micros`' 128-bit one (the same value, saturating past 584 000 years).
    fn now_micros(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        elapsed
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(elapsed.subsec_micros()))
    }

    /// Counts, logs and reports a rejected call; off the success path, and inlined into its
    /// callers, themselves out of line: one call per rejection, not two.
    #[inline(always)]
    fn rejected(&self, rejection: Rejection) -> Rejection {
        self.counters.cold().rejected.increment();
        tracing::debug!(
            target: "resilient::breaker",
            breaker = %self.name,
            retry_after = ?rejection.retry_after(),
            "call rejected: {rejection}"
        );
        if let Some(listeners) = &self.listeners {
            listeners.emit(|| Event::Rejected(rejection.clone()));
            self.check_open_alert(listeners, || self.rejection_time(&rejection));
        }
        rejection
    }

    /// The time of a rejection, in microseconds since the epoch: worked out from the wait
    /// left when the open wait's end is known, so that the clock is read once per rejection.
    fn rejection_time(&self, rejection: &Rejection) -> u64 {
        let until = self.core.open_until(self.core.load());
        match (until, rejection.retry_after()) {
            // `left` came from whole microseconds: no rounding, and no 128-bit division.
            (Some(until), Some(left)) => until.saturating_sub(
                left.as_secs()
                    .saturating_mul(1_000_000)
                    .saturating_add(u64::from(left.subsec_micros())),
            ),
            _ => self.now_micros(),
        }
    }

    /// Sends the open-too-long alert if this outage has lasted past the listeners' threshold
    /// and it has not been sent yet. `now` is called only when the alert may fire.
    fn check_open_alert(&self, listeners: &Listeners, now: impl FnOnce() -> u64) {
        let limit = listeners.open_alert_micros();
        // No cold counters: the breaker never left the closed state.
        let Some(cold) = self.counters.cold.get() else {
            return;
        };
        if limit == 0 || cold.open_alerted.load(StdOrdering::Relaxed) {
            return;
        }
        let since = cold.unhealthy_since.load(StdOrdering::Acquire);
        if since == 0 {
            return;
        }
        let open_for = now().saturating_sub(since - 1);
        if open_for < limit
            || cold
                .open_alerted
                .compare_exchange(false, true, StdOrdering::AcqRel, StdOrdering::Relaxed)
                .is_err()
        {
            return;
        }
        let open_for = Duration::from_micros(open_for);
        let state = self.core.load().state();
        tracing::warn!(
            target: "resilient::breaker",
            breaker = %self.name, %state, ?open_for,
            "circuit breaker `{}` has not closed for {open_for:?}", self.name
        );
        listeners.emit(|| Event::OpenTooLong {
            breaker: self.name.clone(),
            state,
            open_for,
        });
    }
}

/// The configuration in force, borrowed without a lock.
pub(crate) struct ConfigGuard(arc_swap::Guard<Arc<BreakerConfig>>);

impl std::ops::Deref for ConfigGuard {
    type Target = BreakerConfig;

    fn deref(&self) -> &BreakerConfig {
        &self.0
    }
}

struct SharedEnv<'a> {
    shared: &'a Shared,
}

impl Env for SharedEnv<'_> {
    type Config = ConfigGuard;

    fn config(&self) -> Self::Config {
        ConfigGuard(self.shared.config.load())
    }

    fn now(&self) -> u64 {
        self.shared.now_micros()
    }

    fn on_transition(&self, transition: Transition) {
        let shared = self.shared;
        let (from, to, reason) = (transition.from, transition.to, transition.reason);
        let cold = shared.counters.cold();
        cold.transitions[state_index(from)][state_index(to)].fetch_add(1, StdOrdering::Relaxed);
        // Judged by the state now, not by this report's `to`: reports of racing transitions
        // (a trip and an operator's reset) can arrive in either order, and a late "closed →
        // open" must not start an outage clock for a breaker that is closed again.
        let now_healthy = matches!(
            shared.core.load().state(),
            BreakerState::Closed | BreakerState::Disabled
        );
        if now_healthy {
            cold.unhealthy_since.store(0, StdOrdering::Release);
            cold.open_alerted.store(false, StdOrdering::Relaxed);
        } else {
            let since = shared.now_micros().saturating_add(1);
            let _ = cold.unhealthy_since.compare_exchange(
                0,
                since,
                StdOrdering::AcqRel,
                StdOrdering::Relaxed,
            );
        }
        if matches!(to, BreakerState::Open | BreakerState::ForcedOpen) {
            tracing::warn!(
                target: "resilient::breaker",
                breaker = %shared.name, %from, %to, %reason,
                "circuit breaker `{}` opened: {reason}", shared.name
            );
        } else {
            tracing::info!(
                target: "resilient::breaker",
                breaker = %shared.name, %from, %to, %reason,
                "circuit breaker `{}` is now {to}: {reason}", shared.name
            );
        }
        if let Some(listeners) = &shared.listeners {
            listeners.emit(|| Event::StateTransition {
                breaker: shared.name.clone(),
                from,
                to,
                reason,
            });
        }
    }
}

impl CircuitBreaker {
    /// A breaker outside any registry (tests, embedding), reporting no events. Use the registry
    /// for breakers shared by name.
    pub fn new(name: &str, config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::build(name, config, None)
    }

    /// A breaker outside any registry that reports its transitions, rejections and alerts to
    /// `listeners` (for instance a registry's, from
    /// [`Registry::listeners`](crate::Registry::listeners)).
    pub fn with_listeners(
        name: &str,
        config: BreakerConfig,
        listeners: Arc<Listeners>,
    ) -> Result<Self, ConfigError> {
        Self::build(name, config, Some(listeners))
    }

    fn build(
        name: &str,
        config: BreakerConfig,
        listeners: Option<Arc<Listeners>>,
    ) -> Result<Self, ConfigError> {
        config.validate(name)?;
        let epoch = Instant::now();
        let shape = config.window_shape();
        let slow = slow_micros(&config);
        Ok(CircuitBreaker {
            shared: Arc::new(Shared {
                name: name.into(),
                epoch,
                core: Core::new(0),
                slow_call_micros: StdAtomicU64::new(slow),
                windows: WindowCell::new(shape, 0, &config),
                config: ArcSwap::from_pointee(config),
                counters: Counters::default(),
                reconfigure: Mutex::new(()),
                listeners,
            }),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The name as a shared string, as carried in rejections.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// Its current state.
    pub fn state(&self) -> BreakerState {
        self.shared.core.load().state()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<BreakerConfig> {
        self.shared.config.load_full()
    }

    /// Asks to run one call. On `Ok`, run it and record its outcome on the permit; on `Err`,
    /// don't run it.
    ///
    /// In the closed state this is one atomic load (plus a clock read when slow calls are
    /// configured): no lock, no allocation.
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, Rejection> {
        match self.closed_permit() {
            Some(permit) => Ok(permit),
            None => self.acquire(&self.shared),
        }
    }

    /// The permit of a closed breaker without slow-call timing, answered here so that this
    /// much inlines into the caller; everything else (and the same answer) comes from
    /// `admit`.
    #[inline(always)]
    fn closed_permit(&self) -> Option<BreakerPermit<'_>> {
        let shared = &*self.shared;
        let word = shared.core.load();
        let closed = word.state() == BreakerState::Closed
            && shared.slow_call_micros.load(StdOrdering::Relaxed) == 0;
        closed.then(|| BreakerPermit::new(shared, PermitKind::Closed(word.generation()), 0))
    }

    /// Whether the breaker is anything but closed: one load of its state word.
    #[inline]
    pub(crate) fn is_not_closed(&self) -> bool {
        self.shared.core.load().state() != BreakerState::Closed
    }

    /// [`try_acquire`](Self::try_acquire), writing the permit into `slot`. A closed breaker's
    /// permit is written field by field where it will live: returned in a `Result` and then
    /// moved, it was read back whole from the fields just written, a failed store-to-load
    /// forward on every call.
    #[inline]
    pub(crate) fn acquire_into<'a>(
        &'a self,
        slot: &mut Option<BreakerPermit<'a>>,
    ) -> Result<(), Rejection> {
        *slot = Some(match self.closed_permit() {
            Some(permit) => permit,
            None => self.acquire(&self.shared)?,
        });
        Ok(())
    }

    #[inline(never)]
    fn acquire<'a>(&self, shared: &'a Shared) -> Result<BreakerPermit<'a>, Rejection> {
        // Open with its wait not over, or forced open: the state word and one clock read
        // decide, without the admission loop or the configuration. Everything else, and an
        // open wait that is over, goes through `admit`.
        if let Some(retry_after) = shared.refusing(shared.core.load()) {
            return Err(shared.rejected_open(retry_after));
        }
        Self::admit(shared)
    }

    /// Admission by the state machine, apart from [`acquire`](Self::acquire) so that the
    /// open breaker's rejection does not pay for its frame.
    #[inline(never)]
    fn admit(shared: &Shared) -> Result<BreakerPermit<'_>, Rejection> {
        let admission = shared.core.admit(shared.window(), &shared.env());
        let kind = match admission {
            Admission::Closed(generation) => PermitKind::Closed(generation),
            Admission::Probe(generation) => PermitKind::Probe(generation),
            Admission::Passthrough => PermitKind::Passthrough,
            Admission::RejectedOpen(left) => {
                return Err(shared.rejected_open(left.map(Duration::from_micros)));
            }
            Admission::RejectedHalfOpen => return Err(shared.rejected_half_open()),
        };
        let started = if shared.slow_call_micros.load(StdOrdering::Relaxed) != 0
            && !matches!(kind, PermitKind::Passthrough)
        {
            shared.now_nanos().saturating_add(1)
        } else {
            0
        };
        Ok(BreakerPermit::new(shared, kind, started))
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.command(BreakerState::ForcedOpen, TransitionReason::Forced);
    }

    /// Lets every call through and records nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.command(BreakerState::Disabled, TransitionReason::Disabled);
    }

    /// Closes the breaker with an empty window, whatever its state.
    pub fn reset(&self) {
        self.command(BreakerState::Closed, TransitionReason::Reset);
    }

    fn command(&self, state: BreakerState, reason: TransitionReason) {
        let shared = &*self.shared;
        shared
            .core
            .force(state, reason, shared.window(), &shared.env());
    }

    /// Replaces the configuration in place. The state is kept; so is the window, unless the
    /// new configuration needs a window of another kind or size, in which case a closed
    /// breaker starts over with an empty one. A closed breaker whose kept window already
    /// reaches the new thresholds opens at once.
    pub fn reconfigure(&self, config: BreakerConfig) -> Result<(), ConfigError> {
        let shared = &*self.shared;
        config.validate(&shared.name)?;
        let _guard = shared
            .reconfigure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let shape = config.window_shape();
        let current = shared.windows.latest();
        shared
            .slow_call_micros
            .store(slow_micros(&config), StdOrdering::Relaxed);
        let config = Arc::new(config);
        shared.config.store(config.clone());
        if current.has_shape(shape) {
            // The same window under new thresholds: judge what it holds by them now.
            current.follow(&config);
            shared.core.judge_window(shared.window(), &shared.env());
        } else {
            let word = shared.core.load();
            let generation = word.generation().wrapping_add(1);
            let cell = Box::new(WindowCell::new(shape, generation, &config));
            // Only this function appends, under the lock, to the last cell.
            current.append(cell);
            if word.state() == BreakerState::Closed {
                shared.core.force(
                    BreakerState::Closed,
                    TransitionReason::Reconfigured,
                    shared.window(),
                    &shared.env(),
                );
            }
        }
        Ok(())
    }

    /// A point-in-time view of the breaker's state and counters.
    pub fn metrics(&self) -> BreakerMetrics {
        let shared = &*self.shared;
        let word = shared.core.load();
        let now = shared.now_micros();
        let tally = if word.state() == BreakerState::Closed {
            match shared.window() {
                Window::None(_) => Tally::default(),
                Window::Count(count) => count.tally(word.generation()),
                Window::Time(time) => time.tally(word.generation(), now),
            }
        } else {
            Tally::default()
        };
        let since = shared.core.since(word).unwrap_or(now);
        let retry_after = match word.state() {
            BreakerState::Open => shared
                .core
                .open_until(word)
                .map(|until| Duration::from_micros(until.saturating_sub(now))),
            _ => None,
        };
        let counters = &shared.counters;
        let mut transition_counts = Vec::new();
        for (from, index_from) in STATES.into_iter().zip(0..) {
            for (to, index_to) in STATES.into_iter().zip(0..) {
                let count = counters.read(|cold| &cold.transitions[index_from][index_to]);
                if count > 0 {
                    transition_counts.push(TransitionCount { from, to, count });
                }
            }
        }
        BreakerMetrics {
            name: shared.name.clone(),
            state: word.state(),
            failure_rate: tally.failure_rate(),
            slow_call_rate: tally.slow_rate(),
            calls_in_window: tally.calls,
            failures_in_window: tally.failures,
            slow_calls_in_window: tally.slow,
            successes: counters.successes.get(),
            failures: counters.read(|cold| &cold.failures),
            timeouts: counters.read(|cold| &cold.timeouts),
            ignored: counters.read(|cold| &cold.ignored),
            rejected: counters.cold.get().map_or(0, |cold| cold.rejected.get()),
            transitions: transition_counts.iter().map(|t| t.count).sum(),
            transition_counts,
            half_open_probes_in_flight: word.probes(),
            time_in_state: Duration::from_micros(now.saturating_sub(since)),
            retry_after,
        }
    }

    /// Whether a [family](crate::family) may drop this breaker without letting calls past
    /// a decision it still enforces: closed, open with its wait over, or half-open with no
    /// probe in flight. Forced open and disabled are an operator's and are kept.
    pub(crate) fn evictable(&self) -> bool {
        let shared = &*self.shared;
        let word = shared.core.load();
        match word.state() {
            BreakerState::Closed => true,
            BreakerState::Open => shared
                .core
                .open_until(word)
                .is_some_and(|until| until <= shared.now_micros()),
            BreakerState::HalfOpen => word.probes() == 0,
            BreakerState::ForcedOpen | BreakerState::Disabled => false,
        }
    }

    /// Whether two handles share one breaker.
    pub fn same_as(&self, other: &CircuitBreaker) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Sends the open-too-long alert if it is due (see
    /// [`Listeners::alert_when_open_longer_than`]).
    pub(crate) fn check_open_alert(&self) {
        if let Some(listeners) = &self.shared.listeners {
            self.shared
                .check_open_alert(listeners, || self.shared.now_micros());
        }
    }
}

fn slow_micros(config: &BreakerConfig) -> u64 {
    config
        .slow_duration()
        .map_or(0, |duration| state::duration_micros(duration).max(1))
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}
