//! The `metrics` export: a scripted run, then every exported value read back from a real
//! recorder (metrics-util's debugging recorder).

mod common;

use std::collections::BTreeMap;

use common::{MS, SEC, TestError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilient::{Backoff, BreakerConfig, BulkheadConfig, Policy, Registry};

/// Every exported series as `name{label=value,...}` (labels sorted), with its value.
fn export(registry: &Registry) -> BTreeMap<String, f64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || registry.export_metrics());
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(count) => count as f64,
                DebugValue::Gauge(gauge) => gauge.into_inner(),
                DebugValue::Histogram(_) => panic!("no histograms are exported"),
            };
            (
                format!("{}{{{}}}", key.key().name(), labels.join(",")),
                value,
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_scripted_run_is_exported_under_the_documented_names() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(2)
                .with_open_wait(10 * SEC)
                .with_half_open(1, 1),
        )
        .unwrap();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(2))
        .unwrap();
    let policy = Policy::builder("fetch")
        .timeout(100 * MS)
        .retries(1)
        .backoff(Backoff::constant(10 * MS))
        .retry_budget(None)
        .breaker("db")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();

    // A success; an ignored error; a failure then a timed-out retry, which opens the breaker;
    // a rejection; the wait; a probe that closes it again.
    let ok: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert!(ok.is_ok());
    breaker.try_acquire().unwrap().record_ignored();
    let attempt = std::cell::Cell::new(0);
    let failed: Result<(), TestError> = policy
        .call(|| {
            attempt.set(attempt.get() + 1);
            let first = attempt.get() == 1;
            async move {
                if first {
                    Err(TestError::Down(1))
                } else {
                    tokio::time::sleep(SEC).await;
                    Ok(())
                }
            }
        })
        .await;
    assert!(failed.is_err());
    let rejected: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert!(rejected.is_err());
    policy.fallback_served::<TestError>();
    tokio::time::advance(10 * SEC).await;
    let probe: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    assert!(probe.is_ok());
    tokio::time::advance(3 * SEC).await;

    // The bulkhead: one slot held, one rejection.
    let first = bulkhead.try_acquire().unwrap();
    let second = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());
    drop(second);

    let exported = export(&registry);
    let get = |series: &str| {
        *exported
            .get(series)
            .unwrap_or_else(|| panic!("{series} not exported; got {exported:#?}"))
    };
    for (outcome, count) in [
        ("success", 2.0),
        ("failure", 1.0),
        ("timeout", 1.0),
        ("ignored", 1.0),
        ("rejected", 1.0),
    ] {
        assert_eq!(
            get(&format!(
                "resilient_calls_total{{breaker=db,outcome={outcome}}}"
            )),
            count,
            "{outcome}"
        );
    }
    for (state, value) in [
        ("closed", 1.0),
        ("open", 0.0),
        ("half_open", 0.0),
        ("forced_open", 0.0),
        ("disabled", 0.0),
    ] {
        assert_eq!(
            get(&format!(
                "resilient_breaker_state{{breaker=db,state={state}}}"
            )),
            value,
            "{state}"
        );
    }
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        assert_eq!(
            get(&format!(
                "resilient_breaker_transitions_total{{breaker=db,from={from},to={to}}}"
            )),
            1.0
        );
    }
    assert_eq!(
        get("resilient_breaker_time_in_state_seconds{breaker=db}"),
        3.0
    );
    assert_eq!(get("resilient_breaker_failure_rate{breaker=db}"), 0.0);
    assert_eq!(get("resilient_breaker_window_calls{breaker=db}"), 0.0);
    assert_eq!(get("resilient_bulkhead_in_use{bulkhead=db}"), 1.0);
    assert_eq!(get("resilient_bulkhead_limit{bulkhead=db}"), 2.0);
    assert_eq!(get("resilient_bulkhead_waiting{bulkhead=db}"), 0.0);
    assert_eq!(get("resilient_bulkhead_rejected_total{bulkhead=db}"), 1.0);
    assert_eq!(get("resilient_call_site_calls_total{call_site=fetch}"), 4.0);
    assert_eq!(get("resilient_retries_total{call_site=fetch}"), 1.0);
    assert_eq!(get("resilient_hedges_total{call_site=fetch}"), 0.0);
    assert_eq!(get("resilient_fallbacks_total{call_site=fetch}"), 1.0);
    assert_eq!(get("resilient_stale_served_total{call_site=fetch}"), 0.0);
    assert_eq!(get("resilient_call_site_bypassed{call_site=fetch}"), 0.0);

    // Latency quantiles are sampled: exported exactly when the snapshot has them.
    let site = &registry.snapshot().call_sites[0];
    for (quantile, value) in [("0.5", site.p50), ("0.9", site.p90), ("0.99", site.p99)] {
        let series =
            format!("resilient_call_duration_seconds{{call_site=fetch,quantile={quantile}}}");
        assert_eq!(
            exported.get(&series).copied(),
            value.map(|latency| latency.as_secs_f64())
        );
    }

    // Nothing else: every exported name is documented above.
    let names: std::collections::BTreeSet<_> = exported
        .keys()
        .map(|series| &series[..series.find('{').unwrap()])
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "resilient_breaker_failure_rate",
            "resilient_breaker_slow_call_rate",
            "resilient_breaker_state",
            "resilient_breaker_time_in_state_seconds",
            "resilient_breaker_transitions_total",
            "resilient_breaker_window_calls",
            "resilient_bulkhead_in_use",
            "resilient_bulkhead_limit",
            "resilient_bulkhead_rejected_total",
            "resilient_bulkhead_waiting",
            "resilient_call_duration_seconds",
            "resilient_call_site_bypassed",
            "resilient_call_site_calls_total",
            "resilient_calls_total",
            "resilient_fallbacks_total",
            "resilient_hedges_total",
            "resilient_retries_total",
            "resilient_stale_served_total",
        ]
        .into_iter()
        .filter(|name| { *name != "resilient_call_duration_seconds" || site.p50.is_some() })
        .collect::<Vec<_>>()
    );
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn counters_only_grow_between_exports() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(100))
        .unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let successes = |snapshotter: &metrics_util::debugging::Snapshotter| {
        snapshotter
            .snapshot()
            .into_hashmap()
            .into_iter()
            .find(|(key, _)| {
                key.key().name() == "resilient_calls_total"
                    && key.key().labels().any(|label| label.value() == "success")
            })
            .map(|(_, (_, _, value))| value)
    };
    for round in 1..=3u64 {
        for _ in 0..10 {
            breaker.try_acquire().unwrap().record_success();
        }
        metrics::with_local_recorder(&recorder, || registry.export_metrics());
        assert_eq!(
            successes(&snapshotter),
            Some(DebugValue::Counter(10 * round))
        );
    }
}
