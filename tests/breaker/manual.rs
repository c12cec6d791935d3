//! Manual states: forced open, disabled, reset.

use super::*;

#[tokio::test(start_paused = true)]
async fn forced_open_rejects_until_reset_whatever_the_time() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(SEC, 1, 1));
    breaker.force_open();
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
    assert_eq!(
        rejection(&breaker),
        Rejection::CircuitOpen {
            breaker: "db".into(),
            retry_after: None,
        }
    );
    advance(Duration::from_secs(3600)).await;
    assert_eq!(rejection(&breaker).retry_after(), None);
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    succeed(&breaker);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_breaker_lets_everything_through_and_records_nothing() {
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::consecutive_failures(2));
    fail(&breaker);
    breaker.disable();
    fail_n(&breaker, 100);
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Disabled);
    assert_eq!(metrics.failures, 1, "a disabled breaker counts nothing");

    // Reset starts a closed period with an empty window: the failure from before is gone.
    breaker.reset();
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn reset_closes_an_open_or_half_open_breaker_and_discards_its_probes() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(10 * SEC, 1, 1));
    fail(&breaker);
    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);

    fail(&breaker);
    advance(10 * SEC).await;
    let probe = breaker.try_acquire().unwrap();
    breaker.force_open();
    probe.record_success();
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
    breaker.reset();
    // The wait grows only on failed recoveries in a row; a reset starts the count over.
    fail(&breaker);
    assert_open_for(&breaker, 10 * SEC);
    assert_eq!(breaker.metrics().transitions, 7);
}
