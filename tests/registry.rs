//! The registry: get-or-create with a warning, redeclaration as reconfiguration in place,
//! listing, the naming rule, the bound on implicit creation, removal, snapshots under traffic.
//! The error types, as a service's own errors absorb them, are in `errors.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use resilient::{
    BreakerConfig, BreakerState, BulkheadConfig, DEFAULT_IMPLICIT_LIMIT, MAX_NAME_LEN, Policy,
    Registry, RegistryError, Rejection, SlidingWindow, TripPolicy, resilient,
};

#[test]
fn an_undeclared_breaker_gets_the_default_config_and_one_warning_naming_it() {
    let capture = Capture::start();
    let registry = Registry::new();
    let breaker = registry.breaker("feature_store").unwrap();
    assert_eq!(
        breaker.config().trip(),
        TripPolicy::FailureRate {
            threshold: 0.5,
            window: SlidingWindow::Calls(100),
            minimum_calls: 20,
        }
    );
    assert!(registry.breaker("feature_store").unwrap().same_as(&breaker));
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].target, "resilient::registry");
    assert!(warnings[0].text.contains("feature_store"), "{warnings:?}");
    assert!(warnings[0].text.contains("declare"), "{warnings:?}");

    let bulkhead = registry.bulkhead("feature_store").unwrap();
    assert_eq!(bulkhead.config(), BulkheadConfig::default());
    assert_eq!(bulkhead.config(), BulkheadConfig::new(25));
    assert!(
        registry
            .bulkhead("feature_store")
            .unwrap()
            .same_as(&bulkhead)
    );
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
        registry.breaker("a").unwrap().config().trip(),
        TripPolicy::ConsecutiveFailures(7)
    );
    assert_eq!(
        registry.bulkhead("a").unwrap().config(),
        BulkheadConfig::new(3)
    );
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
    registry.breaker("zebra").unwrap();
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
    registry.bulkhead("cache").unwrap();
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
fn every_bad_name_is_refused_by_every_entry_point() {
    let registry = Registry::new();
    let too_long = "x".repeat(MAX_NAME_LEN + 1);
    for name in [
        "", "   ", "\n", "a\tb", "a\r\nb", " lead", "trail ", &too_long,
    ] {
        let err = registry
            .declare_breaker(name, BreakerConfig::default())
            .unwrap_err();
        assert_eq!((err.field(), err.subject()), ("name", "circuit breaker"));
        let err = registry
            .declare_bulkhead(name, BulkheadConfig::default())
            .unwrap_err();
        assert_eq!((err.field(), err.subject()), ("name", "bulkhead"));

        let err = registry.breaker(name).unwrap_err();
        assert!(
            matches!(&err, RegistryError::InvalidName(e) if e.field() == "name"),
            "{name:?}: {err}"
        );
        let err = registry.bulkhead(name).unwrap_err();
        assert!(
            matches!(&err, RegistryError::InvalidName(e) if e.subject() == "bulkhead"),
            "{name:?}: {err}"
        );

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
    assert!(registry.call_site_metrics().is_empty());

    // The limit is inclusive, and names may hold spaces and any printable script.
    let longest = "x".repeat(MAX_NAME_LEN);
    for name in [&*longest, "feature store", "données::prix"] {
        registry.breaker(name).unwrap();
        registry.bulkhead(name).unwrap();
    }
}

#[test]
fn past_the_implicit_limit_a_new_name_is_a_typed_error_and_creates_nothing() {
    let registry = Registry::new();
    assert_eq!(registry.implicit_limit(), DEFAULT_IMPLICIT_LIMIT);
    assert_eq!(DEFAULT_IMPLICIT_LIMIT, 1_000);
    for i in 0..DEFAULT_IMPLICIT_LIMIT {
        registry.breaker(&format!("user-{i}")).unwrap();
    }
    let err = registry.breaker("user-1000").unwrap_err();
    assert_eq!(
        err,
        RegistryError::LimitReached {
            kind: "circuit breaker",
            name: "user-1000".into(),
            limit: 1_000,
        }
    );
    assert!(err.to_string().contains("`user-1000`"), "{err}");
    assert!(err.to_string().contains("1000"), "{err}");
    assert_eq!(registry.breakers().len(), 1_000);
    assert!(registry.get_breaker("user-1000").is_none());
    // Existing names are still served.
    registry.breaker("user-7").unwrap();

    registry.set_implicit_limit(1);
    registry.bulkhead("pool").unwrap();
    let err = registry.bulkhead("other").unwrap_err();
    assert!(
        matches!(
            &err,
            RegistryError::LimitReached {
                kind: "bulkhead",
                limit: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(registry.get_bulkhead("other").is_none());

    // The builder turns the refusal into a configuration error naming the name and the limit.
    let err = Policy::builder("fetch")
        .breaker("user-1000")
        .build_in(&registry)
        .unwrap_err();
    assert_eq!(err.field(), "name", "{err}");
    assert!(err.to_string().contains("\"user-1000\""), "{err}");
    assert!(err.to_string().contains("implicit limit: 1"), "{err}");
    assert_eq!(registry.breakers().len(), 1_000);
}

#[test]
fn past_the_implicit_limit_a_new_policy_name_is_refused_and_creates_nothing() {
    let registry = Registry::new();
    registry.set_implicit_limit(2);
    for name in ["p1", "p2"] {
        Policy::builder(name).build_in(&registry).unwrap();
    }
    let err = Policy::builder("p3")
        .breaker("fresh")
        .build_in(&registry)
        .unwrap_err();
    assert_eq!(err.field(), "name", "{err}");
    assert!(err.subject().starts_with("call site \"p3\""), "{err}");
    assert!(err.to_string().contains("implicit limit: 2"), "{err}");
    assert!(registry.get_breaker("fresh").is_none());
    assert_eq!(registry.call_site_metrics().len(), 2);
    // A name already there is served, and removing one makes room.
    Policy::builder("p1").build_in(&registry).unwrap();
    assert!(registry.remove_call_site("p1"));
    assert!(!registry.remove_call_site("p1"));
    Policy::builder("p3").build_in(&registry).unwrap();
    let names: Vec<_> = registry
        .call_site_metrics()
        .into_iter()
        .map(|site| site.name)
        .collect();
    assert_eq!(names, [Arc::from("p2"), Arc::from("p3")]);
}

#[derive(Debug)]
struct Unavailable;

impl From<Rejection> for Unavailable {
    fn from(_: Rejection) -> Self {
        Unavailable
    }
}

#[resilient(
    breaker = "attributed_db",
    bulkhead = "attributed_pool",
    name = "attributed::get"
)]
async fn attributed() -> Result<u32, Unavailable> {
    Ok(7)
}

// The only test of this file that uses the process-wide registry: it sets its limit to zero.
#[tokio::test(start_paused = true)]
async fn names_from_resilient_attributes_are_never_refused() {
    let registry = resilient::registry();
    registry.set_implicit_limit(0);
    assert!(matches!(
        registry.breaker("not_attributed"),
        Err(RegistryError::LimitReached { limit: 0, .. })
    ));
    // Its first call builds the policy: breaker, bulkhead and call site created all the same,
    // as the program's code, not its input, bounds them.
    assert_eq!(attributed().await.unwrap(), 7);
    assert!(registry.get_breaker("attributed_db").is_some());
    assert!(registry.get_bulkhead("attributed_pool").is_some());
    assert!(registry.breaker("attributed_db").is_ok());
    assert!(
        Policy::builder("attributed::get")
            .breaker("attributed_db")
            .bulkhead("attributed_pool")
            .build()
            .is_ok()
    );
}

#[test]
fn declared_names_do_not_count_toward_the_implicit_limit() {
    let registry = Registry::new();
    registry.set_implicit_limit(1);
    for name in ["a", "b", "c"] {
        registry
            .declare_breaker(name, BreakerConfig::default())
            .unwrap();
        registry
            .declare_bulkhead(name, BulkheadConfig::default())
            .unwrap();
    }
    registry.breaker("x").unwrap();
    registry.bulkhead("x").unwrap();
    assert!(registry.breaker("y").is_err());
    assert!(registry.bulkhead("y").is_err());
    // Declaring the implicit name takes it off the count, which makes room for another.
    registry
        .declare_breaker("x", BreakerConfig::consecutive_failures(2))
        .unwrap();
    registry
        .declare_bulkhead("x", BulkheadConfig::new(2))
        .unwrap();
    registry.breaker("y").unwrap();
    registry.bulkhead("y").unwrap();
    assert!(registry.breaker("z").is_err());
    assert_eq!(registry.breakers().len(), 5);
    assert_eq!(registry.bulkheads().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn removing_frees_the_name_and_leaves_existing_handles_working() {
    let registry = Registry::new();
    registry.set_implicit_limit(1);
    let old = registry.breaker("a").unwrap();
    assert!(registry.breaker("b").is_err());
    assert!(registry.remove_breaker("a"));
    assert!(!registry.remove_breaker("a"));
    assert!(registry.get_breaker("a").is_none());
    assert!(registry.breakers().is_empty());
    // The removed breaker still records and trips for whoever holds it.
    for _ in 0..20 {
        fail(&old);
    }
    assert_eq!(old.state(), BreakerState::Open);
    // Its implicit slot is free again, and its name now means a new breaker.
    registry.breaker("b").unwrap();
    assert!(registry.remove_breaker("b"));
    let new = registry.breaker("a").unwrap();
    assert!(!new.same_as(&old));
    assert_eq!(new.state(), BreakerState::Closed);

    // A declared entry can be removed too; a bulkhead keeps its slots for its holders.
    let pool = registry
        .declare_bulkhead("pool", BulkheadConfig::new(1))
        .unwrap();
    let slot = pool.try_acquire().unwrap();
    assert!(registry.remove_bulkhead("pool"));
    assert!(!registry.remove_bulkhead("pool"));
    assert!(pool.try_acquire().is_err());
    drop(slot);
    assert!(pool.try_acquire().is_ok());
    let fresh = registry.bulkhead("pool").unwrap();
    assert!(!fresh.same_as(&pool));
}

#[test]
fn a_snapshot_and_a_metrics_export_run_while_names_are_looked_up_created_and_removed() {
    let registry = Registry::new();
    registry.set_implicit_limit(usize::MAX);
    for i in 0..2_000 {
        registry
            .declare_breaker(&format!("dep-{i:04}"), BreakerConfig::default())
            .unwrap();
    }
    let kept = registry.breaker("dep-0042").unwrap();
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..20 {
                        let snapshot = registry.snapshot();
                        let declared = snapshot
                            .breakers
                            .iter()
                            .filter(|b| b.name.starts_with("dep-"))
                            .count();
                        assert_eq!(declared, 2_000);
                        assert!(snapshot.breakers.is_sorted_by(|a, b| a.name <= b.name));
                        registry.export_metrics();
                    }
                })
            })
            .collect();
        for i in 0..2_000 {
            assert!(registry.breaker("dep-0042").unwrap().same_as(&kept));
            let name = format!("burst-{i}");
            registry.breaker(&name).unwrap();
            registry.bulkhead(&name).unwrap();
            assert!(registry.remove_breaker(&name));
            assert!(registry.remove_bulkhead(&name));
        }
        for reader in readers {
            reader.join().unwrap();
        }
    });
    assert_eq!(registry.breakers().len(), 2_000);
    assert!(registry.bulkheads().is_empty());
}
