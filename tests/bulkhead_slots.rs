//! The bulkhead's one slot count: the limit is exact, and slots taken under one kind of
//! bulkhead (waiting or not) or one limit are given back correctly under another, by
//! `BulkheadPermit`s and by the tower layer's reserved slots alike.

mod common;

use std::task::{Context, Poll, Waker};

use common::{MS, SEC};
use resilient::tower::PolicyLayer;
use resilient::{Bulkhead, BulkheadConfig, Policy, Registry, Rejection};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn bulkhead(config: BulkheadConfig) -> Bulkhead {
    Bulkhead::new("pool", config).expect("valid config")
}

fn in_use_and_limit(bulkhead: &Bulkhead) -> (usize, usize) {
    let metrics = bulkhead.metrics();
    (metrics.in_use, metrics.max_concurrent)
}

/// Takes every free slot without waiting and gives them back; how many there were.
fn free_slots(bulkhead: &Bulkhead) -> usize {
    let mut taken = Vec::new();
    while let Ok(permit) = bulkhead.try_acquire() {
        taken.push(permit);
    }
    taken.len()
}

/// A task waiting for a slot of `bulkhead`; answers whether it got one and after how long.
fn waiter(bulkhead: &Bulkhead) -> tokio::task::JoinHandle<(bool, std::time::Duration)> {
    let bulkhead = bulkhead.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let admitted = bulkhead.acquire().await.is_ok();
        (admitted, started.elapsed())
    })
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_exact_for_a_bulkhead_that_never_waits() {
    let bulkhead = bulkhead(BulkheadConfig::new(3));
    let held: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert!(matches!(
        bulkhead.try_acquire(),
        Err(Rejection::BulkheadFull {
            max_concurrent: 3,
            ..
        })
    ));
    assert!(bulkhead.acquire().await.is_err());
    assert_eq!(in_use_and_limit(&bulkhead), (3, 3));
    assert_eq!(bulkhead.metrics().rejected, 2);
    drop(held);
    assert_eq!(free_slots(&bulkhead), 3);
    assert_eq!(in_use_and_limit(&bulkhead), (0, 3));
}

#[tokio::test(start_paused = true)]
async fn slots_taken_without_waiting_are_handed_to_waiters_after_a_switch_to_waiting() {
    let bulkhead = bulkhead(BulkheadConfig::new(2));
    let first = bulkhead.try_acquire().unwrap();
    let second = bulkhead.try_acquire().unwrap();
    bulkhead
        .reconfigure(BulkheadConfig::new(2).with_max_wait(SEC))
        .unwrap();
    let waiting = waiter(&bulkhead);
    sleep(300 * MS).await;
    assert_eq!(bulkhead.metrics().waiting, 1);
    assert_eq!(in_use_and_limit(&bulkhead), (2, 2));

    drop(first);
    assert_eq!(waiting.await.unwrap(), (true, 300 * MS));
    assert_eq!(
        in_use_and_limit(&bulkhead),
        (1, 2),
        "the waiter's slot is back"
    );
    drop(second);
    assert_eq!(in_use_and_limit(&bulkhead), (0, 2));
    assert_eq!(free_slots(&bulkhead), 2);
}

#[tokio::test(start_paused = true)]
async fn slots_taken_while_waiting_count_against_the_limit_after_a_switch_to_no_wait() {
    let bulkhead = bulkhead(BulkheadConfig::new(2).with_max_wait(SEC));
    let first = bulkhead.try_acquire().unwrap();
    let second = bulkhead.try_acquire().unwrap();
    let (admitted, release) = holder(&bulkhead);
    sleep(100 * MS).await;
    drop(first);
    assert!(admitted.await.unwrap(), "handed the freed slot");
    assert_eq!(in_use_and_limit(&bulkhead), (2, 2));

    bulkhead.reconfigure(BulkheadConfig::new(3)).unwrap();
    let third = bulkhead
        .try_acquire()
        .expect("one slot under the raised limit");
    assert!(bulkhead.acquire().await.is_err(), "and no more, at once");
    release.send(()).unwrap();
    sleep(MS).await;
    assert_eq!(in_use_and_limit(&bulkhead), (2, 3));
    drop((second, third));
    assert_eq!(in_use_and_limit(&bulkhead), (0, 3));
    assert_eq!(free_slots(&bulkhead), 3);
}

/// A task that takes a slot (waiting if need be), says whether it got one, and holds it until
/// told to let go.
fn holder(
    bulkhead: &Bulkhead,
) -> (
    tokio::sync::oneshot::Receiver<bool>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (admitted_tx, admitted) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    let bulkhead = bulkhead.clone();
    tokio::spawn(async move {
        let permit = bulkhead.acquire().await;
        let _ = admitted_tx.send(permit.is_ok());
        let _ = release_rx.await;
        drop(permit);
    });
    (admitted, release)
}

#[tokio::test(start_paused = true)]
async fn lowering_the_limit_of_a_waiting_bulkhead_serves_waiters_only_below_the_new_limit() {
    let bulkhead = bulkhead(BulkheadConfig::new(3).with_max_wait(10 * SEC));
    let mut held: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    let waiting = waiter(&bulkhead);
    sleep(MS).await;
    bulkhead
        .reconfigure(BulkheadConfig::new(1).with_max_wait(10 * SEC))
        .unwrap();
    sleep(MS).await;
    held.pop();
    held.pop();
    sleep(MS).await;
    assert!(!waiting.is_finished(), "one call still holds the one slot");
    assert_eq!(in_use_and_limit(&bulkhead), (1, 1));
    held.pop();
    assert_eq!(waiting.await.unwrap(), (true, 3 * MS));
    assert_eq!(in_use_and_limit(&bulkhead), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_comes_before_a_newcomer_for_a_freed_slot() {
    let bulkhead = bulkhead(BulkheadConfig::new(1).with_max_wait(SEC));
    let held = bulkhead.try_acquire().unwrap();
    let waiting = waiter(&bulkhead);
    sleep(MS).await;
    drop(held);
    // The waiter has not run since, yet the slot is already its own.
    assert!(bulkhead.try_acquire().is_err());
    assert_eq!(in_use_and_limit(&bulkhead), (1, 1));
    assert_eq!(waiting.await.unwrap(), (true, MS));
    assert_eq!(free_slots(&bulkhead), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_cancelled_after_being_handed_a_slot_gives_it_back() {
    let bulkhead = bulkhead(BulkheadConfig::new(1).with_max_wait(SEC));
    let held = bulkhead.try_acquire().unwrap();
    let cancelled = waiter(&bulkhead);
    let next = waiter(&bulkhead);
    sleep(MS).await;
    drop(held);
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    // The slot the cancelled waiter never used goes to the next one in line.
    assert_eq!(next.await.unwrap(), (true, MS));
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.waiting), (0, 0));
    assert_eq!(free_slots(&bulkhead), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lone_waiter_cancelled_after_being_handed_a_slot_gives_it_back() {
    let bulkhead = bulkhead(BulkheadConfig::new(1).with_max_wait(SEC));
    let held = bulkhead.try_acquire().unwrap();
    let cancelled = waiter(&bulkhead);
    sleep(MS).await;
    drop(held);
    assert_eq!(
        in_use_and_limit(&bulkhead),
        (1, 1),
        "handed over, not yet taken"
    );
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.waiting), (0, 0));
    assert_eq!(free_slots(&bulkhead), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slot_freed_as_a_wait_runs_out_is_neither_lost_nor_doubled() {
    let bulkhead = bulkhead(BulkheadConfig::new(1).with_max_wait(SEC));
    let held = bulkhead.try_acquire().unwrap();
    let waiting = waiter(&bulkhead);
    sleep(SEC).await;
    drop(held);
    let (admitted, waited) = waiting.await.unwrap();
    assert_eq!(waited, SEC);
    assert_eq!(bulkhead.metrics().rejected, u64::from(!admitted));
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_use, metrics.waiting), (0, 0));
    assert_eq!(free_slots(&bulkhead), 1);
}

/// The tower layer reserves its slot in `poll_ready`; a service reserving from a bulkhead
/// of either kind, across a switch between them, gives the slot back to the one count.
#[tokio::test(start_paused = true)]
async fn the_tower_layer_reserves_and_gives_back_slots_of_either_kind() {
    let registry = Registry::new();
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("client")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    let mut first = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(service_fn(|request: u32| async move {
            Ok::<_, std::io::Error>(request)
        }));
    let mut second = first.clone();
    let mut cx = Context::from_waker(Waker::noop());

    first.ready().await.unwrap();
    assert_eq!(bulkhead.metrics().in_use, 1);
    registry
        .declare_bulkhead("db", BulkheadConfig::new(1).with_max_wait(SEC))
        .unwrap();
    assert!(second.poll_ready(&mut cx).is_pending());
    assert_eq!(first.call(1).await.unwrap(), 1);
    assert!(matches!(second.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(bulkhead.metrics().in_use, 1);

    registry
        .declare_bulkhead("db", BulkheadConfig::new(2))
        .unwrap();
    first.ready().await.unwrap();
    assert_eq!(in_use_and_limit(&bulkhead), (2, 2));
    drop(first);
    assert_eq!(second.call(2).await.unwrap(), 2);
    assert_eq!(in_use_and_limit(&bulkhead), (0, 2));
    assert_eq!(free_slots(&bulkhead), 2);
}
