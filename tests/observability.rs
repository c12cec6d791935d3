//! Observability: tracing targets, levels and reason texts; listeners (callbacks, the
//! broadcast channel, the open-too-long alert); the registry snapshot; operator handles by name.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Capture, MS, SEC, TestError, fail, fail_n, succeed, succeed_n};
use resilient::event::Event;
use resilient::{
    Backoff, BreakerConfig, BreakerState, BulkheadConfig, CircuitBreaker, Listeners, Policy,
    Registry, Rejection, SlidingWindow, TimeoutKind,
};
use tracing::Level;

/// A count window of 10, judged from 10 calls, opening at 50 %.
fn rate_breaker() -> BreakerConfig {
    BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(10), 10)
        .with_open_wait(10 * SEC)
        .with_half_open(1, 1)
}

/// Every event a callback saw.
fn record_events(registry: &Registry) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    registry.on_event(move |event| sink.lock().unwrap().push(event.clone()));
    events
}

fn transitions(events: &Mutex<Vec<Event>>) -> Vec<(BreakerState, BreakerState, String)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|event| match event {
            Event::StateTransition {
                from, to, reason, ..
            } => Some((*from, *to, reason.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn transitions_are_logged_with_their_reason_at_warn_when_opening_and_info_otherwise() {
    let capture = Capture::start();
    let registry = Registry::new();
    let breaker = registry.declare_breaker("db", rate_breaker()).unwrap();
    succeed_n(&breaker, 4);
    fail_n(&breaker, 6);
    tokio::time::advance(10 * SEC).await;
    fail(&breaker); // the probe fails
    tokio::time::advance(10 * SEC).await;
    succeed(&breaker); // the probe succeeds

    let breaker_events: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|event| event.target == "resilient::breaker" && event.level <= Level::INFO)
        .collect();
    let summary: Vec<_> = breaker_events
        .iter()
        .map(|event| (event.level, event.text.clone()))
        .collect();
    let expected = [
        (
            Level::WARN,
            "failure rate 60% ≥ 50% over the last 10 calls",
            "to=open",
        ),
        (Level::INFO, "open wait elapsed, probing", "to=half_open"),
        (Level::WARN, "probe failed", "to=open"),
        (Level::INFO, "open wait elapsed, probing", "to=half_open"),
        (Level::INFO, "1 probes succeeded", "to=closed"),
    ];
    assert_eq!(summary.len(), expected.len(), "{summary:#?}");
    for ((level, text), (want_level, reason, to)) in summary.iter().zip(expected) {
        assert_eq!(*level, want_level, "{text}");
        assert!(text.contains(reason), "{text} lacks {reason:?}");
        assert!(text.contains(to) && text.contains("breaker=db"), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_calls_and_operators_give_their_own_reasons() {
    let capture = Capture::start();
    let registry = Registry::new();
    let config =
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(4), 4).with_slow_calls(100 * MS, 0.5);
    let slow = registry.declare_breaker("slow", config).unwrap();
    for _ in 0..4 {
        let permit = slow.try_acquire().unwrap();
        tokio::time::advance(150 * MS).await;
        permit.record_success();
    }
    assert_eq!(slow.state(), BreakerState::Open);
    registry.declare_breaker("ops", rate_breaker()).unwrap();
    registry.force_open("ops").unwrap();
    registry.disable("ops").unwrap();
    registry.reset("ops").unwrap();

    let warnings: Vec<_> = capture
        .warnings()
        .into_iter()
        .map(|event| event.text)
        .collect();
    assert!(
        warnings[0].contains("slow-call rate 100% ≥ 50% over the last 4 calls"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("forced open by an operator"),
        "{warnings:?}"
    );
    let infos: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|event| event.level == Level::INFO && event.target == "resilient::breaker")
        .map(|event| event.text)
        .collect();
    assert!(infos[0].contains("disabled by an operator"), "{infos:?}");
    assert!(infos[1].contains("reset by an operator"), "{infos:?}");
}

#[tokio::test(start_paused = true)]
async fn per_call_detail_is_debug_on_stable_targets() {
    let capture = Capture::start();
    let registry = Registry::new();
    registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(1))
        .unwrap();
    registry
        .declare_bulkhead("db", BulkheadConfig::new(1).with_max_wait(50 * MS))
        .unwrap();
    let policy = Policy::builder("load_user")
        .timeout(100 * MS)
        .retries(1)
        .backoff(Backoff::constant(20 * MS))
        .retry_budget(None)
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();

    // Both attempts time out, with one retry between them.
    let result: Result<(), TestError> = policy
        .call(|| async {
            tokio::time::sleep(SEC).await;
            Ok(())
        })
        .await;
    assert!(matches!(
        result,
        Err(TestError::Rejected(Rejection::Timeout {
            kind: TimeoutKind::Attempt,
            ..
        }))
    ));

    // A full bulkhead: one call holds the slot, the next waits 50 ms and is rejected.
    let bulkhead = registry.bulkhead("db").unwrap();
    let held = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.acquire().await.is_err());
    drop(held);

    // An open breaker rejects.
    let breaker = registry.breaker("db").unwrap();
    fail(&breaker);
    assert!(breaker.try_acquire().is_err());

    // A fallback served.
    policy.fallback_served::<TestError>();

    let debug: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|event| event.level == Level::DEBUG)
        .map(|event| (event.target, event.text))
        .collect();
    let find = |target: &str, needle: &str| {
        debug
            .iter()
            .find(|(t, text)| t == target && text.contains(needle))
            .unwrap_or_else(|| panic!("no {target} event with {needle:?} in {debug:#?}"))
            .1
            .clone()
    };
    assert!(find("resilient::timeout", "attempt timed out").contains("call_site=load_user"));
    let retry = find("resilient::retry", "retrying");
    assert!(retry.contains("retry=1"), "{retry}");
    assert!(retry.contains("delay=20ms"), "{retry}");
    assert!(retry.contains("error=attempt timeout"), "{retry}");
    assert!(find("resilient::bulkhead", "waiting for a slot").contains("bulkhead=db"));
    assert!(find("resilient::bulkhead", "call rejected").contains("max_concurrent=1"));
    assert!(find("resilient::breaker", "call rejected").contains("breaker=db"));
    let fallback = find("resilient::fallback", "fallback served");
    assert!(fallback.contains("call_site=load_user"), "{fallback}");
    assert!(fallback.contains("TestError"), "{fallback}");
}

#[tokio::test(start_paused = true)]
async fn each_call_is_a_span_and_each_attempt_an_event_inside_it() {
    let registry = Registry::new();
    registry
        .declare_breaker("ledger", BreakerConfig::consecutive_failures(5))
        .unwrap();
    let policy = Policy::builder("post_entry")
        .retries(1)
        .backoff(Backoff::constant(MS))
        .breaker("ledger")
        .build_in(&registry)
        .unwrap();
    let capture = Capture::start();
    let attempts = AtomicUsize::new(0);
    let result: Result<(), TestError> = policy
        .call(|| {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) as u32;
            async move {
                tracing::info!(target: "app", "inside the attempt");
                if attempt == 0 {
                    Err(TestError::Down(1))
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    let spans = capture.spans();
    let call: Vec<_> = spans
        .iter()
        .filter(|span| span.target == "resilient::call")
        .collect();
    assert_eq!(call.len(), 1, "one span per call: {spans:?}");
    assert_eq!(call[0].level, Level::DEBUG);
    assert!(
        call[0].fields.contains("call_site=post_entry")
            && call[0].fields.contains("breaker=ledger"),
        "{:?}",
        call[0].fields
    );
    let parent = format!("parent={}", call[0].id);
    let attempt_events: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|event| event.target == "resilient::call")
        .collect();
    assert_eq!(attempt_events.len(), 4, "start and end of two attempts");
    assert!(
        attempt_events
            .iter()
            .all(|event| event.level == Level::TRACE && event.text.contains(&parent))
    );
    assert!(
        attempt_events[3].text.contains("attempt=2") && attempt_events[3].text.contains("ok=true")
    );
}

#[tokio::test(start_paused = true)]
async fn callbacks_get_every_transition_with_its_reason() {
    let registry = Registry::new();
    let events = record_events(&registry);
    let breaker = registry.declare_breaker("db", rate_breaker()).unwrap();
    succeed_n(&breaker, 5);
    fail_n(&breaker, 5);
    tokio::time::advance(10 * SEC).await;
    succeed(&breaker);
    assert_eq!(
        transitions(&events),
        [
            (
                BreakerState::Closed,
                BreakerState::Open,
                "failure rate 50% ≥ 50% over the last 10 calls".to_owned()
            ),
            (
                BreakerState::Open,
                BreakerState::HalfOpen,
                "open wait elapsed, probing".to_owned()
            ),
            (
                BreakerState::HalfOpen,
                BreakerState::Closed,
                "1 probes succeeded".to_owned()
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_closed_success_path_calls_no_listener() {
    let registry = Registry::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    registry.on_event(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut receiver = registry.subscribe();
    let breaker = registry.declare_breaker("db", rate_breaker()).unwrap();
    succeed_n(&breaker, 1000);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert!(receiver.try_recv().is_err());
    assert_eq!(breaker.metrics().successes, 1000);
}

#[tokio::test(start_paused = true)]
async fn the_broadcast_channel_carries_rejections_retries_and_transitions() {
    let registry = Registry::new();
    let mut receiver = registry.subscribe();
    registry
        .declare_breaker("db", BreakerConfig::consecutive_failures(2))
        .unwrap();
    let policy = Policy::builder("fetch")
        .retries(3)
        .backoff(Backoff::constant(5 * MS))
        .retry_budget(None)
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let result: Result<(), TestError> = policy.call(|| async { Err(TestError::Down(0)) }).await;
    assert!(matches!(
        result,
        Err(TestError::Rejected(Rejection::CircuitOpen { .. }))
    ));

    let mut seen = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        seen.push(event);
    }
    let error_type = std::any::type_name::<TestError>();
    assert!(
        matches!(
            &seen[..],
            [
                Event::Retry { attempt: 1, delay: d1, error: e1, .. },
                Event::StateTransition { from: BreakerState::Closed, to: BreakerState::Open, .. },
                Event::Retry { attempt: 2, delay: d2, error: e2, .. },
                Event::Rejected(Rejection::CircuitOpen { .. }),
            ] if *d1 == 5 * MS && *d2 == 5 * MS && *e1 == error_type && *e2 == error_type
        ),
        "{seen:#?}"
    );
    assert_eq!(
        seen[1].to_string(),
        "circuit breaker `db`: closed → open: 2 failures in a row"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_rejection_is_an_event() {
    let registry = Registry::new();
    let events = record_events(&registry);
    let bulkhead = registry
        .declare_bulkhead("pool", BulkheadConfig::new(1))
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());
    assert_eq!(
        *events.lock().unwrap(),
        [Event::Rejected(Rejection::BulkheadFull {
            bulkhead: "pool".into(),
            max_concurrent: 1
        })]
    );
}

#[tokio::test(start_paused = true)]
async fn open_too_long_fires_once_per_outage_on_rejection_or_tick() {
    let capture = Capture::start();
    let registry = Registry::new();
    registry.alert_when_open_longer_than(Duration::from_secs(60));
    let events = record_events(&registry);
    let alerts = || {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                Event::OpenTooLong {
                    breaker,
                    state,
                    open_for,
                } => Some((breaker.to_string(), *state, *open_for)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let breaker = registry
        .declare_breaker(
            "db",
            BreakerConfig::consecutive_failures(1)
                .with_open_wait(20 * SEC)
                .with_open_wait_growth(3.0, 300 * SEC)
                .with_half_open(1, 1),
        )
        .unwrap();

    fail(&breaker);
    tokio::time::advance(19 * SEC).await;
    assert!(breaker.try_acquire().is_err());
    registry.check_alerts();
    assert!(alerts().is_empty(), "19 s is not too long");

    // A failed probe re-opens: the outage goes on, and so does its clock.
    tokio::time::advance(SEC).await;
    fail(&breaker);
    tokio::time::advance(40 * SEC).await;
    assert!(breaker.try_acquire().is_err(), "re-opened at 20 s for 60 s");
    assert_eq!(
        alerts(),
        [("db".to_owned(), BreakerState::Open, 60 * SEC)],
        "fired by the rejection at 60 s"
    );
    assert!(breaker.try_acquire().is_err());
    registry.check_alerts();
    assert_eq!(alerts().len(), 1, "once per outage");
    assert!(
        capture
            .warnings()
            .iter()
            .any(|event| event.text.contains("has not closed for 60s")),
        "{:?}",
        capture.warnings()
    );

    // Recovery, then a new outage, alerted by the periodic check alone.
    tokio::time::advance(20 * SEC).await;
    succeed(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker);
    tokio::time::advance(60 * SEC).await;
    registry.check_alerts();
    assert_eq!(alerts().len(), 2);
    assert_eq!(alerts()[1].2, 60 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_outside_the_registry_reports_to_the_listeners_it_was_given() {
    let listeners = Arc::new(Listeners::new());
    let mut receiver = listeners.subscribe();
    let breaker =
        CircuitBreaker::with_listeners("solo", BreakerConfig::consecutive_failures(1), listeners)
            .unwrap();
    fail(&breaker);
    assert!(matches!(
        receiver.try_recv().unwrap(),
        Event::StateTransition {
            to: BreakerState::Open,
            ..
        }
    ));
    // And a plain one reports nowhere, without failing.
    let plain = CircuitBreaker::new("plain", BreakerConfig::consecutive_failures(1)).unwrap();
    fail(&plain);
    assert_eq!(plain.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn operator_handles_by_name_refuse_unknown_names() {
    let registry = Registry::new();
    registry
        .declare_breaker("payments", rate_breaker())
        .unwrap();
    registry.declare_breaker("search", rate_breaker()).unwrap();
    let err = registry.force_open("paymnets").unwrap_err();
    assert_eq!(err.name(), "paymnets");
    assert_eq!(err.known(), ["payments", "search"]);
    assert_eq!(
        err.to_string(),
        "no circuit breaker named `paymnets` in this registry (known: payments, search)"
    );
    assert!(registry.disable("nope").is_err());
    assert!(registry.reset("nope").is_err());
    assert!(
        registry.get_breaker("paymnets").is_none(),
        "no breaker was created"
    );

    registry.force_open("payments").unwrap();
    assert_eq!(
        registry.breaker("payments").unwrap().state(),
        BreakerState::ForcedOpen
    );
    registry.disable("payments").unwrap();
    assert_eq!(
        registry.breaker("payments").unwrap().state(),
        BreakerState::Disabled
    );
    registry.reset("payments").unwrap();
    assert_eq!(
        registry.breaker("payments").unwrap().state(),
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_counts_every_outcome() {
    let registry = Registry::new();
    registry.declare_breaker("db", rate_breaker()).unwrap();
    registry
        .declare_bulkhead("db", BulkheadConfig::new(2).with_max_wait(SEC))
        .unwrap();
    let policy = Policy::builder("query")
        .timeout(100 * MS)
        .breaker("db")
        .build_in(&registry)
        .unwrap();
    let breaker = registry.breaker("db").unwrap();

    for _ in 0..3 {
        let _: Result<(), TestError> = policy.call(|| async { Ok(()) }).await;
    }
    let _: Result<(), TestError> = policy
        .call(|| async {
            tokio::time::sleep(SEC).await;
            Ok(())
        })
        .await;
    breaker.try_acquire().unwrap().record_ignored();
    succeed(&breaker);
    fail_n(&breaker, 5); // 10 calls, 6 failures (the timeout included): opens
    assert!(breaker.try_acquire().is_err());
    tokio::time::advance(4 * SEC).await;

    let bulkhead = registry.bulkhead("db").unwrap();
    let _slots = (
        bulkhead.try_acquire().unwrap(),
        bulkhead.try_acquire().unwrap(),
    );
    assert!(bulkhead.try_acquire().is_err());
    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(drop) }
    });
    tokio::task::yield_now().await;

    let snapshot = registry.snapshot();
    let db = &snapshot.breakers[0];
    assert_eq!(db.state, BreakerState::Open);
    assert_eq!(
        (
            db.successes,
            db.failures,
            db.timeouts,
            db.ignored,
            db.rejected
        ),
        (4, 6, 1, 1, 1)
    );
    assert_eq!(db.transitions, 1);
    assert_eq!(db.time_in_state, 4 * SEC);
    assert_eq!(db.retry_after, Some(6 * SEC));
    let pool = &snapshot.bulkheads[0];
    assert_eq!(
        (
            pool.in_use,
            pool.max_concurrent,
            pool.waiting,
            pool.rejected
        ),
        (2, 2, 1, 1)
    );
    let site = &snapshot.call_sites[0];
    assert_eq!((site.name.as_ref(), site.calls), ("query", 4));

    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["breakers"][0]["state"], "open");
    assert_eq!(json["breakers"][0]["time_in_state_seconds"], 4.0);
    assert_eq!(json["breakers"][0]["retry_after_seconds"], 6.0);
    assert_eq!(json["breakers"][0]["successes"], 4);
    assert_eq!(
        json["breakers"][0]["transition_counts"],
        serde_json::json!([{ "from": "closed", "to": "open", "count": 1 }])
    );
    assert_eq!(json["bulkheads"][0]["waiting"], 1);
    assert_eq!(json["call_sites"][0]["name"], "query");
    waiter.abort();
}

#[tokio::test(start_paused = true)]
async fn the_window_rates_are_in_the_snapshot() {
    let registry = Registry::new();
    let config =
        BreakerConfig::failure_rate(0.9, SlidingWindow::Calls(10), 10).with_slow_calls(SEC, 0.9);
    let breaker = registry.declare_breaker("db", config).unwrap();
    fail_n(&breaker, 2);
    let permit = breaker.try_acquire().unwrap();
    tokio::time::advance(2 * SEC).await;
    permit.record_success();
    succeed(&breaker);
    let db = breaker.metrics();
    assert_eq!(db.calls_in_window, 4);
    assert_eq!(db.failure_rate, 0.5);
    assert_eq!(db.slow_call_rate, 0.25);
}
