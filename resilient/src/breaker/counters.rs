//! What a breaker counts over its life: successes on the hot path, everything else off it.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering as StdOrdering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::BreakerState;
use crate::counter::StripedCounter;

/// Every state, in the order of [`ColdCounters::transitions`]' rows and columns.
pub(crate) const STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

pub(super) fn state_index(state: BreakerState) -> usize {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::ForcedOpen => 3,
        BreakerState::Disabled => 4,
    }
}

/// Counters kept per breaker since it was created.
///
/// Successes are counted on a [`StripedCounter`]: the closed success path is the hot path, and
/// a shared `fetch_add` there would be one more contended atomic per call. The striped counter
/// costs a thread-local read and a plain load and store on a cell no other thread writes.
/// Everything else is counted off the success path, in [`ColdCounters`] allocated on the first
/// bad outcome, rejection or transition: a breaker that only ever succeeds does not carry them.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) successes: StripedCounter,
    pub(super) cold: OnceLock<Box<ColdCounters>>,
}

/// The counters of everything but successes.
#[derive(Default)]
pub(super) struct ColdCounters {
    /// Failures, timeouts included.
    pub(super) failures: StdAtomicU64,
    /// Of the failures, attempts that timed out.
    pub(super) timeouts: StdAtomicU64,
    pub(super) ignored: StdAtomicU64,
    /// Striped like the successes: an open breaker rejects every call of every thread, and a
    /// shared `fetch_add` would pass its line between them on each one.
    pub(super) rejected: StripedCounter,
    /// Transitions by `[from][to]`, indexed by [`state_index`].
    pub(super) transitions: [[StdAtomicU64; 5]; 5],
    /// When the breaker last left the closed (or disabled) state, in microseconds since the
    /// epoch plus one; 0 while it is closed. Re-openings after a failed probe keep it, so
    /// "open too long" measures the whole outage, not the last open wait. Here, not beside the
    /// state, because only a transition sets it, and a transition brings these counters.
    pub(super) unhealthy_since: StdAtomicU64,
    /// Whether this outage's open-too-long alert has fired.
    pub(super) open_alerted: AtomicBool,
}

impl Counters {
    /// The cold counters, allocated on first use.
    pub(super) fn cold(&self) -> &ColdCounters {
        self.cold.get_or_init(Box::default)
    }

    /// Reads one cold counter: 0 before any was counted.
    pub(super) fn read(&self, counter: impl Fn(&ColdCounters) -> &StdAtomicU64) -> u64 {
        self.cold
            .get()
            .map_or(0, |cold| counter(cold).load(StdOrdering::Relaxed))
    }
}

/// A breaker's state and counters at one moment.
///
/// The lifetime counters partition the calls the breaker admitted or refused:
/// `successes + (failures - timeouts) + timeouts + ignored + rejected`. A disabled breaker
/// counts nothing.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Its state.
    pub state: BreakerState,
    /// Failure rate over the current window (0 when not closed or empty).
    pub failure_rate: f64,
    /// Slow-call rate over the current window.
    pub slow_call_rate: f64,
    /// Calls the current window holds.
    pub calls_in_window: u64,
    /// Failures the current window holds.
    pub failures_in_window: u64,
    /// Slow calls the current window holds.
    pub slow_calls_in_window: u64,
    /// Successful calls since creation (slow ones included).
    pub successes: u64,
    /// Failures recorded since creation, timeouts included.
    pub failures: u64,
    /// Of the failures, attempts that ran out of time.
    pub timeouts: u64,
    /// Errors that did not count, and cancelled calls, since creation.
    pub ignored: u64,
    /// Calls rejected since creation.
    pub rejected: u64,
    /// State changes since creation.
    pub transitions: u64,
    /// State changes since creation by origin and destination; pairs that never happened are
    /// left out.
    pub transition_counts: Vec<TransitionCount>,
    /// Half-open probes in flight.
    pub half_open_probes_in_flight: u32,
    /// How long it has been in its state (serialized as seconds).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "time_in_state_seconds",
            serialize_with = "crate::snapshot::seconds"
        )
    )]
    pub time_in_state: Duration,
    /// For an open breaker, the time until it lets probes through (serialized as seconds).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "retry_after_seconds",
            serialize_with = "crate::snapshot::optional_seconds"
        )
    )]
    pub retry_after: Option<Duration>,
}

/// How many times a breaker went from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TransitionCount {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// How many times.
    pub count: u64,
}

#[cfg(all(test, not(resilient_loom)))]
mod tests {
    use super::super::*;

    #[test]
    fn a_breaker_that_only_succeeds_carries_no_cold_counters() {
        let breaker = CircuitBreaker::new("lean", BreakerConfig::default()).unwrap();
        for _ in 0..3 {
            breaker.try_acquire().unwrap().record_success();
        }
        assert!(breaker.shared.counters.cold.get().is_none());
        assert!(!breaker.shared.counters.successes.is_striped());
        let metrics = breaker.metrics();
        assert_eq!((metrics.successes, metrics.failures), (3, 0));
        assert!(metrics.transition_counts.is_empty());
        breaker.try_acquire().unwrap().record_failure();
        breaker.try_acquire().unwrap().record_timeout();
        let metrics = breaker.metrics();
        assert_eq!(
            (metrics.successes, metrics.failures, metrics.timeouts),
            (3, 2, 1)
        );
    }
}
