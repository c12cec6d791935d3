//! The bulkhead: rejection when full, `max_wait`, reconfiguration, and permits that come back
//! whatever happens to the call (error, panic, cancellation).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use resilient::bulkhead::MAX_CONCURRENT;
use resilient::{Bulkhead, BulkheadConfig, Policy, Registry, Rejection};
use tokio::time::{Instant, sleep};

fn declare(registry: &Registry, config: BulkheadConfig) -> Bulkhead {
    registry
        .declare_bulkhead("pool", config)
        .expect("valid config")
}

fn full(max_concurrent: usize) -> Rejection {
    Rejection::BulkheadFull {
        bulkhead: "pool".into(),
        max_concurrent,
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_at_once_without_max_wait() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(2));
    let first = bulkhead.acquire().await.unwrap();
    let _second = bulkhead.try_acquire().unwrap();

    let started = Instant::now();
    assert_eq!(bulkhead.acquire().await.unwrap_err(), full(2));
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait at all");
    assert_eq!(bulkhead.try_acquire().unwrap_err(), full(2));
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.in_use, metrics.max_concurrent, metrics.rejected),
        (2, 2, 2)
    );

    drop(first);
    assert_eq!(bulkhead.metrics().in_use, 1);
    let _third = bulkhead.acquire().await.expect("the freed slot");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_takes_a_slot_freed_within_max_wait() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(1).with_max_wait(SEC));
    let held = bulkhead.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            let started = Instant::now();
            let admitted = bulkhead.acquire().await.is_ok();
            (admitted, started.elapsed())
        }
    });
    sleep(400 * MS).await;
    assert_eq!(bulkhead.metrics().waiting, 1);
    drop(held);
    assert_eq!(waiter.await.unwrap(), (true, 400 * MS));
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.in_use, metrics.waiting, metrics.rejected),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_rejected_when_max_wait_runs_out() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(1).with_max_wait(SEC));
    let _held = bulkhead.acquire().await.unwrap();
    let started = Instant::now();
    assert_eq!(bulkhead.acquire().await.unwrap_err(), full(1));
    assert_eq!(started.elapsed(), SEC);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.in_use, metrics.waiting, metrics.rejected),
        (1, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_stops_waiting_and_holds_nothing() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(1).with_max_wait(10 * SEC));
    let held = bulkhead.acquire().await.unwrap();
    assert!(tokio::time::timeout(SEC, bulkhead.acquire()).await.is_err());
    assert_eq!(bulkhead.metrics().waiting, 0);
    drop(held);
    assert_eq!(bulkhead.metrics().in_use, 0);
    let _again = bulkhead.try_acquire().expect("the slot went to no one");
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_frees_slots_at_once_and_admits_waiters() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(1).with_max_wait(10 * SEC));
    let _held = bulkhead.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            let started = Instant::now();
            let admitted = bulkhead.acquire().await.is_ok();
            (admitted, started.elapsed())
        }
    });
    sleep(SEC).await;
    // Redeclaring is reconfiguring the same bulkhead.
    let same = declare(&registry, BulkheadConfig::new(3).with_max_wait(10 * SEC));
    assert!(same.same_as(&bulkhead));
    assert_eq!(waiter.await.unwrap(), (true, SEC));
    let _second = bulkhead.try_acquire().unwrap();
    let _third = bulkhead.try_acquire().unwrap();
    assert_eq!(bulkhead.try_acquire().unwrap_err(), full(3));
    assert_eq!(
        bulkhead.config(),
        BulkheadConfig::new(3).with_max_wait(10 * SEC)
    );
}

#[tokio::test(start_paused = true)]
async fn lowering_the_limit_retires_busy_slots_as_their_calls_finish() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(4));
    let mut held: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    bulkhead.reconfigure(BulkheadConfig::new(1)).unwrap();
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.max_concurrent), (3, 1));
    for in_use in [2, 1] {
        assert_eq!(bulkhead.try_acquire().unwrap_err(), full(1));
        held.pop();
        assert_eq!(bulkhead.metrics().in_use, in_use);
    }
    assert!(
        bulkhead.try_acquire().is_err(),
        "one call still holds the one slot"
    );
    held.pop();
    assert_eq!(bulkhead.metrics().in_use, 0);
    let only = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());
    drop(only);
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_again_cancels_pending_retirements() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(4));
    let held: Vec<_> = (0..4).map(|_| bulkhead.try_acquire().unwrap()).collect();
    bulkhead.reconfigure(BulkheadConfig::new(1)).unwrap();
    bulkhead.reconfigure(BulkheadConfig::new(3)).unwrap();
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.max_concurrent), (4, 3));
    drop(held);
    assert_eq!(bulkhead.metrics().in_use, 0);
    let now: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert_eq!(bulkhead.try_acquire().unwrap_err(), full(3));
    drop(now);
    bulkhead.reconfigure(BulkheadConfig::new(5)).unwrap();
    let all: Vec<_> = (0..5).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert_eq!(bulkhead.try_acquire().unwrap_err(), full(5));
    drop(all);
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_holding_a_slot_gives_it_back() {
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(1));
    let task = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            let _slot = bulkhead.acquire().await.unwrap();
            sleep(MS).await;
            panic!("the call panicked");
        }
    });
    sleep(MS / 2).await;
    assert_eq!(bulkhead.metrics().in_use, 1);
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(bulkhead.metrics().in_use, 0);
}

/// 10 000 calls through a policy with a bulkhead, each cancelled or not at a pseudo-random
/// moment (outer timeout, `select!`, task abort), while holding a slot or while waiting for
/// one; afterwards every slot is free.
#[tokio::test(start_paused = true)]
async fn ten_thousand_randomly_cancelled_calls_leave_every_slot_free() {
    const SLOTS: usize = 8;
    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(SLOTS).with_max_wait(5 * MS));
    let policy = Policy::builder("cancelled")
        .bulkhead("pool")
        .build_in(&registry)
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let mut rng = Rng::new(0x00c0_ffee);

    for _batch in 0..100 {
        let mut tasks = Vec::with_capacity(100);
        for _ in 0..100 {
            // Starts spread over 100 ms keep about ten calls contending for the eight slots.
            let start = Duration::from_millis(rng.below(100));
            let hold = Duration::from_millis(rng.below(20));
            let cancel_at = start + Duration::from_millis(rng.below(25));
            let fails = rng.below(2) == 0;
            let call = {
                let (policy, started, finished, completed) = (
                    policy.clone(),
                    started.clone(),
                    finished.clone(),
                    completed.clone(),
                );
                async move {
                    sleep(start).await;
                    let result: Result<(), TestError> = policy
                        .call(|| {
                            let (started, finished) = (started.clone(), finished.clone());
                            async move {
                                started.fetch_add(1, Ordering::Relaxed);
                                sleep(hold).await;
                                finished.fetch_add(1, Ordering::Relaxed);
                                if fails {
                                    Err(TestError::Down(1))
                                } else {
                                    Ok(())
                                }
                            }
                        })
                        .await;
                    completed.fetch_add(1, Ordering::Relaxed);
                    result
                }
            };
            match rng.below(4) {
                0 => tasks.push(tokio::spawn(async move {
                    let _ = tokio::time::timeout(cancel_at, call).await;
                })),
                1 => tasks.push(tokio::spawn(async move {
                    tokio::select! {
                        _ = call => {}
                        _ = sleep(cancel_at) => {}
                    }
                })),
                2 => {
                    let task = tokio::spawn(async move {
                        let _ = call.await;
                    });
                    let abort = task.abort_handle();
                    tasks.push(task);
                    tasks.push(tokio::spawn(async move {
                        sleep(cancel_at).await;
                        abort.abort();
                    }));
                }
                _ => tasks.push(tokio::spawn(async move {
                    let _ = call.await;
                })),
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.waiting), (0, 0));
    let slots: Vec<_> = (0..SLOTS)
        .map(|_| bulkhead.try_acquire().expect("every slot is free"))
        .collect();
    assert_eq!(bulkhead.try_acquire().unwrap_err(), full(SLOTS));
    drop(slots);

    // The run really cancelled calls in both places a permit can be: holding a slot, and
    // waiting for one (some waits also ran out).
    let (started, finished, completed) = (
        started.load(Ordering::Relaxed),
        finished.load(Ordering::Relaxed),
        completed.load(Ordering::Relaxed),
    );
    let report = format!(
        "started {started}, finished {finished}, completed {completed}, rejected {}",
        metrics.rejected
    );
    assert!(started - finished > 1000, "{report}");
    assert!(completed > 1000 && completed < 9000, "{report}");
    assert!(metrics.rejected > 100, "{report}");
}

#[test]
fn an_invalid_limit_is_a_config_error_naming_the_bulkhead() {
    for max_concurrent in [0, MAX_CONCURRENT + 1] {
        let registry = Registry::new();
        let err = registry
            .declare_bulkhead("pool", BulkheadConfig::new(max_concurrent))
            .unwrap_err();
        assert_eq!(err.field(), "max_concurrent");
        assert_eq!(err.subject(), "bulkhead \"pool\"");
        assert_eq!(err.value(), max_concurrent.to_string());
        assert!(err.to_string().contains("\"pool\""), "{err}");
        assert!(registry.get_bulkhead("pool").is_none());
        assert_eq!(
            Bulkhead::new("pool", BulkheadConfig::new(max_concurrent)).unwrap_err(),
            err
        );
    }
    assert!(Bulkhead::new("pool", BulkheadConfig::new(MAX_CONCURRENT)).is_ok());

    let registry = Registry::new();
    let bulkhead = declare(&registry, BulkheadConfig::new(2));
    let err = bulkhead.reconfigure(BulkheadConfig::new(0)).unwrap_err();
    assert_eq!(err.field(), "max_concurrent");
    assert_eq!(bulkhead.config(), BulkheadConfig::new(2));
}
