//! Hedged attempts (issue 11 §2): a slow attempt gets a hedge beside it, the first success
//! wins, the losers are cancelled, and the breaker, the bulkhead and the retry budget bound
//! the extra load. Everything runs on tokio's paused clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{MS, SEC, TestError};
use resilient::retry::BudgetConfig;
use resilient::{BreakerConfig, BulkheadConfig, Policy, Registry, resilient};
use tokio::time::Instant;

/// A dependency whose latency is 10 ms for 19 calls in 20 and 1 s for the 20th (5 %), counting
/// every attempt it receives.
#[derive(Clone, Default)]
struct TailDependency {
    attempts: Arc<AtomicU32>,
}

impl TailDependency {
    async fn call(&self) -> Result<u32, TestError> {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let latency = if attempt % 20 == 7 { SEC } else { 10 * MS };
        tokio::time::sleep(latency).await;
        Ok(attempt)
    }

    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

/// The `q`-quantile of `latencies` (nearest rank).
fn quantile(latencies: &mut [Duration], q: f64) -> Duration {
    latencies.sort();
    let rank = ((q * latencies.len() as f64).ceil() as usize).max(1);
    latencies[rank - 1]
}

async fn latencies(policy: &Policy, dependency: &TailDependency, calls: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let result: Result<u32, TestError> = policy.call(|| dependency.call()).await;
        assert!(result.is_ok(), "{result:?}");
        latencies.push(started.elapsed());
    }
    latencies
}

#[tokio::test(start_paused = true)]
async fn a_hedge_after_50ms_keeps_the_p99_under_100ms_within_the_budget() {
    const CALLS: usize = 1000;
    let registry = Registry::new();

    let plain = Policy::builder("hedge::plain").build_in(&registry).unwrap();
    let unhedged = TailDependency::default();
    let mut slow = latencies(&plain, &unhedged, CALLS).await;
    assert_eq!(
        quantile(&mut slow, 0.99),
        SEC,
        "the control: without hedges the tail is the slow calls'"
    );

    let hedged = Policy::builder("hedge::tail")
        .hedge(50 * MS)
        .build_in(&registry)
        .unwrap();
    let dependency = TailDependency::default();
    let mut fast = latencies(&hedged, &dependency, CALLS).await;
    let p99 = quantile(&mut fast, 0.99);
    assert!(p99 < 100 * MS, "hedged p99 {p99:?}");
    assert_eq!(p99, 60 * MS, "a slow attempt's hedge answers 50 + 10 ms in");

    let extra = dependency.attempts() - CALLS as u32;
    let stats = registry
        .call_site_stats("hedge::tail")
        .unwrap()
        .metrics("hedge::tail".into());
    assert_eq!(
        stats.hedges,
        u64::from(extra),
        "every extra attempt is a counted hedge"
    );
    // Only the slow attempts (1 in 20) wait long enough to be hedged.
    assert!(
        (40..=60).contains(&extra),
        "{extra} hedges for {CALLS} calls"
    );
    assert!(
        f64::from(extra) <= 0.2 * CALLS as f64,
        "within the budget's 20 %"
    );
}

/// A dependency whose first attempt never answers in time and whose later ones answer after
/// 10 ms.
async fn first_slow(attempts: &AtomicU32) -> Result<u32, TestError> {
    let attempt = attempts.fetch_add(1, Ordering::Relaxed);
    let latency = if attempt == 0 { 10 * SEC } else { 10 * MS };
    tokio::time::sleep(latency).await;
    Ok(attempt)
}

#[tokio::test(start_paused = true)]
async fn the_loser_is_cancelled_freeing_its_slot_and_recording_nothing() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("hedge::losers", BreakerConfig::default())
        .unwrap();
    let bulkhead = registry
        .declare_bulkhead("hedge::losers", BulkheadConfig::new(2))
        .unwrap();
    let policy = Policy::builder("hedge::losers")
        .hedge(50 * MS)
        .breaker("hedge::losers")
        .bulkhead("hedge::losers")
        .build_in(&registry)
        .unwrap();
    let attempts = AtomicU32::new(0);
    let started = Instant::now();
    let result: Result<u32, TestError> = policy.call(|| first_slow(&attempts)).await;
    assert_eq!(result, Ok(1), "the hedge won");
    assert_eq!(started.elapsed(), 60 * MS);
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.calls_in_window, metrics.failures_in_window),
        (1, 0),
        "the winner's success only: the cancelled loser recorded nothing"
    );
    assert_eq!(bulkhead.metrics().in_use, 0, "both slots came back");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_starts_into_an_open_breaker() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("hedge::open", BreakerConfig::default())
        .unwrap();
    let policy = Policy::builder("hedge::open")
        .hedge(50 * MS)
        .timeout(SEC)
        .breaker("hedge::open")
        .build_in(&registry)
        .unwrap();
    let attempts = AtomicU32::new(0);
    let call = policy.call(|| first_slow(&attempts));
    let open_meanwhile = async {
        tokio::time::sleep(20 * MS).await;
        breaker.force_open();
    };
    let (result, ()): (Result<u32, TestError>, ()) = tokio::join!(call, open_meanwhile);
    assert!(
        matches!(&result, Err(TestError::Rejected(rejection)) if rejection.is_timeout()),
        "the first attempt ran to its timeout alone: {result:?}"
    );
    assert_eq!(attempts.load(Ordering::Relaxed), 1, "no hedge was started");
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_starts_no_hedge() {
    let registry = Registry::new();
    let policy = Policy::builder("hedge::budget")
        .hedge(50 * MS)
        .retry_budget(Some(BudgetConfig {
            ratio: 0.01,
            min_retries: 0,
        }))
        .build_in(&registry)
        .unwrap();
    let attempts = AtomicU32::new(0);
    let started = Instant::now();
    let result: Result<u32, TestError> = policy.call(|| first_slow(&attempts)).await;
    assert_eq!(result, Ok(0), "the first attempt, alone, after its 10 s");
    assert_eq!(started.elapsed(), 10 * SEC);
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
}

/// Fails after 100 ms, every time.
async fn failing(attempts: &AtomicU32) -> Result<u32, TestError> {
    let attempt = attempts.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(100 * MS).await;
    Err(TestError::Down(attempt))
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_failure_goes_to_the_retries() {
    let registry = Registry::new();
    let policy = Policy::builder("hedge::failing")
        .hedge(50 * MS)
        .hedges(2)
        .retries(1)
        .backoff(resilient::backoff::Backoff::constant(10 * MS))
        .build_in(&registry)
        .unwrap();
    let attempts = AtomicU32::new(0);
    let started = Instant::now();
    let result: Result<u32, TestError> = policy.call(|| failing(&attempts)).await;
    // Each group: attempts at 0, 50 and 100 ms, the last failing at 200 ms; then 10 ms of
    // backoff and a second group.
    assert_eq!(
        result,
        Err(TestError::Down(5)),
        "the second group's last failure"
    );
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        6,
        "two groups of three attempts"
    );
    assert_eq!(started.elapsed(), 410 * MS);
}

#[tokio::test]
async fn bad_hedge_settings_are_config_errors_naming_the_field() {
    let registry = Registry::new();
    let zero = Policy::builder("hedge::zero")
        .hedge(Duration::ZERO)
        .build_in(&registry)
        .unwrap_err();
    assert_eq!(zero.field(), "hedge");
    let many = Policy::builder("hedge::many")
        .hedge(MS)
        .hedges(11)
        .build_in(&registry)
        .unwrap_err();
    assert_eq!(many.field(), "hedges");
    let without_delay = Policy::builder("hedge::count_only")
        .hedges(2)
        .build_in(&registry)
        .unwrap_err();
    assert_eq!(without_delay.field(), "hedge");
}

static ATTRIBUTE_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "hedge::attribute", hedge = "50ms", hedges = 2, timeout = "5s")]
async fn hedged_lookup(id: u32) -> Result<u32, TestError> {
    let attempt = ATTRIBUTE_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    let latency = if attempt < 2 { 10 * SEC } else { 10 * MS };
    tokio::time::sleep(latency).await;
    Ok(id * 100 + attempt)
}

#[tokio::test(start_paused = true)]
async fn the_attribute_hedges_twice_and_the_third_attempt_wins() {
    let registry = Arc::new(Registry::new());
    let started = Instant::now();
    let result = registry.scope(hedged_lookup(7)).await;
    assert_eq!(
        result,
        Ok(702),
        "attempts at 0, 50 and 100 ms; the third answers at 110 ms"
    );
    assert_eq!(started.elapsed(), 110 * MS);
    let stats = registry
        .call_site_stats("hedge::attribute")
        .unwrap()
        .metrics("hedge::attribute".into());
    assert_eq!(stats.hedges, 2);
}

static FILE_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "hedge::from_file", hedge = "50ms", timeout = "5s")]
async fn hedged_from_file() -> Result<u32, TestError> {
    first_slow(&FILE_ATTEMPTS).await
}

#[tokio::test(start_paused = true)]
async fn a_configuration_file_sets_the_hedge_delay_and_refuses_bad_values() {
    use resilient::config::FileConfig;
    let registry = Arc::new(Registry::new());
    let file = FileConfig::from_toml("[call_sites.\"hedge::from_file\"]\nhedge = \"20ms\"\n")
        .expect("a valid file");
    registry.reload(&file).unwrap();
    let started = Instant::now();
    assert_eq!(registry.scope(hedged_from_file()).await, Ok(1));
    assert_eq!(
        started.elapsed(),
        30 * MS,
        "the file's 20 ms, not the attribute's 50 ms"
    );

    let zero = FileConfig::from_toml("[call_sites.x]\nhedge = \"0s\"\n").unwrap_err();
    assert_eq!(zero.field_name(), Some("hedge"), "{zero}");
    let many = FileConfig::from_toml("[call_sites.x]\nhedges = 11\n").unwrap_err();
    assert_eq!(many.field_name(), Some("hedges"), "{many}");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_is_the_same_attempt_with_the_same_idempotency_key() {
    let registry = Registry::new();
    let policy = Policy::builder("hedge::context")
        .hedge(50 * MS)
        .build_in(&registry)
        .unwrap();
    let attempts = AtomicU32::new(0);
    let seen = std::sync::Mutex::new(Vec::new());
    let result: Result<u32, TestError> = policy
        .call(|| async {
            let context = resilient::context().expect("inside an attempt");
            seen.lock()
                .unwrap()
                .push((context.attempt(), context.idempotency_key().to_string()));
            first_slow(&attempts).await
        })
        .await;
    assert_eq!(result, Ok(1));
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 2, "the first attempt and its hedge");
    assert_eq!(
        (seen[0].0, seen[1].0),
        (1, 1),
        "a hedge shares its attempt's number"
    );
    assert_eq!(seen[0].1, seen[1].1, "and its call's key: {seen:?}");
}
