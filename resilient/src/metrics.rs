//! Export through the [`metrics`] crate facade (feature `metrics`), so any recorder
//! works: Prometheus (`metrics-exporter-prometheus`), StatsD, OpenTelemetry bridges, ...
//!
//! Names and labels follow Prometheus conventions and what resilience4j and Polly export:
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `resilient_calls_total` | counter | `breaker`, `outcome` | calls through a breaker; `outcome` is `success`, `failure`, `timeout`, `ignored` or `rejected` (they partition the calls) |
//! | `resilient_breaker_state` | gauge | `breaker`, `state` | 1 for the breaker's current state, 0 for the four others (`closed`, `open`, `half_open`, `forced_open`, `disabled`) |
//! | `resilient_breaker_transitions_total` | counter | `breaker`, `from`, `to` | state changes |
//! | `resilient_breaker_failure_rate` | gauge | `breaker` | failure rate over the window, 0 to 1 |
//! | `resilient_breaker_slow_call_rate` | gauge | `breaker` | slow-call rate over the window, 0 to 1 |
//! | `resilient_breaker_window_calls` | gauge | `breaker` | calls the window holds |
//! | `resilient_breaker_time_in_state_seconds` | gauge | `breaker` | time since the last transition |
//! | `resilient_bulkhead_in_use` | gauge | `bulkhead` | slots taken |
//! | `resilient_bulkhead_limit` | gauge | `bulkhead` | `max_concurrent` |
//! | `resilient_bulkhead_waiting` | gauge | `bulkhead` | calls waiting for a slot |
//! | `resilient_bulkhead_rejected_total` | counter | `bulkhead` | calls rejected |
//! | `resilient_call_site_calls_total` | counter | `call_site` | calls started |
//! | `resilient_retries_total` | counter | `call_site` | retries made |
//! | `resilient_hedges_total` | counter | `call_site` | hedges started |
//! | `resilient_fallbacks_total` | counter | `call_site` | fallbacks served |
//! | `resilient_stale_served_total` | counter | `call_site` | stale cached values served after a failure |
//! | `resilient_call_site_bypassed` | gauge | `call_site` | 1 while an operator has switched its policies off |
//! | `resilient_call_duration_seconds` | gauge | `call_site`, `quantile` | latency at `quantile` 0.5, 0.9 and 0.99 (a Prometheus summary's quantiles, from the sampled histogram) |
//!
//! Per-key breaker families export their totals and at most 20 open keys each: see
//! [`BreakerFamily::export_metrics`](crate::family::BreakerFamily::export_metrics).
//!
//! # Why export on demand, not per call
//!
//! A `metrics::counter!` per call looks its key up in the recorder (hashing the name and the
//! labels) on the hot path. `resilient` keeps its own counters anyway (lock-free, and for
//! successes contention-free), so [`Registry::export_metrics`](crate::Registry::export_metrics) copies a [`Snapshot`] into the
//! recorder when asked: counters with `absolute`, gauges with `set`. Call it where the recorder
//! is read — before rendering a scrape — or from a periodic task:
//!
//! ```no_run
//! # async fn demo() {
//! let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
//! loop {
//!     tick.tick().await;
//!     resilient::registry().export_metrics();
//! }
//! # }
//! ```
//!
//! A scrape then sees values at most one interval old; the calls themselves pay nothing.

use std::sync::Arc;

use ::metrics::{SharedString, counter, describe_counter, describe_gauge, gauge};

use crate::breaker::STATES;
use crate::callsite::CallSiteMetrics;
use crate::snapshot::Snapshot;

/// Reads one latency quantile, in seconds, from a call site's metrics.
type Quantile = fn(&CallSiteMetrics) -> Option<f64>;

/// The quantiles exported for each call site's latency.
const QUANTILES: [(&str, Quantile); 3] = [
    ("0.5", |site| site.p50.map(|d| d.as_secs_f64())),
    ("0.9", |site| site.p90.map(|d| d.as_secs_f64())),
    ("0.99", |site| site.p99.map(|d| d.as_secs_f64())),
];

/// Copies `snapshot` into the `metrics` recorder in use.
pub fn export(snapshot: &Snapshot) {
    describe();
    for breaker in &snapshot.breakers {
        let name = label(&breaker.name);
        let outcomes = [
            ("success", breaker.successes),
            ("failure", breaker.failures.saturating_sub(breaker.timeouts)),
            ("timeout", breaker.timeouts),
            ("ignored", breaker.ignored),
            ("rejected", breaker.rejected),
        ];
        for (outcome, count) in outcomes {
            counter!("resilient_calls_total", "breaker" => name.clone(), "outcome" => outcome)
                .absolute(count);
        }
        for state in STATES {
            let current = if state == breaker.state { 1.0 } else { 0.0 };
            gauge!("resilient_breaker_state", "breaker" => name.clone(), "state" => state.as_str())
                .set(current);
        }
        for transition in &breaker.transition_counts {
            counter!(
                "resilient_breaker_transitions_total",
                "breaker" => name.clone(),
                "from" => transition.from.as_str(),
                "to" => transition.to.as_str()
            )
            .absolute(transition.count);
        }
        gauge!("resilient_breaker_failure_rate", "breaker" => name.clone())
            .set(breaker.failure_rate);
        gauge!("resilient_breaker_slow_call_rate", "breaker" => name.clone())
            .set(breaker.slow_call_rate);
        gauge!("resilient_breaker_window_calls", "breaker" => name.clone())
            .set(breaker.calls_in_window as f64);
        gauge!("resilient_breaker_time_in_state_seconds", "breaker" => name)
            .set(breaker.time_in_state.as_secs_f64());
    }
    for bulkhead in &snapshot.bulkheads {
        let name = label(&bulkhead.name);
        gauge!("resilient_bulkhead_in_use", "bulkhead" => name.clone()).set(bulkhead.in_use as f64);
        gauge!("resilient_bulkhead_limit", "bulkhead" => name.clone())
            .set(bulkhead.max_concurrent as f64);
        gauge!("resilient_bulkhead_waiting", "bulkhead" => name.clone())
            .set(bulkhead.waiting as f64);
        counter!("resilient_bulkhead_rejected_total", "bulkhead" => name)
            .absolute(bulkhead.rejected);
    }
    for site in &snapshot.call_sites {
        let name = label(&site.name);
        counter!("resilient_call_site_calls_total", "call_site" => name.clone())
            .absolute(site.calls);
        counter!("resilient_retries_total", "call_site" => name.clone()).absolute(site.retries);
        counter!("resilient_hedges_total", "call_site" => name.clone()).absolute(site.hedges);
        counter!("resilient_fallbacks_total", "call_site" => name.clone()).absolute(site.fallbacks);
        counter!("resilient_stale_served_total", "call_site" => name.clone())
            .absolute(site.stale_served);
        gauge!("resilient_call_site_bypassed", "call_site" => name.clone()).set(if site.bypassed {
            1.0
        } else {
            0.0
        });
        for (quantile, value) in QUANTILES {
            // No sample yet: leave the series out rather than report a latency of zero.
            if let Some(seconds) = value(site) {
                gauge!(
                    "resilient_call_duration_seconds",
                    "call_site" => name.clone(),
                    "quantile" => quantile
                )
                .set(seconds);
            }
        }
    }
}

/// A name as a label value, sharing the name's allocation.
fn label(name: &Arc<str>) -> SharedString {
    SharedString::from(name.clone())
}

/// Gives every metric its help text (recorders keep the first or the last; either is fine).
fn describe() {
    describe_counter!(
        "resilient_calls_total",
        "Calls through a circuit breaker, by outcome: success, failure, timeout, ignored, rejected."
    );
    describe_gauge!(
        "resilient_breaker_state",
        "1 for the circuit breaker's current state, 0 for the others."
    );
    describe_counter!(
        "resilient_breaker_transitions_total",
        "Circuit breaker state changes, by origin and destination."
    );
    describe_gauge!(
        "resilient_breaker_failure_rate",
        "Failure rate over the circuit breaker's sliding window (0 to 1)."
    );
    describe_gauge!(
        "resilient_breaker_slow_call_rate",
        "Slow-call rate over the circuit breaker's sliding window (0 to 1)."
    );
    describe_gauge!(
        "resilient_breaker_window_calls",
        "Calls the circuit breaker's sliding window holds."
    );
    describe_gauge!(
        "resilient_breaker_time_in_state_seconds",
        ::metrics::Unit::Seconds,
        "Time since the circuit breaker's last state change."
    );
    describe_gauge!("resilient_bulkhead_in_use", "Bulkhead slots taken.");
    describe_gauge!(
        "resilient_bulkhead_limit",
        "Bulkhead slots in all (max_concurrent)."
    );
    describe_gauge!(
        "resilient_bulkhead_waiting",
        "Calls waiting for a bulkhead slot."
    );
    describe_counter!(
        "resilient_bulkhead_rejected_total",
        "Calls rejected by a full bulkhead."
    );
    describe_counter!(
        "resilient_call_site_calls_total",
        "Calls started, per call site."
    );
    describe_counter!("resilient_retries_total", "Retries made, per call site.");
    describe_counter!("resilient_hedges_total", "Hedges started, per call site.");
    describe_counter!(
        "resilient_fallbacks_total",
        "Fallbacks served, per call site."
    );
    describe_counter!(
        "resilient_stale_served_total",
        "Stale cached values served after a failure, per call site."
    );
    describe_gauge!(
        "resilient_call_site_bypassed",
        "1 while an operator has switched the call site's policies off."
    );
    describe_gauge!(
        "resilient_call_duration_seconds",
        ::metrics::Unit::Seconds,
        "Call latency at the 0.5, 0.9 and 0.99 quantiles (sampled)."
    );
}
