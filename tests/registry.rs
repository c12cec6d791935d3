//! The registry: get-or-create with a warning, redeclaration as reconfiguration in place,
//! listing, empty names; and the error types as a service's own errors absorb them.

mod common;

use std::time::Duration;

use common::*;
use resilient::{
    BreakerConfig, BreakerState, BulkheadConfig, ConfigError, Policy, Registry, Rejection,
    SlidingWindow, TimeoutKind, TripPolicy,
};

#[test]
fn an_undeclared_breaker_gets_the_default_config_and_one_warning_naming_it() {
    let capture = Capture::start();
    let registry = Registry::new();
    let breaker = registry.breaker("feature_store");
    assert_eq!(
        breaker.config().trip(),
        TripPolicy::FailureRate {
            threshold: 0.5,
            window: SlidingWindow::Calls(100),
            minimum_calls: 20,
        }
    );
    assert!(registry.breaker("feature_store").same_as(&breaker));
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].target, "resilient::registry");
    assert!(warnings[0].text.contains("feature_store"), "{warnings:?}");
    assert!(warnings[0].text.contains("declare"), "{warnings:?}");

    let bulkhead = registry.bulkhead("feature_store");
    assert_eq!(bulkhead.config(), BulkheadConfig::default());
    assert_eq!(bulkhead.config(), BulkheadConfig::new(25));
    assert!(registry.bulkhead("feature_store").same_as(&bulkhead));
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1].text.contains("bulkhead `feature_store`"),
        "{warnings:?}"
    );
}

#[test]
fn a_declared_name_and_a_policy_naming_it_warn_about_nothing() {
    let capture = Capture::start();
    let registry = Registry::new();
    registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(3))
        .unwrap();
    registry
        .declare_bulkhead("db", BulkheadConfig::new(4))
        .unwrap();
    let policy = Policy::builder("fetch")
        .breaker("db")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    assert_eq!(
        policy.breaker().unwrap().config().trip(),
        TripPolicy::ConsecutiveFailures(3)
    );
    assert_eq!(policy.bulkhead().unwrap().config(), BulkheadConfig::new(4));
    assert!(capture.warnings().is_empty(), "{:?}", capture.warnings());

    // A policy naming an undeclared breaker is what the warning is for.
    Policy::builder("other")
        .breaker("undeclared")
        .build_in(&registry)
        .unwrap();
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].text.contains("undeclared"), "{warnings:?}");
}

#[test]
fn undeclared_names_get_the_registry_default_once_it_is_set() {
    let registry = Registry::new();
    let err = registry
        .set_default_breaker_config(BreakerConfig::consecutive_failures(0))
        .unwrap_err();
    assert_eq!(err.field(), "consecutive_failures");
    let err = registry
        .set_default_bulkhead_config(BulkheadConfig::new(0))
        .unwrap_err();
    assert_eq!(err.field(), "max_concurrent");

    registry
        .set_default_breaker_config(BreakerConfig::consecutive_failures(7))
        .unwrap();
    registry
        .set_default_bulkhead_config(BulkheadConfig::new(3))
        .unwrap();
    assert_eq!(
        registry.breaker("a").config().trip(),
        TripPolicy::ConsecutiveFailures(7)
    );
    assert_eq!(registry.bulkhead("a").config(), BulkheadConfig::new(3));
}

#[tokio::test(start_paused = true)]
async fn redeclaring_a_breaker_reconfigures_it_in_place_keeping_state_and_handles() {
    let registry = Registry::new();
    let early = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(2))
        .unwrap();
    fail(&early);
    let same = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(3))
        .unwrap();
    assert!(same.same_as(&early));
    assert!(registry.get_breaker("db").unwrap().same_as(&early));
    assert_eq!(early.config().trip(), TripPolicy::ConsecutiveFailures(3));
    // The failure from before the redeclaration still counts: 1 + 2 = 3.
    fail_n(&early, 2);
    assert_eq!(early.state(), BreakerState::Open);

    registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(3).with_open_wait(5 * SEC),
        )
        .unwrap();
    assert_eq!(
        early.state(),
        BreakerState::Open,
        "an open breaker stays open"
    );

    // An invalid redeclaration changes nothing.
    let err = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(0))
        .unwrap_err();
    assert!(err.to_string().contains("\"db\""), "{err}");
    assert_eq!(early.config().trip(), TripPolicy::ConsecutiveFailures(3));
    assert_eq!(registry.breakers().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_redeclaration_with_another_window_starts_a_closed_breaker_over() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::failure_rate(0.8, SlidingWindow::Calls(10), 4),
        )
        .unwrap();
    fail_n(&breaker, 3);
    succeed(&breaker); // 75 %: below the threshold
    assert_eq!(breaker.metrics().calls_in_window, 4);

    // Same window, new threshold: the window is kept.
    registry
        .declare_breaker(
            "db",
            BreakerConfig::failure_rate(0.9, SlidingWindow::Calls(10), 4),
        )
        .unwrap();
    assert_eq!(breaker.metrics().calls_in_window, 4);

    // Another window size: a new, empty window.
    registry
        .declare_breaker(
            "db",
            BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(20), 4),
        )
        .unwrap();
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.state, metrics.calls_in_window),
        (BreakerState::Closed, 0)
    );
    fail_n(&breaker, 3);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn every_breaker_and_bulkhead_is_listed_by_name_with_its_state_and_counters() {
    let registry = Registry::new();
    let payments = registry
        .declare_breaker("payments", BreakerConfig::consecutive_failures(1))
        .unwrap();
    registry
        .declare_breaker("accounts", BreakerConfig::consecutive_failures(5))
        .unwrap();
    registry.breaker("zebra");
    fail(&payments);
    let _ = payments.try_acquire();
    let breakers = registry.breakers();
    let names: Vec<&str> = breakers.iter().map(|b| &*b.name).collect();
    assert_eq!(names, ["accounts", "payments", "zebra"]);
    let listed = &breakers[1];
    assert_eq!(listed.state, BreakerState::Open);
    assert_eq!((listed.failures, listed.rejected), (1, 1));
    assert_eq!(listed.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(breakers[0].state, BreakerState::Closed);

    let pool = registry
        .declare_bulkhead("pool", BulkheadConfig::new(2))
        .unwrap();
    registry.bulkhead("cache");
    let _slot = pool.try_acquire().unwrap();
    let bulkheads = registry.bulkheads();
    let listed: Vec<(&str, usize, usize)> = bulkheads
        .iter()
        .map(|b| (&*b.name, b.in_use, b.max_concurrent))
        .collect();
    assert_eq!(listed, [("cache", 0, 25), ("pool", 1, 2)]);
}

#[test]
fn the_process_wide_registry_is_one_registry() {
    assert!(std::ptr::eq(resilient::registry(), resilient::registry()));
}

#[test]
fn empty_names_are_config_errors() {
    let registry = Registry::new();
    for name in ["", "   "] {
        let err = registry
            .declare_breaker(name, BreakerConfig::default())
            .unwrap_err();
        assert_eq!(err.field(), "name");
        assert_eq!(err.subject(), "circuit breaker");
        let err = registry
            .declare_bulkhead(name, BulkheadConfig::default())
            .unwrap_err();
        assert_eq!((err.field(), err.subject()), ("name", "bulkhead"));

        let err = Policy::builder(name).build_in(&registry).unwrap_err();
        assert_eq!(err.field(), "name", "{err}");
        let err = Policy::builder("fetch")
            .breaker(name)
            .build_in(&registry)
            .unwrap_err();
        assert_eq!(err.field(), "breaker", "{err}");
        assert!(err.to_string().contains("policy \"fetch\""), "{err}");
        let err = Policy::builder("fetch")
            .bulkhead(name)
            .build_in(&registry)
            .unwrap_err();
        assert_eq!(err.field(), "bulkhead", "{err}");
    }
    assert!(registry.breakers().is_empty());
    assert!(registry.bulkheads().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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
