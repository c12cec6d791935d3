//! Retries: attempt counts, backoff measured on the paused clock, jitter bounds, the retry
//! budget, the total timeout, which errors are retried, and how retries meet the breaker, the
//! bulkhead and the attempt timeout.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use resilient::policy::Next;
use resilient::retry::BudgetConfig;
use resilient::{
    Backoff, BreakerConfig, BreakerState, BulkheadConfig, Classification, Jitter, Policy,
    PolicyBuilder, Registry, Rejection, RetryConfig, TimeoutKind,
};
use tokio::time::{Instant, sleep};

const MINUTE: Duration = Duration::from_secs(60);

async fn always_fail(attempts: Attempts) -> Result<(), TestError> {
    let n = attempts.start();
    Err(TestError::Down(n))
}

async fn succeed_from(attempts: Attempts, first_success: u32) -> Result<u32, TestError> {
    let n = attempts.start();
    if n >= first_success {
        Ok(n)
    } else {
        Err(TestError::Down(n))
    }
}

async fn hang(attempts: Attempts) -> Result<(), TestError> {
    attempts.start();
    std::future::pending().await
}

fn constant(delay: Duration) -> Backoff {
    Backoff::constant(delay)
}

/// The policy most tests here start from: `retries` retries, waiting `backoff` before each.
fn fetch(retries: u32, backoff: Backoff) -> PolicyBuilder {
    Policy::builder("fetch").retries(retries).backoff(backoff)
}

#[tokio::test(start_paused = true)]
async fn retries_are_attempts_after_the_first_and_the_last_error_comes_back() {
    for retries in [0, 1, 3] {
        let policy = build(fetch(retries, constant(10 * MS)));
        let attempts = Attempts::default();
        let result = policy.call(|| always_fail(attempts.clone())).await;
        assert_eq!(result, Err(TestError::Down(retries + 1)));
        assert_eq!(attempts.count(), retries as usize + 1);
    }

    let policy = build(fetch(3, constant(10 * MS)));
    let attempts = Attempts::default();
    let result = policy.call(|| succeed_from(attempts.clone(), 3)).await;
    assert_eq!(result, Ok(3));
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_constant_backoff_waits_the_same_before_every_retry() {
    let policy = build(fetch(3, constant(100 * MS)));
    let attempts = Attempts::default();
    let started = Instant::now();
    let _ = policy.call(|| always_fail(attempts.clone())).await;
    assert_eq!(attempts.gaps(), [100 * MS; 3]);
    assert_eq!(started.elapsed(), 300 * MS);
}

#[tokio::test(start_paused = true)]
async fn an_exponential_backoff_doubles_up_to_its_cap() {
    let policy = build(fetch(6, Backoff::exponential(100 * MS, 2.0, SEC)).jitter(Jitter::None));
    let attempts = Attempts::default();
    let started = Instant::now();
    let _ = policy.call(|| always_fail(attempts.clone())).await;
    let gaps: Vec<u128> = attempts.gaps().iter().map(Duration::as_millis).collect();
    assert_eq!(gaps, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(started.elapsed(), 3500 * MS);
}

/// Each measured wait against its jitter's bounds. Sleeps on tokio's timer end on a whole
/// millisecond, never early, so a wait is its random delay rounded up to the millisecond; every
/// bound below is itself a whole number of milliseconds.
#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_their_bounds_and_spread() {
    let base = Backoff::exponential(100 * MS, 2.0, 2 * SEC);
    let nominal = |retry: u32| base.nominal(retry);
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let policy = build(fetch(5, base).jitter(jitter).retry_budget(None));
        let mut third_waits = HashSet::new();
        for _ in 0..40 {
            let attempts = Attempts::default();
            let _ = policy.call(|| always_fail(attempts.clone())).await;
            let gaps = attempts.gaps();
            assert_eq!(gaps.len(), 5);
            let mut previous = Duration::ZERO;
            for (gap, retry) in gaps.iter().copied().zip(1..) {
                let (low, high) = match jitter {
                    Jitter::Full => (Duration::ZERO, nominal(retry)),
                    Jitter::Equal => (nominal(retry) / 2, nominal(retry)),
                    _ => (100 * MS, (previous.max(100 * MS) * 3).min(2 * SEC)),
                };
                assert!(
                    low <= gap && gap <= high,
                    "{jitter:?} retry {retry}: {gap:?} outside [{low:?}, {high:?}]"
                );
                previous = gap;
            }
            third_waits.insert(gaps[2]);
        }
        assert!(
            third_waits.len() > 20,
            "{jitter:?} barely spreads: {third_waits:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_ends_retrying_with_the_last_error() {
    let registry = Registry::new();
    let policy = Policy::builder("storm")
        .retries(3)
        .backoff(constant(100 * MS))
        .retry_budget(Some(BudgetConfig {
            ratio: 0.2,
            min_retries: 0,
        }))
        .build_in(&registry)
        .unwrap();
    // Ten calls in flight together, each attempt failing after 10 ms: 20 % of ten calls is
    // two retries in flight. Once eight calls have given up, two calls in flight allow none.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                let attempts = Attempts::default();
                let result = policy
                    .call(|| {
                        let attempts = attempts.clone();
                        async move {
                            sleep(10 * MS).await;
                            always_fail(attempts).await
                        }
                    })
                    .await;
                (result, attempts.count())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    outcomes.sort_by_key(|(_, attempts)| *attempts);
    let once = (Err(TestError::Down(1)), 1);
    let twice = (Err(TestError::Down(2)), 2);
    assert_eq!(outcomes[..8], vec![once; 8][..]);
    assert_eq!(outcomes[8..], vec![twice; 2][..]);
    let budget = registry
        .retry_budget("storm", BudgetConfig::default())
        .unwrap();
    assert_eq!(
        budget.in_flight(),
        (0, 0),
        "every call and retry was counted out"
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_stops_retrying_rather_than_sleep_past_it() {
    let policy = build(fetch(10, constant(400 * MS)).total_timeout(SEC));
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| always_fail(attempts.clone())).await;
    // Attempts at 0, 400 and 800 ms; a fourth would start at 1200 ms, past the deadline, so
    // the call ends at 800 ms with the last real error.
    assert_eq!(result, Err(TestError::Down(3)));
    assert_eq!(started.elapsed(), 800 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_backoff_ending_exactly_at_the_deadline_is_not_slept() {
    // 500 ms backoffs against a 1 s deadline: the second backoff would end at 1 000 ms, exactly
    // on the deadline, leaving the attempt after it no time at all, so the call ends at 500 ms.
    let at_deadline = build(fetch(10, constant(500 * MS)).total_timeout(SEC));
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = at_deadline.call(|| always_fail(attempts.clone())).await;
    assert_eq!(result, Err(TestError::Down(2)));
    assert_eq!(started.elapsed(), 500 * MS);

    // A millisecond less (tokio's timer resolution) and the third attempt starts at 998 ms.
    let before_deadline = build(fetch(10, constant(499 * MS)).total_timeout(SEC));
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = before_deadline.call(|| always_fail(attempts.clone())).await;
    assert_eq!(result, Err(TestError::Down(3)));
    assert_eq!(started.elapsed(), 998 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_too_long_for_the_clock_ends_the_call_instead_of_panicking() {
    let policy = build(fetch(3, constant(10 * MS)).total_timeout(SEC));
    let attempts = Attempts::default();
    let result = drive(&policy, || {
        let attempts = attempts.clone();
        async move {
            attempts.start();
            Err(TestError::RateLimited(Duration::MAX))
        }
    })
    .await;
    assert_eq!(result, Err(TestError::RateLimited(Duration::MAX)));
    assert_eq!(attempts.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_too_long_for_the_clock_waits_the_cap_not_for_ever() {
    let policy = build(fetch(2, constant(10 * MS)));
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = drive(&policy, || {
        let attempts = attempts.clone();
        async move {
            attempts.start();
            Err(TestError::RateLimited(Duration::MAX))
        }
    })
    .await;
    // No total timeout: each retry waits the default cap of a minute, then the last error
    // comes back with its hint for the caller to pass on.
    assert_eq!(result, Err(TestError::RateLimited(Duration::MAX)));
    assert_eq!(attempts.gaps(), [MINUTE, MINUTE]);
    assert_eq!(started.elapsed(), 2 * MINUTE);
}

#[tokio::test(start_paused = true)]
async fn a_server_asking_for_hours_is_retried_after_the_policys_cap() {
    // `Retry-After: 86400` from a rate limiter: the default cap, then a cap of the caller's.
    let asks_a_day = |attempts: &Attempts| {
        let attempts = attempts.clone();
        async move {
            match attempts.start() {
                1 => Err(TestError::RateLimited(24 * 3600 * SEC)),
                n => Ok(n),
            }
        }
    };
    let by_default = build(fetch(3, constant(100 * MS)));
    let attempts = Attempts::default();
    assert_eq!(drive(&by_default, || asks_a_day(&attempts)).await, Ok(2));
    assert_eq!(attempts.gaps(), [MINUTE]);

    let capped = build(fetch(3, constant(100 * MS)).max_retry_after(5 * SEC));
    let attempts = Attempts::default();
    assert_eq!(drive(&capped, || asks_a_day(&attempts)).await, Ok(2));
    assert_eq!(attempts.gaps(), [5 * SEC]);

    // A zero cap ignores hints: the backoff alone decides.
    let deaf = build(fetch(3, constant(100 * MS)).max_retry_after(Duration::ZERO));
    let attempts = Attempts::default();
    assert_eq!(drive(&deaf, || asks_a_day(&attempts)).await, Ok(2));
    assert_eq!(attempts.gaps(), [100 * MS]);

    let refused = fetch(3, constant(100 * MS))
        .max_retry_after(resilient::MAX_DURATION + SEC)
        .build_in(&Registry::new())
        .unwrap_err();
    assert_eq!(refused.field(), "max_retry_after");
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_cuts_a_running_attempt_short_without_blaming_the_dependency() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(10))
        .unwrap();
    let policy = fetch(10, constant(100 * MS))
        .timeout(300 * MS)
        .total_timeout(SEC)
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| hang(attempts.clone())).await;
    // Attempts at 0 (times out at 300), 400 (times out at 700) and 800 ms, cut at 1 s.
    assert_eq!(
        result.unwrap_err().rejection(),
        Some(&Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: SEC
        })
    );
    assert_eq!(started.elapsed(), SEC);
    assert_eq!(attempts.count(), 3);
    assert_eq!(
        breaker.metrics().failures,
        2,
        "only the attempt timeouts count"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_a_predicate_calls_permanent_are_not_retried() {
    let policy = build(
        fetch(3, constant(10 * MS))
            .retry_if(|error: &TestError| !matches!(error, TestError::Fatal)),
    );
    let attempts = Attempts::default();
    let result: Result<(), TestError> = policy
        .call(|| {
            let attempts = attempts.clone();
            async move {
                attempts.start();
                Err(TestError::Fatal)
            }
        })
        .await;
    assert_eq!(result, Err(TestError::Fatal));
    assert_eq!(attempts.count(), 1);
    assert!(!policy.classify(&TestError::Fatal).transient);
    assert!(policy.classify(&TestError::Down(1)).transient);
    assert!(policy.classify(&"an error no predicate knows").transient);
}

/// The step-wise driver with a [`resilient::Transient`] impl classifying the errors.
async fn drive<F, Fut>(policy: &Policy, mut make: F) -> Result<u32, TestError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u32, TestError>>,
{
    let mut execution = policy.execution();
    loop {
        let attempt = execution.attempt(make()).await;
        match execution.next(attempt, Classification::of).await {
            Next::Return(result) => return result,
            Next::Retry => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_transient_impl_decides_what_is_retried_and_its_retry_after_is_honoured() {
    let policy = build(fetch(3, constant(100 * MS)));

    let attempts = Attempts::default();
    let result = drive(&policy, || {
        let attempts = attempts.clone();
        async move {
            attempts.start();
            Err(TestError::Fatal)
        }
    })
    .await;
    assert_eq!(result, Err(TestError::Fatal));
    assert_eq!(attempts.count(), 1);

    // A hint longer than the backoff wins; a shorter one does not shorten the backoff.
    let attempts = Attempts::default();
    let result = drive(&policy, || {
        let attempts = attempts.clone();
        async move {
            match attempts.start() {
                1 => Err(TestError::RateLimited(2 * SEC)),
                2 => Err(TestError::RateLimited(10 * MS)),
                3 => Err(TestError::Down(3)),
                n => Ok(n),
            }
        }
    })
    .await;
    assert_eq!(result, Ok(4));
    assert_eq!(attempts.gaps(), [2 * SEC, 100 * MS, 100 * MS]);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_an_open_breaker_with_its_rejection() {
    let registry = Registry::new();
    registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(2).with_open_wait(30 * SEC),
        )
        .unwrap();
    let policy = fetch(5, constant(100 * MS))
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| always_fail(attempts.clone())).await;
    // The second failure opens the breaker at 100 ms; the third attempt, at 200 ms, is refused
    // and that refusal ends the call.
    assert_eq!(attempts.count(), 2);
    assert_eq!(started.elapsed(), 200 * MS);
    assert_eq!(
        result.unwrap_err().rejection(),
        Some(&Rejection::CircuitOpen {
            breaker: "db".into(),
            retry_after: Some(30 * SEC - 100 * MS),
        })
    );
}

#[tokio::test(start_paused = true)]
async fn retry_on_rejection_waits_out_the_open_breaker_and_probes() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(2)
                .with_open_wait(30 * SEC)
                .with_half_open(1, 1),
        )
        .unwrap();
    let policy = fetch(5, constant(100 * MS))
        .breaker("db")
        .retry_on_rejection(true)
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| succeed_from(attempts.clone(), 3)).await;
    // Refused at 200 ms, the retry sleeps the 29.9 s the rejection asked for, then probes.
    assert_eq!(result, Ok(3));
    assert_eq!(started.elapsed(), 30 * SEC + 100 * MS);
    assert_eq!(attempts.gaps(), [100 * MS, 30 * SEC]);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_a_breaker_failure_and_is_retried() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(2))
        .unwrap();
    let policy = fetch(1, constant(10 * MS))
        .timeout(100 * MS)
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let started = Instant::now();
    let result = policy.call(|| hang(attempts.clone())).await;
    assert_eq!(
        result.unwrap_err().rejection(),
        Some(&Rejection::Timeout {
            kind: TimeoutKind::Attempt,
            limit: 100 * MS
        })
    );
    assert_eq!(attempts.count(), 2);
    assert_eq!(started.elapsed(), 210 * MS);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_backoff_sleep_holds_no_bulkhead_slot() {
    let registry = Registry::new();
    let bulkhead = registry
        .declare_bulkhead("pool", BulkheadConfig::new(1))
        .unwrap();
    let policy = fetch(1, constant(SEC))
        .bulkhead("pool")
        .build_in(&registry)
        .unwrap();
    let attempts = Attempts::default();
    let call = tokio::spawn({
        let (policy, attempts) = (policy.clone(), attempts.clone());
        async move {
            policy
                .call(|| {
                    let attempts = attempts.clone();
                    async move {
                        if attempts.start() == 1 {
                            return Err(TestError::Down(1));
                        }
                        sleep(10 * SEC).await;
                        Ok(())
                    }
                })
                .await
        }
    });
    sleep(500 * MS).await;
    assert_eq!(attempts.count(), 1);
    assert_eq!(bulkhead.metrics().in_use, 0, "the retry is sleeping");
    drop(bulkhead.try_acquire().expect("the slot is free for others"));
    sleep(SEC).await;
    assert_eq!(attempts.count(), 2);
    assert_eq!(bulkhead.metrics().in_use, 1, "the second attempt runs");
    assert_eq!(call.await.unwrap(), Ok(()));
    assert_eq!(bulkhead.metrics().in_use, 0);
}

#[test]
fn every_invalid_retry_setting_is_a_config_error_naming_the_policy() {
    let cases: Vec<(PolicyBuilder, &str, &str)> = vec![
        (Policy::builder("fetch").retries(101), "retries", "101"),
        (
            Policy::builder("fetch").backoff(Backoff::exponential(MS, 0.5, SEC)),
            "backoff_multiplier",
            "0.5",
        ),
        (
            Policy::builder("fetch").backoff(Backoff::exponential(MS, f64::NAN, SEC)),
            "backoff_multiplier",
            "NaN",
        ),
        (
            Policy::builder("fetch").backoff(Backoff::exponential(SEC, 2.0, MS)),
            "max_backoff",
            "1ms",
        ),
        (
            Policy::builder("fetch").retry_budget(Some(BudgetConfig {
                ratio: 0.0,
                min_retries: 3,
            })),
            "retry_budget_ratio",
            "0.0",
        ),
        (
            Policy::builder("fetch").retry_budget(Some(BudgetConfig {
                ratio: 1.5,
                min_retries: 3,
            })),
            "retry_budget_ratio",
            "1.5",
        ),
    ];
    for (builder, field, value) in cases {
        let err = builder.build_in(&Registry::new()).unwrap_err();
        assert_eq!((err.field(), err.value()), (field, value), "{err}");
        assert_eq!(err.subject(), "policy \"fetch\"");
        assert!(err.to_string().contains("\"fetch\""), "{err}");
    }
    assert!(
        Policy::builder("fetch")
            .retries(100)
            .build_in(&Registry::new())
            .is_ok()
    );
    let config = RetryConfig {
        max_retries: 101,
        ..RetryConfig::default()
    };
    assert_eq!(
        config.validate("policy \"x\"").unwrap_err().field(),
        "retries"
    );
}

// ---------------------------------------------------------------------------------------------
// Jitter that de-synchronises replicas
// ---------------------------------------------------------------------------------------------

/// Set in the environment of the child process that
/// [`two_processes_draw_different_jitter`] runs: the child prints its draws and exits.
const JITTER_CHILD: &str = "RESILIENT_TEST_PRINT_JITTER";

/// The first retry delays of a few calls, as a process would draw them.
fn first_retry_delays() -> Vec<Duration> {
    let backoff = Backoff::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(1));
    (0..8)
        .map(|_| backoff.delay(1, Duration::ZERO, &mut resilient::backoff::Random::new()))
        .collect()
}

/// Not a check of its own: the child half of [`two_processes_draw_different_jitter`], which
/// runs this test binary again with [`JITTER_CHILD`] set; skipped otherwise.
#[test]
#[ignore = "a child process of two_processes_draw_different_jitter"]
fn jitter_child_prints_its_draws() {
    assert!(
        std::env::var_os(JITTER_CHILD).is_some(),
        "run by two_processes_draw_different_jitter"
    );
    let draws: Vec<String> = first_retry_delays()
        .iter()
        .map(|delay| delay.as_nanos().to_string())
        .collect();
    // On a line of its own: the harness prints the test's name without a line break.
    println!("\njitter-draws {}", draws.join(" "));
}

/// Runs this test binary again as a child that prints its jitter draws.
fn draws_of_another_process() -> Vec<u128> {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "jitter_child_prints_its_draws",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(JITTER_CHILD, "1")
        .output()
        .expect("the test binary runs again");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("jitter-draws "))
        .unwrap_or_else(|| panic!("no draws printed: {output:?}"));
    let draws: Vec<u128> = line
        .split_whitespace()
        .map(|nanos| nanos.parse().unwrap())
        .collect();
    assert_eq!(draws.len(), 8, "{output:?}");
    draws
}

/// Replicas started together must not retry in lockstep: each process seeds its jitter from
/// the operating system. (Two OS-seeded sequences of eight draws over one second coincide with
/// a probability of about 2^-240.)
#[test]
fn two_processes_draw_different_jitter() {
    let first = draws_of_another_process();
    let second = draws_of_another_process();
    assert_ne!(first, second, "two processes drew the same jitter");
}

/// Each call draws from a stream of its own: no call's delays are another's, shifted.
#[test]
fn each_call_draws_from_an_independent_stream() {
    use resilient::backoff::Random;
    let streams: Vec<Vec<u64>> = (0..4)
        .map(|_| {
            let mut random = Random::new();
            (0..64).map(|_| random.next_u64()).collect()
        })
        .collect();
    let all: HashSet<u64> = streams.iter().flatten().copied().collect();
    // 256 draws of 64 bits collide by chance with a probability below 2^-48.
    assert_eq!(all.len(), 256, "two calls' streams overlap");
}

/// Full jitter is uniform over `[0, delay]`: 10 000 first delays, each from a fresh call's
/// generator, fall into 10 equal buckets within ±20 % of 1 000 each. A bucket's count is
/// binomial (n = 10 000, p = 0.1, σ = 30), so ±200 is 6.7σ: with the generator seeded by the
/// operating system the test fails by chance with a probability below 3·10^-10 per run.
#[test]
fn full_jitter_draws_are_uniform() {
    let backoff = Backoff::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(1));
    let mut buckets = [0u32; 10];
    for _ in 0..10_000 {
        let delay = backoff.delay(1, Duration::ZERO, &mut resilient::backoff::Random::new());
        let bucket = (delay.as_nanos() * 10 / 1_000_000_001) as usize;
        buckets[bucket] += 1;
    }
    for (index, count) in buckets.iter().enumerate() {
        assert!(
            (800..=1200).contains(count),
            "bucket {index} holds {count} of 10 000 draws: {buckets:?}"
        );
    }
}
