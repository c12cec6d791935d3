//! Every transition of the circuit breaker, driven by hand through permits on tokio's paused
//! clock: trip policies, open wait, half-open probing, manual states, stale generations,
//! cancellation and panics.

mod cancellation;
#[path = "../common/mod.rs"]
mod common;
mod generations;
mod half_open;
mod latency_slo;
mod manual;
mod trip;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use resilient::{
    BreakerConfig, BreakerState, CircuitBreaker, Policy, Registry, Rejection, SlidingWindow,
    TripPolicy,
};
use tokio::time::advance;

fn declare(registry: &Registry, config: BreakerConfig) -> CircuitBreaker {
    registry
        .declare_breaker("db", config)
        .expect("valid config")
}

fn one_failure_opens(wait: Duration, probes: u32, successes: u32) -> BreakerConfig {
    BreakerConfig::consecutive_failures(1)
        .with_open_wait(wait)
        .with_half_open(probes, successes)
        .with_max_half_open(None)
}

/// Runs one call that succeeds after `took` on the paused clock.
async fn slow_success(breaker: &CircuitBreaker, took: Duration) {
    let permit = breaker.try_acquire().expect("admitted");
    advance(took).await;
    permit.record_success();
}

/// A breaker that one failure opened and whose one-second open wait has passed: the next
/// caller is a probe.
async fn half_open(probes: u32, successes: u32) -> CircuitBreaker {
    let breaker = declare(&Registry::new(), one_failure_opens(SEC, probes, successes));
    fail(&breaker);
    advance(SEC).await;
    breaker
}
