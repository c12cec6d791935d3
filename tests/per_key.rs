//! Per-key breakers (issue 10, item 5): each key its own breaker from one configuration, in
//! bounded memory, and a snapshot with bounded cardinality.

use std::time::Duration;

use resilient::family::{BreakerFamily, FamilyConfig, KeyRefused, MAX_LISTED_OPEN_KEYS};
use resilient::{BreakerConfig, BreakerState, Registry, Rejection};
use tokio::time::advance;

fn family(config: FamilyConfig) -> BreakerFamily {
    BreakerFamily::new("upstream", config).expect("a valid configuration")
}

fn two_failures() -> BreakerConfig {
    BreakerConfig::consecutive_failures(2).with_open_wait(Duration::from_secs(120))
}

fn fail(family: &BreakerFamily, key: &str, times: usize) {
    let breaker = family.breaker(key).expect("room for the key");
    for _ in 0..times {
        breaker.try_acquire().expect("closed").record_failure();
    }
}

#[tokio::test(start_paused = true)]
async fn one_bad_key_opens_only_its_breaker() {
    let family = family(FamilyConfig::new(two_failures()));
    fail(&family, "db-3", 2);

    let bad = family.breaker("db-3").unwrap();
    assert_eq!(bad.state(), BreakerState::Open);
    let rejection = bad.try_acquire().unwrap_err();
    assert!(
        matches!(rejection, Rejection::CircuitOpen { ref breaker, .. } if &**breaker == "upstream[\"db-3\"]")
    );
    for good in ["db-1", "db-2", "db-4"] {
        let breaker = family.breaker(good).unwrap();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker
            .try_acquire()
            .expect("another key is unaffected")
            .record_success();
    }
    assert!(
        family.breaker("db-3").unwrap().same_as(&bad),
        "a key keeps its breaker"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_key_limit_the_idlest_closed_key_makes_room() {
    let family = family(FamilyConfig::new(two_failures()).with_max_keys(3));
    for key in ["a", "b", "c"] {
        family.breaker(key).unwrap();
        advance(Duration::from_secs(1)).await;
    }
    family.breaker("a").unwrap(); // "b" is now the idlest
    family.breaker("d").unwrap();

    assert_eq!(family.len(), 3);
    assert!(!family.contains("b"));
    assert!(family.contains("a") && family.contains("c") && family.contains("d"));
    assert_eq!(family.snapshot().evicted, 1);
}

#[tokio::test(start_paused = true)]
async fn with_every_key_open_a_new_key_is_refused_with_a_typed_error() {
    let family = family(FamilyConfig::new(two_failures()).with_max_keys(2));
    fail(&family, "a", 2);
    fail(&family, "b", 2);

    let refused = family.breaker("c").unwrap_err();
    assert_eq!(
        refused,
        KeyRefused {
            family: "upstream".into(),
            max_keys: 2
        }
    );
    assert_eq!(family.len(), 2);
    assert!(family.contains("a") && family.contains("b") && !family.contains("c"));
    assert_eq!(family.snapshot().refused, 1);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_dropped() {
    let config = FamilyConfig::new(two_failures()).with_idle_after(Duration::from_secs(60));
    let family = family(config);
    family.breaker("old").unwrap();
    advance(Duration::from_secs(30)).await;
    family.breaker("recent").unwrap();
    advance(Duration::from_secs(31)).await;

    assert_eq!(family.evict_idle(), 1);
    assert!(!family.contains("old"));
    assert!(family.contains("recent"));
    assert_eq!(family.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_open_key_outlives_idleness_and_new_keys_until_its_open_wait_ends() {
    let config = FamilyConfig::new(two_failures())
        .with_idle_after(Duration::from_secs(10))
        .with_max_keys(1);
    let family = family(config);
    fail(&family, "bad", 2);
    let bad = family.breaker("bad").unwrap();

    advance(Duration::from_secs(60)).await;
    assert_eq!(
        family.evict_idle(),
        0,
        "idle but still waiting out its open wait"
    );
    assert!(
        family.breaker("new").is_err(),
        "a new key cannot push it out either"
    );
    assert!(family.breaker("bad").unwrap().same_as(&bad));
    assert!(family.breaker("bad").unwrap().try_acquire().is_err());

    advance(Duration::from_secs(121)).await;
    assert_eq!(family.evict_idle(), 1, "its open wait is over: it may go");
    assert!(!family.contains("bad"));
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_lists_totals_and_at_most_twenty_open_keys() {
    let family = family(FamilyConfig::new(two_failures()));
    for i in 0..30 {
        fail(&family, &format!("bad-{i:02}"), 2);
    }
    for i in 0..5 {
        family.breaker(&format!("good-{i}")).unwrap();
    }

    let snapshot = family.snapshot();
    assert_eq!(snapshot.keys, 35);
    assert_eq!(snapshot.open_keys, 30);
    assert_eq!(snapshot.listed_open.len(), MAX_LISTED_OPEN_KEYS);
    assert_eq!(snapshot.unlisted_open, 10);
    assert_eq!(&*snapshot.listed_open[0].breaker, "upstream[\"bad-00\"]");
    assert!(
        snapshot
            .listed_open
            .iter()
            .all(|key| key.state == BreakerState::Open
                && key.retry_after == Some(Duration::from_secs(120)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_key_gets_a_bounded_name() {
    let family = family(FamilyConfig::new(two_failures()));
    let key = "x".repeat(100_000);
    let breaker = family.breaker(&key).unwrap();
    assert!(breaker.name().len() < 80, "{}", breaker.name().len());
    assert!(breaker.name().starts_with("upstream[\"xxx"));
    assert!(family.breaker(&key).unwrap().same_as(&breaker));
}

#[tokio::test(start_paused = true)]
async fn any_hashable_key_type_works() {
    let family = family(FamilyConfig::new(two_failures()));
    let by_tenant = family.breaker(&(42_u64, "eu-west")).unwrap();
    assert_eq!(by_tenant.name(), "upstream[(42, \"eu-west\")]");
    assert!(
        !family
            .breaker(&(43_u64, "eu-west"))
            .unwrap()
            .same_as(&by_tenant)
    );
}

#[tokio::test(start_paused = true)]
async fn the_registry_shares_a_family_by_name() {
    let registry = Registry::new();
    let config = FamilyConfig::new(two_failures()).with_max_keys(7);
    let declared = registry.declare_breaker_family("upstream", config).unwrap();
    let found = registry.breaker_family("upstream").unwrap();
    fail(&found, "db-3", 2);
    assert_eq!(
        declared.breaker("db-3").unwrap().state(),
        BreakerState::Open
    );
    assert_eq!(found.config().max_keys(), 7);

    let implicit = registry.breaker_family("other").unwrap();
    assert_eq!(
        implicit.config().max_keys(),
        resilient::family::DEFAULT_MAX_KEYS
    );
    let names: Vec<_> = registry
        .breaker_family_snapshots()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["other".into(), "upstream".into()] as [std::sync::Arc<str>; 2]
    );
}

#[test]
fn bad_family_configurations_are_refused() {
    let zero_keys = FamilyConfig::new(two_failures()).with_max_keys(0);
    assert_eq!(
        BreakerFamily::new("f", zero_keys).unwrap_err().field(),
        "max_keys"
    );
    let zero_idle = FamilyConfig::new(two_failures()).with_idle_after(Duration::ZERO);
    assert_eq!(
        BreakerFamily::new("f", zero_idle).unwrap_err().field(),
        "idle_after"
    );
}

mod attribute {
    use std::sync::Arc;
    use std::time::Duration;

    use resilient::family::FamilyConfig;
    use resilient::{BreakerConfig, Registry, Rejection, resilient};

    #[derive(Debug, PartialEq)]
    enum Error {
        Down,
        Rejected(Rejection),
    }

    impl From<Rejection> for Error {
        fn from(rejection: Rejection) -> Self {
            Error::Rejected(rejection)
        }
    }

    #[resilient(breaker = "hosts", breaker_key = host)]
    async fn fetch(host: String, up: bool) -> Result<u32, Error> {
        if up { Ok(1) } else { Err(Error::Down) }
    }

    #[resilient(breaker = "hosts", breaker_key = (tenant, "eu"), retries = 2, backoff = "10ms")]
    async fn fetch_retried(tenant: u64, up: bool) -> Result<u32, Error> {
        if up { Ok(2) } else { Err(Error::Down) }
    }

    fn registry() -> Arc<Registry> {
        let registry = Arc::new(Registry::new());
        let breaker =
            BreakerConfig::consecutive_failures(2).with_open_wait(Duration::from_secs(30));
        registry
            .declare_breaker_family("hosts", FamilyConfig::new(breaker))
            .unwrap();
        registry
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_host_opens_only_its_own_breaker() {
        let registry = registry();
        registry
            .clone()
            .scope(async {
                for _ in 0..2 {
                    assert_eq!(fetch("bad".into(), false).await, Err(Error::Down));
                }
                let rejected = fetch("bad".into(), true).await.unwrap_err();
                assert!(matches!(
                    rejected,
                    Error::Rejected(Rejection::CircuitOpen { ref breaker, .. })
                        if &**breaker == "hosts[\"bad\"]"
                ));
                assert_eq!(fetch("good".into(), true).await, Ok(1));
            })
            .await;
        let family = registry.get_breaker_family("hosts").unwrap();
        assert_eq!(family.len(), 2);
        assert_eq!(family.snapshot().open_keys, 1);
        assert!(
            registry.get_breaker("hosts").is_none(),
            "no plain breaker behind the family"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_keys_open_breaker() {
        let registry = registry();
        registry
            .clone()
            .scope(async {
                // Three attempts: two failures open the key's breaker, the third is refused.
                let rejected = fetch_retried(7, false).await.unwrap_err();
                assert!(matches!(
                    rejected,
                    Error::Rejected(Rejection::CircuitOpen { .. })
                ));
                assert_eq!(fetch_retried(8, true).await, Ok(2));
            })
            .await;
        let family = registry.get_breaker_family("hosts").unwrap();
        let metrics = family.breaker(&(7_u64, "eu")).unwrap().metrics();
        assert_eq!(metrics.failures, 2);
        assert_eq!(metrics.rejected, 1);
    }
}

mod metrics_export {
    use std::collections::BTreeMap;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use resilient::Registry;
    use resilient::family::FamilyConfig;

    use super::{fail, two_failures};

    /// The family's series as `name{labels}` → value.
    fn family_series(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
        let series = snapshotter.snapshot().into_vec().into_iter();
        series
            .filter(|(key, ..)| key.key().name().starts_with("resilient_breaker_family"))
            .map(|(key, _, _, value)| {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                let value = match value {
                    DebugValue::Counter(count) => count as f64,
                    DebugValue::Gauge(gauge) => gauge.into_inner(),
                    DebugValue::Histogram(_) => f64::NAN,
                };
                (
                    format!("{}{{{}}}", key.key().name(), labels.join(",")),
                    value,
                )
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn totals_and_at_most_twenty_open_keys_are_exported() {
        let registry = Registry::new();
        let family = registry
            .declare_breaker_family("hosts", FamilyConfig::new(two_failures()))
            .unwrap();
        for i in 0..25 {
            fail(&family, &format!("bad-{i:02}"), 2);
        }
        family.breaker("good").unwrap();
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();

        metrics::with_local_recorder(&recorder, || registry.export_metrics());
        let series = family_series(&snapshotter);
        assert_eq!(series["resilient_breaker_family_keys{family=hosts}"], 26.0);
        assert_eq!(
            series["resilient_breaker_family_open_keys{family=hosts}"],
            25.0
        );
        let key_open = |series: &BTreeMap<String, f64>, value: f64| {
            series
                .iter()
                .filter(|(name, v)| {
                    name.starts_with("resilient_breaker_family_key_open") && **v == value
                })
                .count()
        };
        assert_eq!(key_open(&series, 1.0), 20, "{series:#?}");
        let first = "resilient_breaker_family_key_open{family=hosts,breaker=hosts[\"bad-00\"]}";
        assert_eq!(series[first], 1.0);

        // The debugging recorder zeroes what it reads: export twice into a fresh one, the
        // key open at the first export and closed at the second, then read.
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || registry.export_metrics());
        family.breaker("bad-00").unwrap().reset();
        metrics::with_local_recorder(&recorder, || registry.export_metrics());
        let series = family_series(&snapshotter);
        assert_eq!(
            series["resilient_breaker_family_open_keys{family=hosts}"],
            24.0
        );
        assert_eq!(
            series[first], 0.0,
            "a key no longer open no longer reads as open"
        );
        assert_eq!(key_open(&series, 1.0), 20);
    }
}

#[test]
fn threads_flooding_distinct_keys_never_exceed_the_limit() {
    let family = family(FamilyConfig::new(two_failures()).with_max_keys(64));
    std::thread::scope(|scope| {
        for thread in 0..4_u64 {
            let family = &family;
            scope.spawn(move || {
                for key in 0..5_000_u64 {
                    let breaker = family
                        .breaker(&(thread, key))
                        .expect("closed keys make room");
                    assert!(family.len() <= 64);
                    if key % 7 == 0 {
                        breaker.try_acquire().expect("closed").record_failure();
                    }
                }
            });
        }
    });
    assert!(family.len() <= 64);
    let snapshot = family.snapshot();
    assert_eq!(snapshot.keys, family.len());
    assert_eq!(snapshot.evicted as usize + snapshot.keys, 20_000);
}

#[tokio::test(start_paused = true)]
async fn a_policy_call_runs_through_the_breaker_of_its_key() {
    use resilient::Policy;
    use resilient::policy::Next;

    let registry = Registry::new();
    let family = registry
        .declare_breaker_family("hosts", FamilyConfig::new(two_failures()))
        .unwrap();
    let policy = Policy::builder("fetch").build_in(&registry).unwrap();
    let call = |host: &'static str, up: bool| {
        let family = family.clone();
        let policy = &policy;
        async move {
            let mut execution = policy.execution();
            execution.use_breaker(family.breaker(host).map_err(Rejection::from));
            let attempt = execution
                .attempt(async move {
                    if up {
                        Ok(1)
                    } else {
                        Err(anyhow::anyhow!("down"))
                    }
                })
                .await;
            match execution
                .next(attempt, |_| resilient::Classification::STOP)
                .await
            {
                Next::Return(result) => result,
                Next::Retry => unreachable!("no retries"),
            }
        }
    };
    for _ in 0..2 {
        assert!(call("bad", false).await.is_err());
    }
    let rejected = call("bad", true).await.unwrap_err();
    assert!(matches!(
        rejected.downcast_ref::<Rejection>(),
        Some(Rejection::CircuitOpen { .. })
    ));
    assert_eq!(call("good", true).await.unwrap(), 1);
    assert_eq!(family.breaker("bad").unwrap().metrics().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn declaring_a_family_again_reconfigures_its_held_keys_in_place() {
    let registry = Registry::new();
    let family = registry
        .declare_breaker_family("hosts", FamilyConfig::new(two_failures()).with_max_keys(7))
        .unwrap();
    let held = family.breaker("a").unwrap();

    let five = BreakerConfig::consecutive_failures(5);
    let again = registry
        .declare_breaker_family("hosts", FamilyConfig::new(five).with_max_keys(3))
        .unwrap();
    assert!(
        again.breaker("a").unwrap().same_as(&held),
        "the key keeps its breaker"
    );
    assert_eq!(family.config().max_keys(), 3);
    fail(&family, "a", 2);
    assert_eq!(
        held.state(),
        BreakerState::Closed,
        "the held key follows the new threshold"
    );

    let bad = FamilyConfig::new(two_failures()).with_max_keys(0);
    assert!(registry.declare_breaker_family("hosts", bad).is_err());
    assert_eq!(
        family.config().max_keys(),
        3,
        "a refused configuration changes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn new_keys_sweep_idle_keys_out_without_being_asked() {
    let config = FamilyConfig::new(two_failures()).with_idle_after(Duration::from_secs(60));
    let family = family(config);
    family.breaker("old").unwrap();
    advance(Duration::from_secs(61)).await;
    // 2 000 new keys land in every one of the 64 shards (all but surely: 63/64 to the 2 000th).
    for key in 0..2_000_u32 {
        family.breaker(&key).unwrap();
    }
    assert!(!family.contains("old"));
    assert_eq!(family.len(), 2_000);
    assert_eq!(family.snapshot().evicted, 1);
}

#[test]
fn validate_reports_families_that_attributes_name_but_nobody_declared() {
    let registry = Registry::new();
    let report = registry.validate().unwrap_err().to_string();
    assert!(
        report.contains("uses breaker family `hosts`, which was never declared"),
        "{report}"
    );
    assert!(!report.contains("uses breaker `hosts`"), "{report}");

    let declared = FamilyConfig::new(two_failures());
    registry.declare_breaker_family("hosts", declared).unwrap();
    if let Err(report) = registry.validate() {
        assert!(!report.to_string().contains("`hosts`"), "{report}");
    }
}

proptest::proptest! {
    /// Keys from request data: any bytes, any mix of failures, any small limit. Never a panic,
    /// never more keys than the limit, and a refusal only when every held key is open.
    #[test]
    fn arbitrary_keys_stay_within_the_limit(
        max_keys in 1_usize..8,
        calls in proptest::collection::vec((proptest::collection::vec(proptest::num::u8::ANY, 0..300), proptest::bool::ANY), 0..200),
    ) {
        let family = family(FamilyConfig::new(two_failures()).with_max_keys(max_keys));
        for (key, fails) in calls {
            match family.breaker(&key) {
                Ok(breaker) => {
                    if let Ok(permit) = breaker.try_acquire() {
                        if fails { permit.record_failure() } else { permit.record_success() }
                    }
                }
                Err(refused) => {
                    proptest::prop_assert_eq!(refused.max_keys, max_keys);
                    proptest::prop_assert_eq!(family.snapshot().open_keys, max_keys);
                }
            }
            proptest::prop_assert!(family.len() <= max_keys);
        }
    }
}
