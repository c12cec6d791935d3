//! State changes, and the reasons operators read for them in logs and events.

use std::fmt;

use super::BreakerState;

/// Why a breaker changed state: the text operators read in logs and events.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// The failure rate reached its threshold.
    FailureRate {
        /// Failure rate over the window.
        rate: f64,
        /// The configured threshold.
        threshold: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// The slow-call rate reached its threshold.
    SlowCallRate {
        /// Slow-call rate over the window.
        rate: f64,
        /// The configured threshold.
        threshold: f64,
        /// Calls in the window.
        calls: u64,
    },
    /// The latency objective's quantile reached its limit.
    LatencySlo {
        /// The objective.
        slo: super::LatencySlo,
        /// Calls in the window that took at least the limit.
        slow: u64,
        /// Calls in the window.
        calls: u64,
    },
    /// Too many failures in a row.
    ConsecutiveFailures(u32),
    /// Too many failures within the time window.
    FailureCount {
        /// Failures in the window.
        failures: u64,
        /// The window.
        within_millis: u64,
    },
    /// The open wait passed; probing.
    OpenWaitElapsed,
    /// A half-open probe failed.
    ProbeFailed,
    /// Enough half-open probes succeeded.
    ProbesSucceeded(u32),
    /// The breaker stayed half-open longer than `max_half_open`.
    HalfOpenTimedOut,
    /// An operator forced it open.
    Forced,
    /// An operator disabled it.
    Disabled,
    /// An operator reset it to closed.
    Reset,
    /// Its configuration changed shape, so it starts over with a new window.
    Reconfigured,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransitionReason::FailureRate {
                rate,
                threshold,
                calls,
            } => write!(
                f,
                "failure rate {:.0}% ≥ {:.0}% over the last {calls} calls",
                rate * 100.0,
                threshold * 100.0
            ),
            TransitionReason::SlowCallRate {
                rate,
                threshold,
                calls,
            } => write!(
                f,
                "slow-call rate {:.0}% ≥ {:.0}% over the last {calls} calls",
                rate * 100.0,
                threshold * 100.0
            ),
            TransitionReason::LatencySlo { slo, slow, calls } => write!(
                f,
                "{} latency ≥ {:?} over the last {calls} calls ({slow} took at least {:?})",
                slo.label(),
                slo.limit,
                slo.limit
            ),
            TransitionReason::ConsecutiveFailures(n) => write!(f, "{n} failures in a row"),
            TransitionReason::FailureCount {
                failures,
                within_millis,
            } => write!(
                f,
                "{failures} failures within the last {:?}",
                std::time::Duration::from_millis(within_millis)
            ),
            TransitionReason::OpenWaitElapsed => f.write_str("open wait elapsed, probing"),
            TransitionReason::ProbeFailed => f.write_str("probe failed"),
            TransitionReason::ProbesSucceeded(n) => write!(f, "{n} probes succeeded"),
            TransitionReason::HalfOpenTimedOut => {
                f.write_str("half-open for longer than max_half_open")
            }
            TransitionReason::Forced => f.write_str("forced open by an operator"),
            TransitionReason::Disabled => f.write_str("disabled by an operator"),
            TransitionReason::Reset => f.write_str("reset by an operator"),
            TransitionReason::Reconfigured => f.write_str("reconfigured with a new window"),
        }
    }
}

/// A state change that happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
}
