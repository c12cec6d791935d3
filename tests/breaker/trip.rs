//! Closed → Open, by each trip policy, and the rule for when a window is judged.

use super::*;

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_it_and_a_success_starts_the_count_over() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::consecutive_failures(3).with_open_wait(10 * SEC),
    );
    fail_n(&breaker, 2);
    succeed(&breaker);
    fail_n(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);

    fail(&breaker);
    assert_eq!(
        rejection(&breaker),
        Rejection::CircuitOpen {
            breaker: "db".into(),
            retry_after: Some(10 * SEC),
        }
    );
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 5);
    assert_eq!(metrics.rejected, 1);
    assert_eq!(metrics.transitions, 1);
    assert_eq!(metrics.retry_after, Some(10 * SEC));
}

#[tokio::test(start_paused = true)]
async fn ignored_errors_neither_count_nor_break_a_run_of_failures() {
    #[derive(Debug)]
    struct NotFound;
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::consecutive_failures(3).with_failure_predicate(|_: &NotFound| false),
    );
    fail_n(&breaker, 2);
    for _ in 0..50 {
        breaker.try_acquire().unwrap().record_error(&NotFound);
    }
    breaker.try_acquire().unwrap().record_ignored();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().ignored, 51);

    // Errors of other types count.
    breaker
        .try_acquire()
        .unwrap()
        .record_error(&TestError::Down(1));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_count_counts_only_the_failures_of_the_last_window() {
    let registry = Registry::new();
    let breaker = declare(&registry, BreakerConfig::failure_count(3, 10 * SEC));
    fail(&breaker); // t = 0
    advance(5 * SEC).await;
    fail(&breaker); // t = 5 s
    // Successes, however many, neither help nor hurt.
    succeed_n(&breaker, 100);
    advance(5 * SEC - MS).await;
    assert_eq!(breaker.metrics().failures_in_window, 2);
    advance(MS).await;
    // t = 10 s: the failure at t = 0 has left the window.
    assert_eq!(breaker.metrics().failures_in_window, 1);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);

    advance(SEC).await;
    fail(&breaker); // failures at 5 s, 10 s and 11 s
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_count_window_slides_so_old_successes_cannot_hide_new_failures() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 10),
    );
    succeed_n(&breaker, 100);
    fail_n(&breaker, 4);
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Closed);
    assert_eq!(
        (metrics.calls_in_window, metrics.failures_in_window),
        (10, 4)
    );

    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_drops_outcomes_older_than_the_window() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(10 * SEC), 4),
    );
    // Buckets are 500 ms wide: a call at 0.25 s sits in the first bucket and leaves the window
    // when that bucket does, at 10 s.
    advance(250 * MS).await;
    succeed_n(&breaker, 3);
    advance(9750 * MS - MS).await;
    assert_eq!(breaker.metrics().calls_in_window, 3);
    advance(MS).await;
    assert_eq!(breaker.metrics().calls_in_window, 0);

    // Had the three successes stayed, 2 failures in 7 calls would not trip it.
    fail(&breaker);
    succeed_n(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_judges_the_rate_of_the_calls_still_inside_it() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(SEC), 2),
    );
    // One failure among three successes every 100 ms: 25 %, never enough. (The successes come
    // first: a failure then a success would be 50 % of the minimum of 2 calls.)
    for _ in 0..30 {
        succeed_n(&breaker, 3);
        fail(&breaker);
        advance(100 * MS).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    // At 3 s, with 50 ms buckets, the rounds of 2.1 s to 2.9 s are still inside the window.
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.calls_in_window, metrics.failures_in_window),
        (36, 9)
    );
    // 9 + 17 failures of 36 + 17 calls is 49 %; one more is 50 %.
    fail_n(&breaker, 17);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_rate_is_not_judged_before_the_minimum_number_of_calls() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 5),
    );
    fail_n(&breaker, 4);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().failure_rate, 1.0);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// The window is judged after every outcome once it holds `minimum_calls`, successes included
/// (MicroProfile Fault Tolerance, resilience4j): the success that brings it to its minimum trips
/// a window whose rate is already at the threshold.
#[tokio::test(start_paused = true)]
async fn the_success_that_completes_the_minimum_trips_a_window_over_the_threshold() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(5), 5),
    );
    fail_n(&breaker, 3);
    succeed(&breaker);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "4 calls: below the minimum"
    );
    succeed(&breaker);
    let metrics = breaker.metrics();
    assert_eq!(
        metrics.state,
        BreakerState::Open,
        "3 failures of 5 calls: 60 %"
    );
    assert_eq!(metrics.transitions, 1);
}

/// The TCK's rolling-window case: window 4, minimum 4, ratio 0.5; S, F, F, S, and the fifth
/// call is rejected.
#[tokio::test(start_paused = true)]
async fn tck_rolling_window_success_failure_failure_success_rejects_the_fifth_call() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(4), 4),
    );
    succeed(&breaker);
    fail_n(&breaker, 2);
    succeed(&breaker);
    assert!(matches!(rejection(&breaker), Rejection::CircuitOpen { .. }));
}

/// The TCK's rolling-window case at ratio 0.75: F, F, F, S, and the fifth call is rejected.
#[tokio::test(start_paused = true)]
async fn tck_rolling_window_three_failures_then_a_success_reject_the_fifth_call_at_75_percent() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.75, SlidingWindow::Calls(4), 4),
    );
    fail_n(&breaker, 3);
    succeed(&breaker);
    assert!(matches!(rejection(&breaker), Rejection::CircuitOpen { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_time_window_trips_on_the_success_that_completes_the_minimum() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(10 * SEC), 5),
    );
    fail_n(&breaker, 3);
    succeed(&breaker);
    advance(SEC).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// In a time window the rate also rises when old successes leave it: the next success is judged
/// against what is left.
#[tokio::test(start_paused = true)]
async fn a_time_window_trips_on_a_success_once_older_successes_have_left_it() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(10 * SEC), 3),
    );
    succeed_n(&breaker, 4);
    advance(5 * SEC).await;
    fail_n(&breaker, 2); // 2 of 6: 33 %
    assert_eq!(breaker.state(), BreakerState::Closed);
    advance(5 * SEC).await; // the four successes leave the window
    succeed(&breaker); // 2 of 3: 67 %
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_fast_success_that_completes_the_minimum_trips_the_slow_call_rate() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 4).with_slow_calls(SEC, 0.5),
    );
    slow_success(&breaker, SEC).await;
    slow_success(&breaker, SEC).await;
    succeed(&breaker);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "3 calls: below the minimum"
    );
    succeed(&breaker); // 2 slow of 4: 50 %
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 0, "every call succeeded");
}

/// A guard for the rule above: a rate below the threshold never trips, however many successes
/// are judged, in a count window and in a time window.
#[tokio::test(start_paused = true)]
async fn a_window_below_the_threshold_stays_closed_as_successes_are_judged() {
    for window in [SlidingWindow::Calls(5), SlidingWindow::Time(10 * SEC)] {
        let registry = Registry::new();
        let breaker = declare(&registry, BreakerConfig::failure_rate(0.5, window, 5));
        fail_n(&breaker, 2);
        succeed_n(&breaker, 3); // 2 of 5: 40 %
        let metrics = breaker.metrics();
        assert_eq!(
            (metrics.state, metrics.calls_in_window),
            (BreakerState::Closed, 5),
            "{window:?}"
        );
        succeed_n(&breaker, 10);
        assert_eq!(breaker.state(), BreakerState::Closed, "{window:?}");
    }
}

/// Lowering a threshold below the window's rate trips the breaker at once, so that no closed
/// breaker holds a window its own thresholds condemn.
#[tokio::test(start_paused = true)]
async fn lowering_the_threshold_below_the_windows_rate_trips_the_breaker() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.6, SlidingWindow::Calls(10), 4),
    );
    fail_n(&breaker, 2);
    succeed_n(&breaker, 2); // 50 %
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker
        .reconfigure(BreakerConfig::failure_rate(
            0.4,
            SlidingWindow::Calls(10),
            4,
        ))
        .unwrap();
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_rate_exactly_at_the_threshold_trips() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.25, SlidingWindow::Calls(4), 4),
    );
    succeed_n(&breaker, 3);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_successful_calls_trip_the_slow_call_rate() {
    let capture = Capture::start();
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 4).with_slow_calls(SEC, 0.5),
    );
    succeed_n(&breaker, 2);
    slow_success(&breaker, SEC).await; // 1 slow of 3: below the minimum
    slow_success(&breaker, SEC - MS).await; // just under the slow-call duration: fast
    slow_success(&breaker, 2 * SEC).await; // 2 slow of 5
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Closed);
    assert_eq!(
        (metrics.calls_in_window, metrics.slow_calls_in_window),
        (5, 2)
    );

    slow_success(&breaker, SEC).await; // 3 slow of 6: 50 %
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 0, "every call succeeded");
    let opened: Vec<_> = capture
        .warnings()
        .into_iter()
        .filter(|event| event.target == "resilient::breaker")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(
        opened[0]
            .text
            .contains("slow-call rate 50% ≥ 50% over the last 6 calls"),
        "{opened:?}"
    );
}
