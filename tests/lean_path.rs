//! The lean call path (issue 9): a call starts on one hand-written attempt future and moves to
//! the step-wise driver only when it must. These tests pin the hand-offs: a bulkhead that lets
//! calls wait, a failure worth a retry, and the global registry's fast policy slots (which this
//! binary's global registry is free to reload: no other test file shares it).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{MS, SEC, TestError};
use resilient::config::FileConfig;
use resilient::{BulkheadConfig, Registry, resilient};
use tokio::sync::Notify;

#[resilient(name = "lean::held", bulkhead = "lean::waiting", timeout = "10s")]
async fn held(gate: Arc<Notify>) -> Result<u32, TestError> {
    gate.notified().await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_that_lets_calls_wait_makes_the_second_call_wait_for_the_slot() {
    let registry = Arc::new(Registry::new());
    registry
        .declare_bulkhead("lean::waiting", BulkheadConfig::new(1).with_max_wait(SEC))
        .unwrap();
    let first_gate = Arc::new(Notify::new());
    let second_gate = Arc::new(Notify::new());
    second_gate.notify_one();
    let started = tokio::time::Instant::now();
    let (first, second, ()) = registry
        .scope(async {
            tokio::join!(held(first_gate.clone()), held(second_gate.clone()), async {
                tokio::time::sleep(300 * MS).await;
                first_gate.notify_one();
            })
        })
        .await;
    assert_eq!(first, Ok(1));
    assert_eq!(
        second,
        Ok(1),
        "the second call waited for the slot instead of being rejected"
    );
    assert_eq!(started.elapsed(), 300 * MS);
}

static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "lean::flaky", retries = 2, backoff = "10ms", timeout = "1s")]
async fn flaky() -> Result<u32, TestError> {
    let attempt = FLAKY_ATTEMPTS.fetch_add(1, Ordering::Relaxed) + 1;
    if attempt < 3 {
        return Err(TestError::Down(attempt));
    }
    Ok(attempt)
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_attempt_hands_the_call_to_the_retries_with_its_count_and_backoff() {
    let registry = Arc::new(Registry::new());
    let started = tokio::time::Instant::now();
    let result = registry.scope(flaky()).await;
    assert_eq!(result, Ok(3), "the lean first attempt, then two retries");
    // The backoff is jittered, so only its bound holds: two sleeps of at most 10 and 20 ms.
    assert!(started.elapsed() <= 30 * MS, "{:?}", started.elapsed());
    let stats = registry
        .call_site_stats("lean::flaky")
        .expect("the call site ran")
        .metrics("lean::flaky".into());
    assert_eq!(stats.calls, 1, "one call, counted once across the hand-off");
    assert_eq!(stats.retries, 2);
}

static CYCLED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "lean::cycled", retries = 1, backoff = "1ms")]
async fn cycled() -> Result<(), TestError> {
    CYCLED_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    Err(TestError::Down(0))
}

#[tokio::test(start_paused = true)]
async fn every_distinct_setting_reaches_the_call_site_beyond_the_fast_slots() {
    let global = resilient::registry();
    let attempts_with = |retries: u32| {
        let text = format!("[call_sites.\"lean::cycled\"]\nretries = {retries}\n");
        global
            .reload(&FileConfig::from_toml(&text).expect("a valid configuration"))
            .expect("the file applies");
        // Twice: the first call after a reload installs the policy, the second reads it back
        // from where calls find it.
        async move {
            let mut attempts = [0; 2];
            for attempts in &mut attempts {
                CYCLED_ATTEMPTS.store(0, Ordering::Relaxed);
                assert!(cycled().await.is_err());
                *attempts = CYCLED_ATTEMPTS.load(Ordering::Relaxed);
            }
            attempts
        }
    };
    // Six distinct settings, more than a call site's fast slots, then back to the first ones
    // (which sit in slots) and to the last ones (which do not).
    for retries in [0, 1, 2, 3, 4, 5, 0, 5, 1, 4] {
        let attempts = retries + 1;
        assert_eq!(
            attempts_with(retries).await,
            [attempts; 2],
            "retries = {retries}"
        );
    }
}

#[resilient(name = "lean::sized::breaker", breaker = "lean::sized")]
async fn breaker_only(x: u64) -> Result<u64, TestError> {
    Ok(x)
}

#[resilient(
    name = "lean::sized::full",
    timeout = "1s",
    retries = 3,
    breaker = "lean::sized",
    bulkhead = "lean::sized",
    fallback = sized_fallback
)]
async fn full_attribute(x: u64) -> Result<u64, TestError> {
    Ok(x)
}

fn sized_fallback(_x: u64, _error: TestError) -> Result<u64, TestError> {
    Ok(0)
}

async fn plain(x: u64) -> Result<u64, TestError> {
    Ok(x)
}

/// Issue 9's budgets for the annotated function's future, over the same function unannotated:
/// 256 bytes with a breaker only, 512 with the full attribute. The step-wise driver is boxed
/// and entered only when a call needs it, so nothing of it may creep back into these futures.
#[test]
fn the_annotated_futures_stay_within_their_size_budgets() {
    let plain = size_of_val(&plain(1));
    let breaker = size_of_val(&breaker_only(1));
    let full = size_of_val(&full_attribute(1));
    assert!(
        breaker <= plain + 256,
        "breaker only: {breaker} B, plain {plain} B"
    );
    assert!(
        full <= plain + 512,
        "full attribute: {full} B, plain {plain} B"
    );
}

static DEFERRED_POLLS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "lean::deferred", breaker = "lean::deferred")]
async fn deferred(fail: bool) -> Result<u32, TestError> {
    DEFERRED_POLLS.fetch_add(1, Ordering::SeqCst);
    if fail { Err(TestError::Down(1)) } else { Ok(1) }
}

/// Without a bulkhead, a lean attempt asks the breaker for its permit at its first poll: the
/// outcome is still recorded, a probe still goes through in half-open, and an open breaker
/// still rejects before the body runs.
#[tokio::test(start_paused = true)]
async fn a_breaker_asked_at_the_first_poll_records_and_rejects_as_before() {
    let registry = Arc::new(Registry::new());
    let breaker = registry
        .declare_breaker(
            "lean::deferred",
            resilient::BreakerConfig::consecutive_failures(1)
                .with_open_wait(SEC)
                .with_half_open(1, 1),
        )
        .unwrap();
    registry
        .scope(async {
            assert_eq!(deferred(false).await, Ok(1));
            assert!(matches!(deferred(true).await, Err(TestError::Down(1))));
            let metrics = breaker.metrics();
            assert_eq!((metrics.successes, metrics.failures), (1, 1));
            assert_eq!(metrics.state, resilient::BreakerState::Open);

            let polls = DEFERRED_POLLS.load(Ordering::SeqCst);
            let rejected = deferred(false).await;
            assert!(
                matches!(&rejected, Err(TestError::Rejected(resilient::Rejection::CircuitOpen { retry_after: Some(wait), .. })) if *wait == SEC),
                "{rejected:?}"
            );
            assert_eq!(DEFERRED_POLLS.load(Ordering::SeqCst), polls, "the body ran");
            assert_eq!(breaker.metrics().rejected, 1);

            tokio::time::advance(SEC).await;
            assert_eq!(deferred(false).await, Ok(1), "the probe after the open wait");
            assert_eq!(breaker.metrics().state, resilient::BreakerState::Closed);
        })
        .await;
}

static BOTH_POLLS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "lean::both", breaker = "lean::both", bulkhead = "lean::both")]
async fn behind_both(gate: Arc<Notify>) -> Result<u32, TestError> {
    BOTH_POLLS.fetch_add(1, Ordering::SeqCst);
    gate.notified().await;
    Ok(1)
}

/// With a bulkhead that never waits, a lean attempt takes the breaker's permit and then its
/// slot at its first poll: a full bulkhead refuses the call before its body runs, and the
/// breaker records nothing of it (our capacity, not the dependency's failure).
#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_at_the_first_poll_and_the_breaker_records_nothing() {
    let registry = Arc::new(Registry::new());
    let breaker = registry
        .declare_breaker(
            "lean::both",
            resilient::BreakerConfig::consecutive_failures(1),
        )
        .unwrap();
    registry
        .declare_bulkhead("lean::both", BulkheadConfig::new(1))
        .unwrap();
    let held = Arc::new(Notify::new());
    let free = Arc::new(Notify::new());
    free.notify_one();
    registry
        .scope(async {
            let first = tokio::spawn(registry.scope(behind_both(held.clone())));
            tokio::task::yield_now().await;
            assert_eq!(
                BOTH_POLLS.load(Ordering::SeqCst),
                1,
                "the first call holds the slot"
            );

            let refused = behind_both(free.clone()).await;
            assert!(
                matches!(
                    &refused,
                    Err(TestError::Rejected(resilient::Rejection::BulkheadFull {
                        max_concurrent: 1,
                        ..
                    }))
                ),
                "{refused:?}"
            );
            assert_eq!(BOTH_POLLS.load(Ordering::SeqCst), 1, "the refused body ran");
            let metrics = breaker.metrics();
            assert_eq!(
                (metrics.successes, metrics.failures, metrics.rejected),
                (0, 0, 0)
            );

            held.notify_one();
            assert_eq!(first.await.unwrap(), Ok(1));
            assert_eq!(behind_both(free.clone()).await, Ok(1));
            assert_eq!(breaker.metrics().successes, 2);
        })
        .await;
}
