//! Cancellation and panics: the breaker never wedges half-open, and only the body's own panic is a failure.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_permit_frees_its_slot_and_records_nothing() {
    let breaker = half_open(1, 1).await;
    for _ in 0..3 {
        let probe = breaker.try_acquire().expect("the slot is free again");
        assert!(probe.is_probe());
        drop(probe);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);
    }
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().ignored, 3);
}

/// A policy whose calls go through the breaker `db` and nothing else.
fn policy_on(registry: &Registry) -> Policy {
    Policy::builder("probe")
        .breaker("db")
        .build_in(registry)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn probes_cancelled_by_an_outer_timeout_select_or_abort_never_wedge_the_breaker() {
    let registry = Registry::new();
    // No max_half_open: nothing but the cancellation itself can free the probe slots.
    let breaker = declare(&registry, one_failure_opens(10 * SEC, 2, 2));
    let policy = policy_on(&registry);
    fail(&breaker);
    advance(10 * SEC).await;

    // Two hung probes, dropped by an outer timeout.
    let hang = || async { std::future::pending::<Result<(), TestError>>().await };
    let (first, second) = tokio::join!(
        tokio::time::timeout(SEC, policy.call(hang)),
        tokio::time::timeout(SEC, policy.call(hang)),
    );
    assert!(first.is_err() && second.is_err());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);

    // One lost in a `select!`.
    tokio::select! {
        _ = policy.call(hang) => unreachable!("the call never ends"),
        _ = tokio::time::sleep(SEC) => {}
    }
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);

    // One in an aborted task.
    let task = tokio::spawn({
        let policy = policy.clone();
        async move { policy.call(hang).await }
    });
    tokio::time::sleep(MS).await;
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);

    // The next callers are admitted as probes and close it.
    for _ in 0..2 {
        let ok: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
        assert_eq!(ok, Ok(()));
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(
        breaker.metrics().failures,
        1,
        "cancellations count as nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_counts_as_a_failed_probe() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(10 * SEC, 1, 1));
    fail(&breaker);
    advance(10 * SEC).await;
    let task = tokio::spawn({
        let breaker = breaker.clone();
        async move {
            let _probe = breaker.try_acquire().unwrap();
            tokio::time::sleep(MS).await;
            panic!("the dependency's client panicked");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_open_for(&breaker, 10 * SEC);
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);
    assert_eq!(breaker.metrics().failures, 2);
}

/// The policies a call can take through the breaker: the short path (breaker only) and the
/// step-wise one (an attempt timeout and retries).
fn policies_on(registry: &Registry) -> [Policy; 2] {
    let stepwise = Policy::builder("stepwise")
        .breaker("db")
        .timeout(60 * SEC)
        .retries(1)
        .build_in(registry)
        .unwrap();
    [policy_on(registry), stepwise]
}

/// A `join!` branch that panics drops the protected call beside it: that call was cancelled,
/// it did not fail, and the dependency must not be blamed.
#[tokio::test(start_paused = true)]
async fn a_sibling_branch_panicking_cancels_the_protected_call_without_a_failure() {
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::consecutive_failures(1));
    for policy in policies_on(&registry) {
        let task = tokio::spawn(async move {
            let hang = || async { std::future::pending::<Result<(), TestError>>().await };
            let sibling = async {
                tokio::time::sleep(MS).await;
                panic!("a sibling branch panicked");
            };
            tokio::join!(policy.call(hang), sibling)
        });
        assert!(task.await.unwrap_err().is_panic());
    }
    // A permit driven by hand through `BreakerPermit::run`, dropped by a panicking sibling.
    let task = tokio::spawn({
        let breaker = breaker.clone();
        async move {
            let mut permit = breaker.try_acquire().unwrap();
            let sibling = async {
                tokio::time::sleep(MS).await;
                panic!("a sibling branch panicked");
            };
            tokio::join!(permit.run(std::future::pending::<()>()), sibling)
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    let metrics = breaker.metrics();
    assert_eq!(metrics.failures, 0, "a cancelled call is no failure");
    assert_eq!(metrics.ignored, 3);
    assert_eq!(metrics.state, BreakerState::Closed);
}

#[resilient::resilient(breaker = "breaker_rs_sibling_panic")]
async fn hang_once() -> Result<(), TestError> {
    std::future::pending().await
}

#[resilient::resilient(breaker = "breaker_rs_sibling_panic", retries = 1)]
async fn hang_with_retries() -> Result<(), TestError> {
    std::future::pending().await
}

/// The same through `#[resilient]`, whose single-attempt and retrying expansions poll the body
/// on two different paths.
#[tokio::test(start_paused = true)]
async fn a_sibling_branch_panicking_beside_an_annotated_call_records_no_failure() {
    let breaker = resilient::registry()
        .declare_breaker(
            "breaker_rs_sibling_panic",
            BreakerConfig::consecutive_failures(1),
        )
        .unwrap();
    for retries in [false, true] {
        let task = tokio::spawn(async move {
            let call = async {
                if retries {
                    hang_with_retries().await
                } else {
                    hang_once().await
                }
            };
            let sibling = async {
                tokio::time::sleep(MS).await;
                panic!("a sibling branch panicked");
            };
            tokio::join!(call, sibling)
        });
        assert!(task.await.unwrap_err().is_panic());
    }
    let metrics = breaker.metrics();
    assert_eq!((metrics.failures, metrics.ignored), (0, 2));
    assert_eq!(metrics.state, BreakerState::Closed);
}

/// The call's own panic still counts against the dependency, on every path: the short one, the
/// step-wise one and a permit driven by hand through `BreakerPermit::run`.
#[tokio::test(start_paused = true)]
async fn a_protected_call_that_panics_itself_records_a_failure() {
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::consecutive_failures(3));
    for policy in policies_on(&registry) {
        let task = tokio::spawn(async move {
            let boom = || async {
                tokio::time::sleep(MS).await;
                panic!("the dependency's client panicked");
            };
            let result: Result<(), TestError> = policy.call(boom).await;
            result
        });
        assert!(task.await.unwrap_err().is_panic());
    }
    let task = tokio::spawn({
        let breaker = breaker.clone();
        async move {
            let mut permit = breaker.try_acquire().unwrap();
            permit
                .run(async {
                    tokio::time::sleep(MS).await;
                    panic!("the dependency's client panicked");
                })
                .await
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    let metrics = breaker.metrics();
    assert_eq!(metrics.failures, 3);
    assert_eq!(metrics.state, BreakerState::Open);
}

#[test]
fn a_panic_unwinding_through_block_on_counts_as_a_failure() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _runtime = runtime.enter();
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::consecutive_failures(1));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let _permit = breaker.try_acquire().unwrap();
            tokio::time::sleep(MS).await;
            panic!("boom");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(breaker.state(), BreakerState::Open);
}

// ---------------------------------------------------------------------------------------------
// Configuration errors: each names the breaker, the field and the value
// ---------------------------------------------------------------------------------------------

#[test]
fn every_invalid_breaker_field_is_a_config_error_naming_the_breaker() {
    let base = BreakerConfig::default;
    let rate = |threshold, window, minimum| BreakerConfig::failure_rate(threshold, window, minimum);
    let cases: Vec<(BreakerConfig, &str, &str)> = vec![
        (
            BreakerConfig::consecutive_failures(0),
            "consecutive_failures",
            "0",
        ),
        (BreakerConfig::failure_count(0, SEC), "failure_count", "0"),
        (
            BreakerConfig::failure_count(5, 19 * MS),
            "failure_count_window",
            "19ms",
        ),
        (
            BreakerConfig::failure_count(5, Duration::from_secs(24 * 3600 + 1)),
            "failure_count_window",
            "86401s",
        ),
        (
            rate(0.0, SlidingWindow::Calls(10), 5),
            "failure_rate_threshold",
            "0.0",
        ),
        (
            rate(1.5, SlidingWindow::Calls(10), 5),
            "failure_rate_threshold",
            "1.5",
        ),
        (
            rate(-0.5, SlidingWindow::Calls(10), 5),
            "failure_rate_threshold",
            "-0.5",
        ),
        (
            rate(f64::NAN, SlidingWindow::Calls(10), 5),
            "failure_rate_threshold",
            "NaN",
        ),
        (
            rate(0.5, SlidingWindow::Calls(0), 1),
            "sliding_window_size",
            "0",
        ),
        (
            rate(0.5, SlidingWindow::Calls(1_000_001), 1),
            "sliding_window_size",
            "1000001",
        ),
        (
            rate(0.5, SlidingWindow::Calls(10), 11),
            "minimum_calls",
            "11",
        ),
        (rate(0.5, SlidingWindow::Calls(10), 0), "minimum_calls", "0"),
        (rate(0.5, SlidingWindow::Time(SEC), 0), "minimum_calls", "0"),
        (
            rate(0.5, SlidingWindow::Time(10 * MS), 1),
            "sliding_window_duration",
            "10ms",
        ),
        (
            BreakerConfig::consecutive_failures(3).with_slow_calls(SEC, 0.5),
            "slow_call_duration",
            "1s",
        ),
        (
            base().with_slow_calls(Duration::ZERO, 0.5),
            "slow_call_duration",
            "0ns",
        ),
        (
            base().with_slow_calls(SEC, 0.0),
            "slow_call_rate_threshold",
            "0.0",
        ),
        (
            base().with_slow_calls(SEC, 1.01),
            "slow_call_rate_threshold",
            "1.01",
        ),
        (base().with_open_wait(Duration::ZERO), "open_wait", "0ns"),
        (
            base().with_open_wait_growth(0.5, 600 * SEC),
            "open_wait_multiplier",
            "0.5",
        ),
        (
            base().with_open_wait_growth(f64::INFINITY, 600 * SEC),
            "open_wait_multiplier",
            "inf",
        ),
        (
            base()
                .with_open_wait(60 * SEC)
                .with_open_wait_growth(2.0, 30 * SEC),
            "max_open_wait",
            "30s",
        ),
        (base().with_half_open(0, 0), "half_open_probes", "0"),
        (base().with_half_open(4096, 1), "half_open_probes", "4096"),
        (base().with_half_open(3, 0), "half_open_successes", "0"),
        (base().with_half_open(2, 3), "half_open_successes", "3"),
        (
            base().with_max_half_open(Some(Duration::ZERO)),
            "max_half_open",
            "0ns",
        ),
    ];
    for (config, field, value) in cases {
        let registry = Registry::new();
        let err = registry
            .declare_breaker("payments", config.clone())
            .expect_err(field);
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(err.value(), value, "{err}");
        assert_eq!(err.subject(), "circuit breaker \"payments\"");
        assert!(err.to_string().contains("payments"), "{err}");
        assert!(err.to_string().contains(field), "{err}");
        assert!(registry.get_breaker("payments").is_none(), "{field}");
        assert_eq!(CircuitBreaker::new("payments", config).unwrap_err(), err);
    }
}

#[test]
fn the_limits_themselves_are_valid() {
    let valid = [
        BreakerConfig::failure_count(1, 20 * MS),
        BreakerConfig::failure_count(1, Duration::from_secs(24 * 3600)),
        BreakerConfig::failure_rate(1.0, SlidingWindow::Calls(1_000_000), 1_000_000),
        BreakerConfig::default().with_half_open(4095, 4095),
        BreakerConfig::default().with_trip(TripPolicy::ConsecutiveFailures(1)),
    ];
    for config in valid {
        assert_eq!(config.validate("x"), Ok(()), "{config:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_reconfiguration_leaves_the_live_breaker_as_it_was() {
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::consecutive_failures(2));
    fail(&breaker);
    let err = breaker
        .reconfigure(BreakerConfig::consecutive_failures(0))
        .unwrap_err();
    assert_eq!(err.field(), "consecutive_failures");
    assert_eq!(breaker.config().trip(), TripPolicy::ConsecutiveFailures(2));
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}
