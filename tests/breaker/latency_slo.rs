//! The latency-objective trip (`p99 < 300ms`), judged over the sliding window on the paused
//! clock.

use super::*;

const LIMIT: Duration = Duration::from_millis(300);

fn opened_reasons(capture: &Capture) -> Vec<String> {
    capture
        .warnings()
        .into_iter()
        .filter(|event| event.target == "resilient::breaker")
        .map(|event| event.text)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_p90_reaching_its_limit_opens_a_count_window() {
    let capture = Capture::start();
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 10).with_latency_slo(0.9, LIMIT),
    );
    succeed_n(&breaker, 8);
    slow_success(&breaker, 2 * LIMIT).await;
    slow_success(&breaker, LIMIT - MS).await; // just under the limit: fast
    // 10 calls, one at or above the limit: the p90 (9th of 10) is under it.
    assert_eq!(breaker.state(), BreakerState::Closed);
    // A call of exactly the limit counts against it: 2 of the last 10, the p90 reaches it.
    slow_success(&breaker, LIMIT).await;
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, BreakerState::Open);
    assert_eq!(metrics.failures, 0, "every call succeeded");
    let opened = opened_reasons(&capture);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(
        opened[0].contains("p90 latency ≥ 300ms over the last 10 calls (2 took at least 300ms)"),
        "{opened:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_p99_is_judged_from_minimum_calls_over_a_time_window() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(10 * SEC), 100)
            .with_latency_slo(0.99, LIMIT),
    );
    slow_success(&breaker, LIMIT).await;
    slow_success(&breaker, LIMIT).await;
    succeed_n(&breaker, 97);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "99 calls: below the minimum"
    );
    succeed(&breaker); // 2 of 100 at the limit: more than 1 %, the p99 reaches it
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_leaving_the_window_bring_the_p99_back_under_its_limit() {
    let registry = Registry::new();
    let breaker = declare(
        &registry,
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(100), 100)
            .with_latency_slo(0.99, LIMIT),
    );
    slow_success(&breaker, LIMIT).await;
    succeed_n(&breaker, 99);
    // One call in 100 at the limit is 1 %, not more: the p99 (99th of 100) is under it.
    assert_eq!(breaker.state(), BreakerState::Closed);
    slow_success(&breaker, LIMIT).await; // the first slow call left, this one came in
    assert_eq!(breaker.state(), BreakerState::Closed);
    slow_success(&breaker, LIMIT).await; // 2 of the last 100
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn an_objective_without_a_rate_window_or_out_of_range_is_refused() {
    let registry = Registry::new();
    for (config, field) in [
        (
            BreakerConfig::consecutive_failures(3).with_latency_slo(0.99, LIMIT),
            "latency_slo",
        ),
        (
            BreakerConfig::default().with_latency_slo(1.0, LIMIT),
            "latency_slo",
        ),
        (
            BreakerConfig::default().with_latency_slo(0.0, LIMIT),
            "latency_slo",
        ),
        (
            BreakerConfig::default().with_latency_slo(f64::NAN, LIMIT),
            "latency_slo",
        ),
        (
            BreakerConfig::default().with_latency_slo(0.99, Duration::ZERO),
            "latency_slo",
        ),
        (
            BreakerConfig::default()
                .with_slow_calls(SEC, 0.5)
                .with_latency_slo(0.99, LIMIT),
            "latency_slo",
        ),
    ] {
        let error = registry
            .declare_breaker("slo", config)
            .expect_err("refused");
        assert!(error.to_string().contains(field), "{error}");
    }
    // With slow calls of the same duration, both judge.
    registry
        .declare_breaker(
            "both",
            BreakerConfig::default()
                .with_slow_calls(LIMIT, 0.5)
                .with_latency_slo(0.99, LIMIT),
        )
        .expect("valid");
}
