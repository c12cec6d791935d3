//! gRPC (feature `tonic`): an annotated function returning `Result<T, tonic::Status>` retries
//! the codes worth retrying, honours the server's pushback, and answers its own caller with a
//! status made from what `resilient` refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilient::{BreakerConfig, Registry, resilient};
use tokio::time::Instant;
use tonic::{Code, Status};

/// The statuses the fake upstream answers with, one per attempt; then `OK`.
fn upstream(
    script: &'static [(Code, Option<&'static str>)],
    attempts: &AtomicU32,
) -> Result<u32, Status> {
    let attempt = attempts.fetch_add(1, Ordering::Relaxed) as usize;
    let Some(&(code, pushback)) = script.get(attempt) else {
        return Ok(7);
    };
    let mut status = Status::new(code, "upstream says no");
    if let Some(pushback) = pushback {
        status
            .metadata_mut()
            .insert(resilient::grpc::RETRY_PUSHBACK, pushback.parse().unwrap());
    }
    Err(status)
}

static UNAVAILABLE_THEN_OK: AtomicU32 = AtomicU32::new(0);

#[resilient(retries = 3, backoff = "10ms", jitter = none)]
async fn unavailable_then_ok() -> Result<u32, Status> {
    upstream(
        &[(Code::Unavailable, None), (Code::Unavailable, Some("2000"))],
        &UNAVAILABLE_THEN_OK,
    )
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_after_the_servers_pushback() {
    let started = Instant::now();
    assert_eq!(unavailable_then_ok().await.unwrap(), 7);
    assert_eq!(UNAVAILABLE_THEN_OK.load(Ordering::Relaxed), 3);
    // 10 ms of backoff, then the 2 s the server pushed back with.
    assert_eq!(started.elapsed(), Duration::from_millis(2010));
}

static NOT_FOUND: AtomicU32 = AtomicU32::new(0);

#[resilient(retries = 3, backoff = "10ms")]
async fn not_found() -> Result<u32, Status> {
    upstream(&[(Code::NotFound, None)], &NOT_FOUND)
}

static REFUSED_PUSHBACK: AtomicU32 = AtomicU32::new(0);

#[resilient(retries = 3, backoff = "10ms")]
async fn refused_pushback() -> Result<u32, Status> {
    upstream(&[(Code::Unavailable, Some("-1"))], &REFUSED_PUSHBACK)
}

#[tokio::test(start_paused = true)]
async fn other_codes_and_a_negative_pushback_are_returned_at_once() {
    assert_eq!(not_found().await.unwrap_err().code(), Code::NotFound);
    assert_eq!(NOT_FOUND.load(Ordering::Relaxed), 1);
    assert_eq!(
        refused_pushback().await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(REFUSED_PUSHBACK.load(Ordering::Relaxed), 1);
}

#[resilient(breaker = "grpc_ledger")]
async fn ledger() -> Result<u32, Status> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_answers_unavailable_with_a_pushback() {
    let registry = Arc::new(Registry::new());
    let breaker = registry
        .declare_breaker(
            "grpc_ledger",
            BreakerConfig::consecutive_failures(1).with_open_wait(Duration::from_secs(30)),
        )
        .unwrap();
    breaker.try_acquire().unwrap().record_failure();
    let status = registry.scope(ledger()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status
            .metadata()
            .get(resilient::grpc::RETRY_PUSHBACK)
            .unwrap(),
        "30000"
    );
    assert_eq!(
        status.metadata().get(resilient::grpc::DEPENDENCY).unwrap(),
        "grpc_ledger"
    );
}
