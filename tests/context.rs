//! The call context (issue 11 §1): inside a `Policy::call` attempt, `resilient::context()` gives
//! the attempt number, the time left before the total timeout and an idempotency key that
//! every retry of one call shares; outside, `None`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use resilient::{Backoff, CallContext, IdempotencyKey, Policy, context};
use tokio::time::sleep;

/// A policy retrying up to `retries` times, 1 s apart.
fn retrying(retries: u32) -> Policy {
    build(
        Policy::builder("context")
            .retries(retries)
            .backoff(Backoff::constant(SEC)),
    )
}

/// Every attempt's context, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<CallContext>>>);

impl Seen {
    fn record(&self) -> u32 {
        let context = context().expect("an attempt has a context");
        let attempt = context.attempt();
        self.0.lock().unwrap().push(context);
        attempt
    }

    fn all(&self) -> Vec<CallContext> {
        self.0.lock().unwrap().clone()
    }

    fn keys(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|c| c.idempotency_key().to_string())
            .collect()
    }
}

/// Fails until attempt `succeed_at`, recording each attempt's context.
async fn flaky(seen: Seen, succeed_at: u32) -> Result<u32, TestError> {
    let attempt = seen.record();
    if attempt < succeed_at {
        Err(TestError::Down(attempt))
    } else {
        Ok(attempt)
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_are_numbered_from_one_across_retries() {
    let policy = retrying(3);
    let seen = Seen::default();
    let result = policy.call(|| flaky(seen.clone(), 3)).await;
    assert_eq!(result, Ok(3));
    let numbers: Vec<u32> = seen.all().iter().map(CallContext::attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn every_retry_of_a_call_has_its_key_and_each_call_its_own() {
    let policy = retrying(2);
    let first = Seen::default();
    let second = Seen::default();
    assert_eq!(policy.call(|| flaky(first.clone(), 3)).await, Ok(3));
    assert_eq!(policy.call(|| flaky(second.clone(), 2)).await, Ok(2));

    let first = first.keys();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|key| *key == first[0]), "{first:?}");
    let second = second.keys();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|key| *key == second[0]), "{second:?}");
    assert_ne!(first[0], second[0], "two calls, two keys");
}

#[tokio::test(start_paused = true)]
async fn a_key_generated_late_in_an_attempt_is_kept_by_the_retries() {
    // The first attempt asks for its key only after it awaited something: the key it got must
    // still be the one the retry sees.
    let policy = retrying(1);
    let keys = Arc::new(Mutex::new(Vec::new()));
    let result = policy
        .call(|| {
            let keys = keys.clone();
            async move {
                let attempt = context().expect("inside").attempt();
                sleep(MS).await;
                let key = context().expect("inside").idempotency_key().to_string();
                keys.lock().unwrap().push(key);
                if attempt == 1 {
                    Err(TestError::Down(1))
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    let keys = keys.lock().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test(start_paused = true)]
async fn the_callers_own_key_is_the_one_every_attempt_sees() {
    let policy = retrying(2);
    let seen = Seen::default();
    let key = IdempotencyKey::new("order-42").expect("a valid key");
    let result = policy.call_with_key(key, || flaky(seen.clone(), 2)).await;
    assert_eq!(result, Ok(2));
    assert_eq!(seen.keys(), ["order-42", "order-42"]);

    // A policy without retries takes the short path: the context is there too.
    let single = build(Policy::builder("single"));
    let key = IdempotencyKey::new("order-43").expect("a valid key");
    let sent = single
        .call_with_key(key, || async {
            Ok::<_, TestError>(context().map(|c| (c.attempt(), c.idempotency_key().to_string())))
        })
        .await;
    assert_eq!(sent, Ok(Some((1, "order-43".to_owned()))));
}

#[tokio::test(start_paused = true)]
async fn the_remaining_time_shrinks_with_each_attempt() {
    let policy = build(
        Policy::builder("deadline")
            .retries(2)
            .backoff(Backoff::constant(SEC))
            .total_timeout(10 * SEC),
    );
    let seen = Seen::default();
    let result = policy
        .call(|| {
            let seen = seen.clone();
            async move {
                let attempt = seen.record();
                sleep(SEC).await;
                if attempt < 3 {
                    Err(TestError::Down(attempt))
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    let remaining: Vec<Option<Duration>> = seen.all().iter().map(CallContext::remaining).collect();
    // Each attempt takes 1 s and each backoff 1 s: 2 s less each time.
    assert_eq!(remaining, [Some(10 * SEC), Some(8 * SEC), Some(6 * SEC)]);

    let unlimited = retrying(0);
    let remaining = unlimited
        .call(|| async { Ok::<_, TestError>(context().and_then(|c| c.remaining())) })
        .await;
    assert_eq!(remaining, Ok(None), "no total timeout, no deadline");
}

#[tokio::test(start_paused = true)]
async fn outside_a_call_there_is_no_context() {
    assert!(context().is_none());
    let policy = retrying(0);
    let inside = policy
        .call(|| async { Ok::<_, TestError>(context().is_some()) })
        .await;
    assert_eq!(inside, Ok(true));
    assert!(context().is_none(), "the call left nothing behind");
}

/// A database-like upstream: applies each write, deduplicated by the idempotency key it is
/// sent, and may lose the connection after applying a write but before answering.
#[derive(Default)]
struct Upstream {
    applied: Mutex<HashMap<String, u32>>,
    balance: Mutex<u64>,
    /// The next this many answers are lost after the write was applied.
    lose_answers: Mutex<u32>,
}

impl Upstream {
    async fn credit(&self, key: &str, amount: u64) -> Result<u64, TestError> {
        sleep(10 * MS).await;
        {
            let mut applied = self.applied.lock().unwrap();
            let times = applied.entry(key.to_owned()).or_default();
            if *times == 0 {
                *self.balance.lock().unwrap() += amount;
            }
            *times += 1;
        }
        let mut lose = self.lose_answers.lock().unwrap();
        if *lose > 0 {
            *lose -= 1;
            // The connection died mid-query: the write is in, the caller never hears.
            return Err(TestError::Down(0));
        }
        Ok(*self.balance.lock().unwrap())
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_retried_after_a_lost_answer_is_applied_once() {
    let upstream = Upstream::default();
    *upstream.lose_answers.lock().unwrap() = 2;
    let policy = retrying(3);
    let balance = policy
        .call(|| async {
            let key = context()
                .expect("inside an attempt")
                .idempotency_key()
                .clone();
            upstream.credit(key.as_str(), 100).await
        })
        .await;
    assert_eq!(balance, Ok(100), "credited once, not three times");
    let applied = upstream.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1, "one key for the whole call: {applied:?}");
    assert_eq!(
        applied.values().copied().collect::<Vec<_>>(),
        [3],
        "three attempts"
    );

    // A second logical call is a second write.
    let balance = policy
        .call(|| async {
            let key = context()
                .expect("inside an attempt")
                .idempotency_key()
                .clone();
            upstream.credit(key.as_str(), 5).await
        })
        .await;
    assert_eq!(balance, Ok(105));
}

/// An annotated function: its expansion drives the same attempts.
#[resilient::resilient(retries = 2, backoff = "1ms")]
async fn annotated(seen: Seen) -> Result<u32, TestError> {
    flaky(seen, 3).await
}

#[tokio::test(start_paused = true)]
async fn an_annotated_functions_attempts_see_the_context_too() {
    let seen = Seen::default();
    assert_eq!(annotated(seen.clone()).await, Ok(3));
    let numbers: Vec<u32> = seen.all().iter().map(CallContext::attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let keys = seen.keys();
    assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
}

/// The caller's own key, from an argument: a request id it already has.
#[resilient::resilient(retries = 2, backoff = "1ms", idempotency_key = request_key.clone())]
async fn annotated_with_key(seen: Seen, request_key: IdempotencyKey) -> Result<u32, TestError> {
    let _ = &request_key;
    flaky(seen, 2).await
}

/// The lean path: a breaker only, no retries.
#[resilient::resilient(breaker = "context::lean", idempotency_key = IdempotencyKey::new("order-9").unwrap())]
async fn lean_with_key(seen: Seen) -> Result<u32, TestError> {
    flaky(seen, 1).await
}

#[tokio::test(start_paused = true)]
async fn the_attributes_idempotency_key_is_the_one_every_attempt_sees() {
    let seen = Seen::default();
    let key = IdempotencyKey::new("request-42").unwrap();
    assert_eq!(annotated_with_key(seen.clone(), key).await, Ok(2));
    assert_eq!(seen.keys(), ["request-42", "request-42"]);

    let lean = Seen::default();
    assert_eq!(lean_with_key(lean.clone()).await, Ok(1));
    assert_eq!(lean.keys(), ["order-9"]);
}
