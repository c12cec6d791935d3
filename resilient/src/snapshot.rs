//! Everything a registry knows, at one moment, in one value: breakers, bulkheads and call
//! sites, for a `/status` page, a metrics exporter or a test.
//!
//! With the `serde` feature the snapshot serializes (to JSON, for instance); durations are
//! written as seconds (`time_in_state_seconds`), states in snake case (`half_open`).
//!
//! What each entry holds:
//!
//! | breaker field | meaning |
//! |---|---|
//! | `name`, `state` | `closed`, `open`, `half_open`, `forced_open`, `disabled` |
//! | `failure_rate`, `slow_call_rate` | over the current window, 0 to 1 (0 unless closed) |
//! | `calls_in_window`, `failures_in_window`, `slow_calls_in_window` | what the window holds |
//! | `successes`, `failures`, `timeouts`, `ignored`, `rejected` | since creation; `failures` includes `timeouts`; `ignored` counts errors that did not count and cancelled calls |
//! | `transitions`, `transition_counts` | state changes since creation, in all and as `{from, to, count}` |
//! | `half_open_probes_in_flight` | probes running |
//! | `time_in_state` | since the last transition |
//! | `retry_after` | for an open breaker, the time until it admits a probe |
//!
//! | bulkhead field | meaning |
//! |---|---|
//! | `name` | |
//! | `in_use`, `max_concurrent` | slots taken, and the limit |
//! | `waiting` | calls waiting for a slot |
//! | `rejected` | calls rejected since creation |
//!
//! | call-site field | meaning |
//! |---|---|
//! | `name` | the call site (`name = "..."` of the attribute, or the policy's name) |
//! | `calls`, `retries`, `hedges`, `fallbacks` | since creation |
//! | `stale_served` | stale cached values served after a failure, since creation |
//! | `bypassed` | whether an operator has switched its policies off |
//! | `latency_samples`, `p50`, `p90`, `p99` | sampled latency (one call in 32 per thread) |
//!
//! ```
//! use resilient::{BreakerConfig, BulkheadConfig, Registry};
//!
//! let registry = Registry::new();
//! registry.declare_breaker("users_db", BreakerConfig::consecutive_failures(5))?;
//! registry.declare_bulkhead("users_db", BulkheadConfig::new(10))?;
//! let snapshot = registry.snapshot();
//! assert_eq!(snapshot.breakers[0].name.as_ref(), "users_db");
//! assert_eq!(snapshot.bulkheads[0].max_concurrent, 10);
//! # Ok::<(), resilient::ConfigError>(())
//! ```

use crate::breaker::BreakerMetrics;
use crate::bulkhead::BulkheadMetrics;
use crate::callsite::CallSiteMetrics;

/// Every breaker, bulkhead and call site of a registry, each list sorted by name.
///
/// The breakers and the bulkheads are read one after the other without a global lock, so a
/// snapshot taken under traffic is a consistent view of each breaker and each bulkhead, not of
/// the whole registry at one instant. An entry created while a snapshot is taken may be
/// missing from it, and one removed meanwhile may still be in it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// Every circuit breaker: state, rates over its window, lifetime counters.
    pub breakers: Vec<BreakerMetrics>,
    /// Every bulkhead: slots in use, limit, callers waiting, rejections.
    pub bulkheads: Vec<BulkheadMetrics>,
    /// Every call site that has been built or run: calls, retries, fallbacks, latency
    /// percentiles.
    pub call_sites: Vec<CallSiteMetrics>,
    /// Every per-key breaker family: totals and at most
    /// [`MAX_LISTED_OPEN_KEYS`](crate::family::MAX_LISTED_OPEN_KEYS) open keys each.
    pub families: Vec<crate::family::FamilySnapshot>,
}

#[cfg(feature = "serde")]
impl serde::Serialize for crate::breaker::BreakerState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Serializes a duration as fractional seconds, the unit dashboards expect.
#[cfg(feature = "serde")]
pub(crate) fn seconds<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Serializes an optional duration as fractional seconds, or none.
#[cfg(feature = "serde")]
pub(crate) fn optional_seconds<S: serde::Serializer>(
    duration: &Option<std::time::Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}
