//! Open → HalfOpen → Closed or Open: the open wait, probes, and their limits.

use super::*;

#[tokio::test(start_paused = true)]
async fn after_the_open_wait_the_first_caller_becomes_a_probe() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(10 * SEC, 2, 2));
    fail(&breaker);
    advance(10 * SEC - MS).await;
    assert_open_for(&breaker, MS);
    advance(MS).await;
    // Nothing moves the breaker but a caller.
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().retry_after, Some(Duration::ZERO));

    let first = breaker.try_acquire().expect("the first caller probes");
    assert!(first.is_probe());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let second = breaker.try_acquire().expect("a second probe slot");
    assert!(second.is_probe());
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 2);
    assert_eq!(
        rejection(&breaker),
        Rejection::HalfOpenFull {
            breaker: "db".into()
        }
    );

    // A successful probe frees its slot for the next caller.
    first.record_success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let third = breaker.try_acquire().expect("the freed slot");
    assert!(third.is_probe());
    second.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    // A probe of the half-open period that just ended changes nothing.
    third.record_failure();
    assert_eq!(breaker.state(), BreakerState::Closed);
    let permit = breaker.try_acquire().unwrap();
    assert!(!permit.is_probe());
}

#[tokio::test(start_paused = true)]
async fn it_closes_only_after_the_required_number_of_successful_probes() {
    let breaker = half_open(3, 3).await;
    for _ in 0..2 {
        succeed(&breaker);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The closed breaker starts with an empty window.
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_it_and_other_probes_of_that_period_are_discarded() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(10 * SEC, 2, 2));
    fail(&breaker);
    advance(10 * SEC).await;
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    first.record_failure();
    assert_open_for(&breaker, 10 * SEC);
    second.record_success();
    assert_open_for(&breaker, 10 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_counts_as_a_failed_probe() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(4), 1)
            .with_slow_calls(SEC, 1.0)
            .with_open_wait(10 * SEC)
            .with_half_open(1, 1),
    );
    fail(&breaker);
    advance(10 * SEC).await;
    slow_success(&breaker, SEC).await;
    assert_open_for(&breaker, 10 * SEC);

    advance(10 * SEC).await;
    slow_success(&breaker, SEC - MS).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_half_open_past_max_half_open_reopens_on_the_next_admission() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::consecutive_failures(1)
            .with_open_wait(10 * SEC)
            .with_open_wait_growth(2.0, 100 * SEC)
            .with_half_open(1, 1)
            .with_max_half_open(Some(5 * SEC)),
    );
    fail(&breaker);
    advance(10 * SEC).await;
    let hung = breaker.try_acquire().expect("probe");
    advance(5 * SEC - MS).await;
    assert!(matches!(
        rejection(&breaker),
        Rejection::HalfOpenFull { .. }
    ));
    advance(MS).await;
    // It reopens as a failed recovery: the wait doubles.
    assert_open_for(&breaker, 20 * SEC);
    // The hung probe finally answers; its half-open period is over.
    hung.record_success();
    assert_open_for(&breaker, 20 * SEC);
}

#[tokio::test(start_paused = true)]
async fn the_open_wait_grows_on_each_failed_recovery_up_to_its_cap_and_resets_on_close() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        one_failure_opens(10 * SEC, 1, 1).with_open_wait_growth(2.0, 60 * SEC),
    );
    fail(&breaker);
    let mut wait = 10 * SEC;
    for next in [20, 40, 60, 60, 60] {
        advance(wait - MS).await;
        assert_open_for(&breaker, MS);
        advance(MS).await;
        fail(&breaker); // the probe fails
        wait = next * SEC;
        assert_open_for(&breaker, wait);
    }
    advance(wait).await;
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    assert_open_for(&breaker, 10 * SEC);
}

#[test]
fn the_probe_limit_holds_under_concurrent_callers() {
    const CALLERS: usize = 12;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    // Every clock reading, here and in the threads, must be the runtime's paused clock.
    let _runtime = runtime.enter();
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(SEC, 3, 3));
    for round in 0..25 {
        fail(&breaker);
        runtime.block_on(advance(SEC));
        let barrier = Arc::new(Barrier::new(CALLERS));
        let outcomes: Vec<Result<bool, Rejection>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let (handle, barrier, breaker) =
                        (runtime.handle().clone(), barrier.clone(), &breaker);
                    scope.spawn(move || {
                        // The breaker reads tokio's paused clock, which needs the runtime.
                        let _runtime = handle.enter();
                        let permit = breaker.try_acquire();
                        // Every caller asks while the admitted ones still hold their slots.
                        barrier.wait();
                        permit.map(|permit| {
                            let probe = permit.is_probe();
                            permit.record_success();
                            probe
                        })
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let probes = outcomes.iter().filter(|o| o == &&Ok(true)).count();
        let full = outcomes
            .iter()
            .filter(|o| matches!(o, Err(Rejection::HalfOpenFull { .. })))
            .count();
        assert_eq!(
            (probes, full),
            (3, CALLERS - 3),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(breaker.state(), BreakerState::Closed, "round {round}");
    }
}
