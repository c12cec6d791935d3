//! Generations: outcomes of calls that began under an earlier state are discarded.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_call_admitted_before_an_opening_changes_nothing_when_it_ends() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::consecutive_failures(2)
            .with_open_wait(10 * SEC)
            .with_half_open(1, 1),
    );
    let slow_failure = breaker.try_acquire().unwrap();
    let slow_success = breaker.try_acquire().unwrap();
    let slowest = breaker.try_acquire().unwrap();
    fail_n(&breaker, 2);
    advance(4 * SEC).await;
    // Neither reopens the breaker (its wait would start over) nor closes it.
    slow_failure.record_failure();
    assert_open_for(&breaker, 6 * SEC);
    slow_success.record_success();
    assert_open_for(&breaker, 6 * SEC);

    advance(6 * SEC).await;
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    // A call from the closed period is no probe: its success neither closes the breaker nor
    // frees the probe's slot.
    slowest.record_success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(matches!(
        rejection(&breaker),
        Rejection::HalfOpenFull { .. }
    ));
    probe.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failures_from_before_a_recovery_do_not_count_after_it() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::consecutive_failures(2)
            .with_open_wait(SEC)
            .with_half_open(1, 1),
    );
    let stale = breaker.try_acquire().unwrap();
    fail_n(&breaker, 2);
    advance(SEC).await;
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    stale.record_failure();
    fail(&breaker);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "one fresh failure only"
    );
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// A stale outcome must not disturb the count window of a later closed period: the window
/// still holds exactly the last N outcomes of that period.
#[tokio::test(start_paused = true)]
async fn a_stale_outcome_leaves_a_later_count_window_exact() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(4), 4)
            .with_open_wait(SEC)
            .with_half_open(1, 1),
    );
    let stale = breaker.try_acquire().unwrap();
    fail_n(&breaker, 4);
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(SEC).await;
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);

    fail(&breaker);
    succeed_n(&breaker, 3); // the window: F S S S
    stale.record_success();
    succeed(&breaker); // the window: S S S S
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.calls_in_window, metrics.failures_in_window),
        (4, 0),
        "the oldest failure must have slid out"
    );
    fail(&breaker); // S S S F: 25 %
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_stale_failure_does_not_count_in_a_later_time_window() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_count(2, 10 * SEC)
            .with_open_wait(SEC)
            .with_half_open(1, 1),
    );
    let stale = breaker.try_acquire().unwrap();
    fail_n(&breaker, 2);
    advance(SEC).await;
    succeed(&breaker);
    stale.record_failure();
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().failures_in_window, 1);
}
