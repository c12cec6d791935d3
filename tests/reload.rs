//! Reloads are atomic and declarative, and reach call sites that already ran; each test runs
//! its annotated functions against a registry of its own (`Registry::scope`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{MS, SEC, TestError};
use resilient::config::{ChangeAction, EntryKind, FileConfig};
use resilient::{BreakerConfig, BreakerState, Registry, resilient};

fn file(text: &str) -> FileConfig {
    FileConfig::from_toml(text).expect("a valid configuration")
}

fn scoped_registry() -> Arc<Registry> {
    Arc::new(Registry::new())
}

#[resilient(name = "reload::lookup", timeout = "1s", retries = 1, backoff = "1ms")]
async fn lookup(work: std::time::Duration) -> Result<u32, TestError> {
    tokio::time::sleep(work).await;
    Ok(7)
}

#[tokio::test(start_paused = true)]
async fn a_reload_reaches_a_call_site_that_already_ran_and_keeps_its_counters() {
    let registry = scoped_registry();
    registry
        .scope(async {
            assert_eq!(lookup(100 * MS).await, Ok(7), "within the attribute's 1 s");

            let report = registry
                .reload(&file(
                    "[call_sites.\"reload::lookup\"]\ntimeout = \"10ms\"\n",
                ))
                .unwrap();
            assert_eq!(report.call_sites_changed, ["reload::lookup"]);
            let change = &report.changes[0];
            assert_eq!(
                (change.kind, change.name.as_str(), change.action),
                (EntryKind::CallSite, "reload::lookup", ChangeAction::Created)
            );
            assert_eq!(change.fields, ["timeout"]);

            let timed_out = lookup(100 * MS).await.unwrap_err();
            assert!(
                timed_out.rejection().is_some_and(|r| r.is_timeout()),
                "the file's 10 ms applies to the live call site: {timed_out:?}"
            );
        })
        .await;
    let metrics = registry.call_site_metrics();
    let site = metrics
        .iter()
        .find(|m| &*m.name == "reload::lookup")
        .unwrap();
    assert_eq!(site.calls, 2, "one counter across the policy swap");
    assert_eq!(site.retries, 1);
}

static SWITCHED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[resilient(name = "reload::switched", retries = 2, backoff = "1ms")]
async fn switched() -> Result<(), TestError> {
    SWITCHED_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    Err(TestError::Down(0))
}

fn switched_attempts() -> u32 {
    SWITCHED_ATTEMPTS.swap(0, Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn a_call_site_the_file_no_longer_lists_returns_to_its_attribute() {
    let registry = scoped_registry();
    registry
        .scope(async {
            let off = "[call_sites.\"reload::switched\"]\nenabled = false\n";
            registry.reload(&file(off)).unwrap();
            assert!(switched().await.is_err());
            assert_eq!(switched_attempts(), 1, "switched off: the plain call");

            let report = registry.reload(&file("")).unwrap();
            assert_eq!(report.call_sites_reverted, ["reload::switched"]);
            assert_eq!(report.changes[0].action, ChangeAction::Reverted);
            assert_eq!(report.changes[0].fields, ["enabled"]);
            assert!(switched().await.is_err());
            assert_eq!(
                switched_attempts(),
                3,
                "the kill switch went with the file: the attribute's 2 retries again"
            );
            assert!(registry.reload(&file("")).unwrap().changes.is_empty());
        })
        .await;
}

#[test]
fn a_file_that_parses_but_cannot_be_applied_changes_nothing() {
    let registry = Registry::new();
    registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(5))
        .unwrap();
    // Entries apply in name order: `db` and `a_bulkhead` would go first, then the bad name
    // would fail half-way.
    let text = "[breakers.db]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 2\n\
                [bulkheads.a_bulkhead]\nmax_concurrent = 3\n\
                [breakers.\"pay\\tments\"]\n";
    let config = file(text);
    let error = registry.reload(&config).unwrap_err();
    assert_eq!(error.field(), "name", "{error}");
    assert!(error.to_string().contains("pay\\tments"), "{error}");

    let db = registry.get_breaker("db").unwrap();
    assert_eq!(
        db.config().trip(),
        BreakerConfig::consecutive_failures(5).trip(),
        "the live breaker kept its configuration"
    );
    assert!(registry.get_bulkhead("a_bulkhead").is_none());
}

#[resilient(name = "reload::guarded", breaker = "shared_name")]
async fn guarded() -> Result<u32, TestError> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn parallel_scopes_use_their_own_breakers_under_one_name() {
    let broken = scoped_registry();
    let healthy = scoped_registry();
    broken
        .declare_breaker("shared_name", BreakerConfig::default())
        .unwrap()
        .force_open();
    let (in_broken, in_healthy) = tokio::join!(
        broken.scope(async { (guarded().await, guarded().await) }),
        healthy.scope(async { (guarded().await, guarded().await) }),
    );
    let rejected = in_broken.0.unwrap_err();
    assert!(
        matches!(
            rejected.rejection(),
            Some(resilient::Rejection::CircuitOpen { .. })
        ),
        "{rejected:?}"
    );
    assert!(in_broken.1.is_err());
    assert_eq!(in_healthy, (Ok(1), Ok(1)));
    assert_eq!(
        healthy.get_breaker("shared_name").unwrap().state(),
        BreakerState::Closed
    );
    assert!(
        resilient::registry().get_breaker("shared_name").is_none(),
        "the global registry was never touched"
    );
    let _ = SEC;
}
