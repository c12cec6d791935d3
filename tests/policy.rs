//! A policy's layers working together, in their fixed order: total timeout → retry → circuit
//! breaker → bulkhead → attempt timeout → the call. Plus the step-wise driver, panics,
//! concurrency and the timeout configuration.

mod common;

use std::time::Duration;

use common::*;
use resilient::policy::Next;
use resilient::{
    BreakerConfig, BreakerState, BulkheadConfig, Policy, Registry, Rejection, SlidingWindow,
    TimeoutConfig, TimeoutKind,
};
use tokio::time::{Instant, sleep};

async fn fail_at(attempts: Attempts) -> Result<(), TestError> {
    let n = attempts.start();
    Err(TestError::Down(n))
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_every_attempt_not_every_call() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(3))
        .unwrap();
    let policy = Policy::builder("fetch")
        .retries(2)
        .backoff(resilient::Backoff::constant(MS))
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let result = policy.call(|| fail_at(attempts.clone())).await;
    assert_eq!(result, Err(TestError::Down(3)));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_ends_the_call_at_once_and_is_no_breaker_failure() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(1))
        .unwrap();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("fetch")
        .retries(3)
        .backoff(resilient::Backoff::constant(SEC))
        .breaker("db")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| fail_at(attempts.clone())).await;
    assert_eq!(
        result.unwrap_err().rejection(),
        Some(&Rejection::BulkheadFull {
            bulkhead: "db".into(),
            max_concurrent: 1
        })
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(attempts.count(), 0, "the refused attempt never ran");
    let metrics = breaker.metrics();
    assert_eq!((metrics.state, metrics.failures), (BreakerState::Closed, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_frees_the_probe_slot_it_was_given() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(1)
                .with_open_wait(SEC)
                .with_half_open(1, 1)
                .with_max_half_open(None),
        )
        .unwrap();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    fail(&breaker);
    sleep(SEC).await;
    let held = bulkhead.try_acquire().unwrap();
    let result: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert!(matches!(
        result,
        Err(TestError::Rejected(Rejection::BulkheadFull { .. }))
    ));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.metrics().half_open_probes_in_flight, 0);
    drop(held);
    let result: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert_eq!(result, Ok(()));
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn retry_on_rejection_backs_off_until_the_bulkhead_has_room() {
    let registry = Registry::new();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("fetch")
        .retries(3)
        .backoff(resilient::Backoff::constant(SEC))
        .bulkhead("db")
        .retry_on_rejection(true)
        .build_in(&registry)
        .unwrap();
    let holder = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            let _held = bulkhead.acquire().await.unwrap();
            sleep(1500 * MS).await;
        }
    });
    sleep(MS).await;
    let attempts = Attempts::default();
    let started = Instant::now();
    let result: Result<u32, TestError> = policy
        .call(|| {
            let attempts = attempts.clone();
            async move { Ok(attempts.start()) }
        })
        .await;
    // Refused at 0 and 1 s, admitted at 2 s: the only attempt that ran.
    assert_eq!(result, Ok(1));
    assert_eq!(started.elapsed(), 2 * SEC);
    holder.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_covers_waiting_for_a_bulkhead_slot() {
    let registry = Registry::new();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1).with_max_wait(10 * SEC))
        .unwrap();
    let policy = Policy::builder("fetch")
        .total_timeout(SEC)
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let started = Instant::now();
    let result: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert_eq!(
        result.unwrap_err().rejection(),
        Some(&Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: SEC
        })
    );
    assert_eq!(started.elapsed(), SEC);
    assert_eq!(bulkhead.metrics().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_of_a_half_open_breaker_get_only_its_probe_slots() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(1)
                .with_open_wait(SEC)
                .with_half_open(3, 3),
        )
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    fail(&breaker);
    sleep(SEC).await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                policy
                    .call(|| async {
                        sleep(SEC).await;
                        Ok::<_, TestError>(())
                    })
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let probes = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(TestError::Rejected(Rejection::HalfOpenFull { .. }))))
        .count();
    assert_eq!((probes, refused), (3, 7));
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn slow_successes_through_a_policy_trip_a_slow_call_breaker() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::failure_rate(1.0, SlidingWindow::Calls(4), 4).with_slow_calls(SEC, 0.5),
        )
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    for took in [MS, MS, 2 * SEC, SEC] {
        let result: Result<(), TestError> = policy
            .call(|| async move {
                sleep(took).await;
                Ok(())
            })
            .await;
        assert_eq!(result, Ok(()));
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_queued_in_the_bulkhead_is_not_the_dependencys_latency() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            // Only two slow calls of two trip it: the window must stay closed to be read.
            BreakerConfig::failure_rate(1.0, SlidingWindow::Calls(2), 2).with_slow_calls(SEC, 1.0),
        )
        .unwrap();
    registry
        .declare_bulkhead("db", BulkheadConfig::new(1).with_max_wait(10 * SEC))
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    // The first call holds the only slot for 2 s; the second queues behind it, then answers
    // in 1 ms. Only the first call is slow; timed from its admission by the breaker, the
    // second would be too.
    let first = policy.call(|| async {
        sleep(2 * SEC).await;
        Ok::<(), TestError>(())
    });
    let second = policy.call(|| async {
        sleep(MS).await;
        Ok::<(), TestError>(())
    });
    let (first, second) = tokio::join!(first, second);
    assert_eq!((first, second), (Ok(()), Ok(())));
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.calls_in_window, metrics.slow_calls_in_window),
        (2, 1),
        "{metrics:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_the_breaker_predicate_excuses_are_neither_failures_nor_successes() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(2)
                .with_failure_predicate(|error: &TestError| !matches!(error, TestError::Fatal)),
        )
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let down = || async { Err::<(), _>(TestError::Down(1)) };
    let not_found = || async { Err::<(), _>(TestError::Fatal) };
    let _ = policy.call(down).await;
    for _ in 0..100 {
        let _ = policy.call(not_found).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let _ = policy.call(down).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().ignored, 100);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_call_counts_releases_everything_and_propagates() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(1))
        .unwrap();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("fetch")
        .retries(3)
        .breaker("db")
        .bulkhead("db")
        .timeout(SEC)
        .build_in(&registry)
        .unwrap();
    let task = tokio::spawn({
        let policy = policy.clone();
        async move {
            policy
                .call(|| async {
                    sleep(MS).await;
                    if true {
                        panic!("the client panicked");
                    }
                    Ok::<(), TestError>(())
                })
                .await
        }
    });
    let panic = task.await.unwrap_err().into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the client panicked"));
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().failures, 1);
    assert_eq!(bulkhead.metrics().in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_cancelled_during_its_backoff_releases_its_retry_budget() {
    let registry = Registry::new();
    let policy = Policy::builder("fetch")
        .retries(3)
        .backoff(resilient::Backoff::constant(SEC))
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let cut = tokio::time::timeout(500 * MS, policy.call(|| fail_at(attempts.clone()))).await;
    assert!(cut.is_err());
    assert_eq!(attempts.count(), 1);
    let budget = registry.retry_budget("fetch", Default::default()).unwrap();
    assert_eq!(budget.in_flight(), (0, 0));
}

async fn fetch(counter: &mut u32) -> Result<u32, TestError> {
    *counter += 1;
    if *counter < 3 {
        Err(TestError::Down(*counter))
    } else {
        Ok(*counter)
    }
}

/// What `#[resilient]` expands to: a plain loop in the function body, each attempt borrowing
/// the caller's data mutably.
async fn fetch_resiliently(policy: &Policy, counter: &mut u32) -> Result<u32, TestError> {
    let mut execution = policy.execution();
    loop {
        let attempt = execution.attempt(fetch(counter)).await;
        match execution.next(attempt, |e| policy.classify(e)).await {
            Next::Return(result) => break result,
            Next::Retry => {}
        }
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test(start_paused = true)]
async fn the_step_wise_driver_lets_attempts_borrow_mutably_and_stays_send() {
    let registry = Registry::new();
    let policy = Policy::builder("fetch")
        .retries(5)
        .backoff(resilient::Backoff::constant(10 * MS))
        .breaker("db")
        .bulkhead("db")
        .timeout(SEC)
        .total_timeout(10 * SEC)
        .build_in(&registry)
        .unwrap();
    let mut counter = 0;
    let started = Instant::now();
    let result = assert_send(fetch_resiliently(&policy, &mut counter)).await;
    assert_eq!(result, Ok(3));
    assert_eq!(counter, 3);
    assert_eq!(started.elapsed(), 20 * MS);

    // A spawned task may run it too.
    let task = tokio::spawn(async move {
        let mut counter = 0;
        fetch_resiliently(&policy, &mut counter).await
    });
    assert_eq!(task.await.unwrap(), Ok(3));
}

#[test]
fn every_invalid_timeout_is_a_config_error_naming_the_policy() {
    let cases = [
        (
            Policy::builder("fetch").timeout(Duration::ZERO),
            "timeout",
            "0ns",
        ),
        (
            Policy::builder("fetch").total_timeout(Duration::ZERO),
            "total_timeout",
            "0ns",
        ),
        (
            Policy::builder("fetch")
                .timeout(3 * SEC)
                .total_timeout(2 * SEC),
            "timeout",
            "3s",
        ),
    ];
    for (builder, field, value) in cases {
        let err = builder.build_in(&Registry::new()).unwrap_err();
        assert_eq!((err.field(), err.value()), (field, value), "{err}");
        assert!(err.to_string().contains("policy \"fetch\""), "{err}");
    }
    // An attempt may use the whole total.
    let equal = TimeoutConfig {
        attempt: Some(SEC),
        total: Some(SEC),
    };
    assert_eq!(equal.validate("p"), Ok(()));
}
