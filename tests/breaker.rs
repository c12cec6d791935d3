//! Every transition of the circuit breaker, driven by hand through permits on tokio's paused
//! clock: trip policies, open wait, half-open probing, manual states, stale generations,
//! cancellation and panics.

mod common;

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

// ---------------------------------------------------------------------------------------------
// Closed → Open, by each trip policy
// ---------------------------------------------------------------------------------------------

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

/// Runs one call that succeeds after `took` on the paused clock.
async fn slow_success(breaker: &CircuitBreaker, took: Duration) {
    let permit = breaker.try_acquire().expect("admitted");
    advance(took).await;
    permit.record_success();
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

// ---------------------------------------------------------------------------------------------
// Open → HalfOpen → Closed / Open
// ---------------------------------------------------------------------------------------------

fn one_failure_opens(wait: Duration, probes: u32, successes: u32) -> BreakerConfig {
    BreakerConfig::consecutive_failures(1)
        .with_open_wait(wait)
        .with_half_open(probes, successes)
        .with_max_half_open(None)
}

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
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(SEC, 3, 3));
    fail(&breaker);
    advance(SEC).await;
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

// ---------------------------------------------------------------------------------------------
// Generations: outcomes of calls that began under an earlier state are discarded
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Manual states
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Cancellation and panics: the breaker never wedges half-open
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_permit_frees_its_slot_and_records_nothing() {
    let registry = Registry::new();
    let breaker = declare(&registry, one_failure_opens(SEC, 1, 1));
    fail(&breaker);
    advance(SEC).await;
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
