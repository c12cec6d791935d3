//! Stale-while-failing answers (issue 11 §5): the last good value per key, served when a call
//! fails or is rejected while it is at most the cache's max age old, on the paused clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{Capture, MS, SEC, TestError};
use resilient::cache::{CacheConfig, observe};
use resilient::config::FileConfig;
use resilient::{BreakerConfig, Event, Policy, Registry};
use tokio::time::advance;

const MINUTE: Duration = Duration::from_secs(60);

/// A dependency that answers `value` while up, and fails while down.
#[derive(Clone, Default)]
struct Upstream {
    down: Arc<AtomicBool>,
    value: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

impl Upstream {
    fn up(&self, value: u32) {
        self.value.store(value, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
    }

    fn down(&self) {
        self.down.store(true, Ordering::Relaxed);
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One call through `policy`, cached under `key`, with the age of a stale answer.
    async fn ask(&self, policy: &Policy, key: &str) -> (Result<u32, TestError>, Option<Duration>) {
        let upstream = self.clone();
        observe(policy.call_cached(key.to_owned(), move || {
            let upstream = upstream.clone();
            async move {
                upstream.calls.fetch_add(1, Ordering::Relaxed);
                if upstream.down.load(Ordering::Relaxed) {
                    Err(TestError::Down(0))
                } else {
                    Ok(upstream.value.load(Ordering::Relaxed))
                }
            }
        }))
        .await
    }
}

fn cached_for(max_age: Duration) -> Policy {
    common::build(Policy::builder("quote").cache(max_age))
}

#[tokio::test(start_paused = true)]
async fn an_outage_after_one_success_serves_the_cached_value_for_five_minutes_then_the_error() {
    let policy = cached_for(5 * MINUTE);
    let upstream = Upstream::default();
    upstream.up(42);
    assert_eq!(upstream.ask(&policy, "ada").await, (Ok(42), None));

    upstream.down();
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Ok(42), Some(Duration::ZERO)),
        "at once"
    );
    advance(4 * MINUTE + 59 * SEC).await;
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Ok(42), Some(4 * MINUTE + 59 * SEC))
    );
    advance(SEC).await;
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Ok(42), Some(5 * MINUTE)),
        "the limit is inclusive: exactly five minutes old is still served"
    );
    advance(MS).await;
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Err(TestError::Down(0)), None),
        "past five minutes: the error"
    );
    assert_eq!(
        policy.stale_cache::<String, u32>().unwrap().len(),
        0,
        "the expired value is dropped, not kept"
    );
    assert_eq!(upstream.calls(), 5, "every call asked the dependency first");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_is_answered_from_the_cache_without_calling() {
    let registry = Registry::new();
    registry
        .declare_breaker("quotes", BreakerConfig::consecutive_failures(1))
        .unwrap();
    let policy = Policy::builder("quote")
        .cache(5 * MINUTE)
        .breaker("quotes")
        // Rejections are not worth a retry here; an open breaker is still an outage.
        .retry_if(|error: &TestError| !matches!(error, TestError::Rejected(_)))
        .build_in(&registry)
        .unwrap();
    let upstream = Upstream::default();
    upstream.up(7);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    assert_eq!(upstream.ask(&policy, "ada").await.0, Ok(7), "the failure");
    advance(10 * SEC).await;
    let (answer, age) = upstream.ask(&policy, "ada").await;
    assert_eq!((answer, age), (Ok(7), Some(10 * SEC)), "the open breaker");
    assert_eq!(upstream.calls(), 2, "the open breaker let no call through");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_is_answered_from_the_cache() {
    let policy = common::build(
        Policy::builder("quote")
            .cache(5 * MINUTE)
            .timeout(SEC)
            .retry_if(|error: &TestError| !matches!(error, TestError::Rejected(_))),
    );
    let ask = |delay: Duration| {
        observe(policy.call_cached("ada", move || async move {
            tokio::time::sleep(delay).await;
            Ok::<u32, TestError>(delay.as_secs() as u32)
        }))
    };
    assert_eq!(ask(Duration::ZERO).await, (Ok(0), None));
    assert_eq!(
        ask(MINUTE).await,
        (Ok(0), Some(SEC)),
        "cut short after 1 s: the value stored 1 s before"
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_an_answer_and_is_not_covered_up() {
    let policy = common::build(
        Policy::builder("quote")
            .cache(5 * MINUTE)
            .retry_if(|error: &TestError| *error != TestError::Fatal),
    );
    let ask = |answer: Result<u32, TestError>| {
        policy.call_cached("ada", move || {
            let answer = answer.clone();
            async move { answer }
        })
    };
    ask(Ok(1)).await.unwrap();
    assert_eq!(
        ask(Err(TestError::Fatal)).await,
        Err(TestError::Fatal),
        "not transient (a 404): returned as it is"
    );
    assert_eq!(
        ask(Err(TestError::Down(0))).await,
        Ok(1),
        "transient: served"
    );
}

#[tokio::test(start_paused = true)]
async fn different_keys_do_not_share_values() {
    let policy = cached_for(5 * MINUTE);
    let upstream = Upstream::default();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.up(2);
    upstream.ask(&policy, "bob").await.0.unwrap();
    upstream.down();
    assert_eq!(upstream.ask(&policy, "ada").await.0, Ok(1));
    assert_eq!(upstream.ask(&policy, "bob").await.0, Ok(2));
    assert_eq!(
        upstream.ask(&policy, "cy").await,
        (Err(TestError::Down(0)), None),
        "nothing cached for this key"
    );
}

#[tokio::test(start_paused = true)]
async fn a_value_stored_after_the_outage_began_is_the_one_served() {
    let policy = cached_for(5 * MINUTE);
    let upstream = Upstream::default();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    advance(MINUTE).await;
    assert_eq!(upstream.ask(&policy, "ada").await, (Ok(1), Some(MINUTE)));
    // The dependency flaps: one answer gets through, then it fails again.
    upstream.up(2);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    advance(4 * MINUTE + 30 * SEC).await;
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Ok(2), Some(4 * MINUTE + 30 * SEC)),
        "the newer value, aged from its own success (the first is 5½ minutes old)"
    );
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_by_the_capacity() {
    let policy = common::build(
        Policy::builder("quote")
            .cache(5 * MINUTE)
            .cache_capacity(100),
    );
    let cache = policy.stale_cache::<u32, u32>().unwrap();
    for key in 0..150 {
        cache.store(key, &key);
        assert!(cache.len() <= 100);
    }
    assert_eq!(cache.len(), 100);
    assert!(
        cache.serve(&49).is_none(),
        "the first 50 stored are evicted"
    );
    assert_eq!(cache.serve(&50).map(|stale| stale.value), Some(50));
    assert_eq!(cache.serve(&149).map(|stale| stale.value), Some(149));

    // Storing a key again makes it the newest: the next eviction takes the next oldest.
    cache.store(50, &500);
    cache.store(1_000, &1_000);
    assert_eq!(cache.len(), 100);
    assert_eq!(cache.serve(&50).map(|stale| stale.value), Some(500));
    assert!(cache.serve(&51).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stale_answer_is_counted_logged_and_sent_as_an_event() {
    let registry = Registry::new();
    let mut events = registry.listeners().subscribe();
    let policy = Policy::builder("quote")
        .cache(5 * MINUTE)
        .build_in(&registry)
        .unwrap();
    let upstream = Upstream::default();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    advance(90 * SEC).await;
    let capture = Capture::start();
    upstream.ask(&policy, "ada").await.0.unwrap();

    assert_eq!(
        events.try_recv().unwrap(),
        Event::StaleServed {
            call_site: "quote".into(),
            age: 90 * SEC
        }
    );
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].target, "resilient::cache");
    assert!(warnings[0].text.contains("call_site=quote"), "{warnings:?}");
    assert!(warnings[0].text.contains("age=90s"), "{warnings:?}");
    assert_eq!(policy.stats().metrics("quote".into()).stale_served, 1);
    let site = &registry.snapshot().call_sites[0];
    assert_eq!((site.calls, site.stale_served, site.fallbacks), (2, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_outage_served_from_the_cache_warns_once_per_ten_seconds_with_a_count() {
    let policy = cached_for(5 * MINUTE);
    let upstream = Upstream::default();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    let capture = Capture::start();
    for _ in 0..50 {
        upstream.ask(&policy, "ada").await.0.unwrap();
    }
    let stale_lines = |level: tracing::Level| {
        capture
            .events()
            .into_iter()
            .filter(|event| event.target == "resilient::cache" && event.level == level)
            .collect::<Vec<_>>()
    };
    let warnings = stale_lines(tracing::Level::WARN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .text
            .contains("stale_answers_since_last_warning=0"),
        "{warnings:?}"
    );
    assert_eq!(stale_lines(tracing::Level::DEBUG).len(), 49);

    // Still within the ten seconds: nothing more at WARN.
    advance(9 * SEC).await;
    upstream.ask(&policy, "ada").await.0.unwrap();
    assert_eq!(stale_lines(tracing::Level::WARN).len(), 1);

    // Past them, the next stale answer warns and says how many went by quietly.
    advance(SEC).await;
    upstream.ask(&policy, "ada").await.0.unwrap();
    let warnings = stale_lines(tracing::Level::WARN);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1]
            .text
            .contains("stale_answers_since_last_warning=50"),
        "{warnings:?}"
    );
    assert_eq!(policy.stats().metrics("quote".into()).stale_served, 52);
}

#[tokio::test(start_paused = true)]
async fn the_stale_answers_are_exported_as_a_metric() {
    let registry = Registry::new();
    let policy = Policy::builder("quote")
        .cache(5 * MINUTE)
        .build_in(&registry)
        .unwrap();
    let upstream = Upstream::default();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    for _ in 0..3 {
        upstream.ask(&policy, "ada").await.0.unwrap();
    }
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || registry.export_metrics());
    let stale = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| key.key().name() == "resilient_stale_served_total")
        .map(|(key, _, _, value)| (key.key().labels().next().unwrap().value().to_owned(), value));
    assert_eq!(
        stale,
        Some((
            "quote".to_owned(),
            metrics_util::debugging::DebugValue::Counter(3)
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_outlives_a_rebuild_of_the_policy_and_follows_the_new_limits() {
    let registry = Registry::new();
    let build = |max_age: Duration| {
        Policy::builder("quote")
            .cache(max_age)
            .build_in(&registry)
            .unwrap()
    };
    let first = build(5 * MINUTE);
    first.stale_cache::<u32, u32>().unwrap().store(1, &10);
    advance(2 * MINUTE).await;

    // A reload rebuilds the policy: the cache is the call site's, the limits the new policy's.
    let longer = build(10 * MINUTE);
    let shorter = build(MINUTE);
    let served = longer.stale_cache::<u32, u32>().unwrap().serve(&1).unwrap();
    assert_eq!((served.value, served.age), (10, 2 * MINUTE));
    assert!(
        shorter
            .stale_cache::<u32, u32>()
            .unwrap()
            .serve(&1)
            .is_none()
    );

    // Removing the call site forgets its cache with its counters.
    let kept = build(10 * MINUTE);
    kept.stale_cache::<u32, u32>().unwrap().store(2, &20);
    assert!(registry.remove_call_site("quote"));
    let fresh = build(10 * MINUTE);
    assert!(fresh.stale_cache::<u32, u32>().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_second_pair_of_types_gets_no_cache_and_one_warning() {
    let policy = cached_for(5 * MINUTE);
    assert!(policy.stale_cache::<String, u32>().is_some());
    let capture = Capture::start();
    assert!(policy.stale_cache::<u32, String>().is_none());
    assert!(policy.stale_cache::<u32, String>().is_none());
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "warned once: {warnings:?}");
    assert_eq!(warnings[0].target, "resilient::cache");
    drop(capture);

    // Its calls run uncached, and the first pair keeps its cache.
    let answer: Result<String, TestError> = policy
        .call_cached(1_u32, || async { Err(TestError::Down(0)) })
        .await;
    assert_eq!(answer, Err(TestError::Down(0)));
    assert!(policy.stale_cache::<String, u32>().is_some());
}

#[tokio::test(start_paused = true)]
async fn without_a_cache_or_with_the_call_site_switched_off_nothing_is_served() {
    let upstream = Upstream::default();
    let plain = common::build(Policy::builder("quote"));
    assert!(plain.stale_cache::<String, u32>().is_none());
    assert_eq!(plain.cache_config(), None);
    upstream.up(1);
    upstream.ask(&plain, "ada").await.0.unwrap();
    upstream.down();
    assert_eq!(upstream.ask(&plain, "ada").await.0, Err(TestError::Down(0)));

    let registry = Registry::new();
    let policy = Policy::builder("quote")
        .cache(5 * MINUTE)
        .build_in(&registry)
        .unwrap();
    upstream.up(1);
    upstream.ask(&policy, "ada").await.0.unwrap();
    upstream.down();
    assert!(registry.bypass_call_site("quote", true));
    assert_eq!(
        upstream.ask(&policy, "ada").await,
        (Err(TestError::Down(0)), None),
        "switched off: the plain call"
    );
    assert!(registry.bypass_call_site("quote", false));
    assert_eq!(upstream.ask(&policy, "ada").await.0, Ok(1));
}

#[test]
fn the_builder_refuses_bad_limits_naming_the_field() {
    let refused =
        |builder: resilient::PolicyBuilder| builder.build_in(&Registry::new()).unwrap_err();
    let quote = || Policy::builder("quote");
    for (builder, field) in [
        (quote().cache(Duration::ZERO), "cache"),
        (quote().cache(Duration::MAX), "cache"),
        (quote().cache(MINUTE).cache_capacity(0), "cache_capacity"),
        (
            quote().cache(MINUTE).cache_capacity(1_000_001),
            "cache_capacity",
        ),
        (quote().cache_capacity(0), "cache_capacity"),
    ] {
        let error = refused(builder);
        assert_eq!(error.field(), field, "{error}");
    }
    let default = common::build(quote().cache(MINUTE));
    assert_eq!(default.cache_config(), Some(CacheConfig::new(MINUTE)));
    assert_eq!(CacheConfig::new(MINUTE).capacity, 1_000);
    assert_eq!(
        CacheConfig::new(MINUTE)
            .with_capacity(0)
            .validate("quote")
            .unwrap_err()
            .field(),
        "cache_capacity"
    );
}

#[test]
fn the_file_fields_parse_and_bad_values_are_refused_naming_the_field() {
    let config = FileConfig::from_toml(
        "[call_sites.quote]\ncache = \"5m\"\ncache_capacity = 10\n\
         [call_sites.other]\ncache = \"off\"\n",
    )
    .unwrap();
    let quote = config.call_site("quote").unwrap();
    assert_eq!(
        (quote.cache, quote.cache_capacity),
        (Some(Some(5 * MINUTE)), Some(10))
    );
    assert_eq!(config.call_site("other").unwrap().cache, Some(None));
    let from_env = config
        .with_env([
            ("RESILIENT_CALL_SITE_QUOTE_CACHE", "1m"),
            ("RESILIENT_CALL_SITE_QUOTE_CACHE_CAPACITY", "20"),
        ])
        .unwrap();
    let quote = from_env.call_site("quote").unwrap();
    assert_eq!(
        (quote.cache, quote.cache_capacity),
        (Some(Some(MINUTE)), Some(20))
    );

    for (text, field) in [
        ("cache = \"0s\"", "cache"),
        ("cache = \"400days\"", "cache"),
        ("cache = \"soon\"", "cache"),
        ("cache_capacity = 0", "cache_capacity"),
        ("cache_capacity = 1000001", "cache_capacity"),
        ("cache_capacity = -1", "cache_capacity"),
    ] {
        let error = FileConfig::from_toml(&format!("[call_sites.quote]\n{text}\n")).unwrap_err();
        assert_eq!(error.field_name(), Some(field), "{text}: {error}");
        assert_eq!(
            error.entry_name(),
            Some("call_sites.quote"),
            "{text}: {error}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_the_file_fields_to_a_call_site_and_keeps_its_cache() {
    use resilient::__private::{CallSite, Spec};
    static SITE: CallSite = CallSite::new(Spec {
        name: "stale_cache::site",
        breaker: None,
        bulkhead: None,
        timeout: None,
        total_timeout: None,
        retries: 0,
        backoff: None,
        max_backoff: None,
        jitter: None,
        hedge: None,
        hedges: 1,
        cache: Some(Duration::from_secs(60)),
        cache_capacity: None,
    });
    let registry = Arc::new(Registry::new());
    let reload = |text: &str| {
        let report = registry
            .reload(&FileConfig::from_toml(text).unwrap())
            .unwrap();
        report
            .changes
            .into_iter()
            .flat_map(|change| change.fields)
            .collect::<Vec<_>>()
    };
    let policy = || registry.scope(async { SITE.policy() });

    assert_eq!(
        policy().await.cache_config(),
        Some(CacheConfig::new(Duration::from_secs(60))),
        "the attribute's"
    );
    let changes =
        reload("[call_sites.\"stale_cache::site\"]\ncache = \"5m\"\ncache_capacity = 10\n");
    assert_eq!(changes, ["cache", "cache_capacity"]);
    let cached = policy().await;
    assert_eq!(
        cached.cache_config(),
        Some(CacheConfig::new(5 * MINUTE).with_capacity(10))
    );
    cached.stale_cache::<u32, u32>().unwrap().store(1, &10);

    reload("[call_sites.\"stale_cache::site\"]\ncache = \"10m\"\n");
    let rebuilt = policy().await;
    assert_eq!(rebuilt.cache_config(), Some(CacheConfig::new(10 * MINUTE)));
    let served = rebuilt
        .stale_cache::<u32, u32>()
        .unwrap()
        .serve(&1)
        .unwrap();
    assert_eq!(
        served.value, 10,
        "the rebuilt policy serves what the first one stored"
    );

    reload("[call_sites.\"stale_cache::site\"]\ncache = \"off\"\n");
    assert_eq!(policy().await.cache_config(), None);
}
