//! The error types: what each says, and how a service's own error types absorb them
//! (`thiserror`'s `#[from]`, `anyhow`, `std::io::Error`, `?`).

mod common;

use common::*;
use resilient::{
    BreakerConfig, ConfigError, Policy, Registry, RegistryError, Rejection, TimeoutKind,
};

#[test]
fn every_rejection_displays_what_happened_and_what_to_do() {
    let cases = [
        (
            Rejection::CircuitOpen {
                breaker: "payments".into(),
                retry_after: Some(3 * SEC),
            },
            "circuit breaker `payments` is open: calls fail fast; it lets a probe through in 3s",
        ),
        (
            Rejection::CircuitOpen {
                breaker: "payments".into(),
                retry_after: None,
            },
            "circuit breaker `payments` is forced open by an operator: calls fail fast until it is reset",
        ),
        (
            Rejection::HalfOpenFull {
                breaker: "payments".into(),
            },
            "circuit breaker `payments` is half-open and all its probe slots are in use: try again shortly",
        ),
        (
            Rejection::BulkheadFull {
                bulkhead: "pool".into(),
                max_concurrent: 4,
            },
            "bulkhead `pool` is full (4 calls in flight): try again shortly or raise `max_concurrent`",
        ),
        (
            Rejection::Timeout {
                kind: TimeoutKind::Attempt,
                limit: 250 * MS,
            },
            "attempt timed out after 250ms",
        ),
        (
            Rejection::Timeout {
                kind: TimeoutKind::Total,
                limit: 2 * SEC,
            },
            "call timed out after 2s in total (attempts and backoff together)",
        ),
    ];
    for (rejection, text) in cases {
        assert_eq!(rejection.to_string(), text);
        assert_eq!(
            rejection.is_timeout(),
            !rejection.is_rejected_before_running()
        );
    }
}

fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn the_error_types_are_std_errors_that_cross_threads() {
    assert_error::<Rejection>();
    assert_error::<ConfigError>();
    assert_error::<RegistryError>();
}

#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("the dependency is down")]
    Down,
    #[error(transparent)]
    Resilience(#[from] Rejection),
}

fn forced_open_policy(registry: &Registry) -> Policy {
    registry
        .declare_breaker("db", BreakerConfig::default())
        .unwrap()
        .force_open();
    Policy::builder("fetch")
        .breaker("db")
        .build_in(registry)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_thiserror_from_absorbs_rejections_without_glue() {
    let registry = Registry::new();
    let policy = forced_open_policy(&registry);
    let result: Result<(), ServiceError> = policy.call(|| async { Err(ServiceError::Down) }).await;
    let err = result.unwrap_err();
    assert!(matches!(
        err,
        ServiceError::Resilience(Rejection::CircuitOpen {
            retry_after: None,
            ..
        })
    ));
    assert!(
        err.to_string()
            .starts_with("circuit breaker `db` is forced open")
    );

    registry.get_breaker("db").unwrap().reset();
    let result: Result<(), ServiceError> = policy.call(|| async { Err(ServiceError::Down) }).await;
    assert_eq!(result.unwrap_err().to_string(), "the dependency is down");
}

#[tokio::test(start_paused = true)]
async fn anyhow_and_io_errors_absorb_rejections_as_they_are() {
    let registry = Registry::new();
    let policy = forced_open_policy(&registry);

    let result: anyhow::Result<()> = policy.call(|| async { Ok(()) }).await;
    let err = result.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<Rejection>(),
        Some(Rejection::CircuitOpen { .. })
    ));

    let result: std::io::Result<()> = policy.call(|| async { Ok(()) }).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(err.get_ref().unwrap().is::<Rejection>());

    let timeout: std::io::Error = Rejection::Timeout {
        kind: TimeoutKind::Attempt,
        limit: SEC,
    }
    .into();
    assert_eq!(timeout.kind(), std::io::ErrorKind::TimedOut);

    fn question_mark() -> anyhow::Result<()> {
        Err(Rejection::HalfOpenFull {
            breaker: "db".into(),
        })?;
        Ok(())
    }
    assert!(question_mark().unwrap_err().is::<Rejection>());
}
