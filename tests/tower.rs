//! The `tower` feature: a `PolicyLayer` in a `ServiceBuilder`, around `service_fn` services,
//! under tokio's paused clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use common::{MS, SEC, TestError};
use resilient::tower::{Error, PolicyLayer};
use resilient::{
    Backoff, BreakerConfig, BreakerState, BulkheadConfig, Policy, PolicyBuilder, Registry,
    Rejection, TimeoutKind, resilient,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A `service_fn` that counts its calls and answers `answer(call number, request)`.
fn counted<Req, F>(
    calls: &Arc<AtomicU32>,
    answer: F,
) -> impl Service<
    Req,
    Response = u32,
    Error = TestError,
    Future = impl Future<Output = Result<u32, TestError>> + Send,
> + Clone
+ Send
+ 'static
where
    F: Fn(u32, Req) -> Result<u32, TestError> + Clone + Send + 'static,
    Req: Send + 'static,
{
    let calls = calls.clone();
    service_fn(move |request: Req| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = answer.clone();
        async move { answer(n, request) }
    })
}

/// A client policy that retries `retries` times, 1 ms apart.
fn retrying(retries: u32) -> PolicyBuilder {
    Policy::builder("client")
        .retries(retries)
        .backoff(Backoff::constant(MS))
}

fn one_failure_opens(registry: &Registry, name: &str) {
    let config = BreakerConfig::consecutive_failures(1).with_open_wait(SEC);
    registry.declare_breaker(name, config).unwrap();
}

#[tokio::test(start_paused = true)]
async fn retries_send_a_clone_of_the_request() {
    let registry = Registry::new();
    let policy = retrying(2).build_in(&registry).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&calls, |n, request: u32| {
            if n < 3 {
                Err(TestError::Down(n))
            } else {
                Ok(request)
            }
        }));

    assert_eq!(service.oneshot(7).await, Ok(7));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two retries, each with the request"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_with_a_typed_error_and_the_service_is_not_called() {
    let registry = Registry::new();
    one_failure_opens(&registry, "payments");
    let policy = Policy::builder("client")
        .breaker("payments")
        .build_in(&registry)
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&calls, |n, _: ()| Err(TestError::Down(n))));

    let breaker = registry.get_breaker("payments").unwrap();

    let first = service.ready().await.unwrap().call(()).await;
    assert_eq!(first, Err(Error::Service(TestError::Down(1))));
    let mut second = service.ready().await.unwrap().call(());
    assert_eq!(
        breaker.metrics().rejected,
        1,
        "refused in `call`, before any poll"
    );
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::Pin::new(&mut second).poll(&mut cx) {
        Poll::Ready(Err(Error::Rejected(Rejection::CircuitOpen {
            breaker,
            retry_after,
        }))) => {
            assert_eq!(&*breaker, "payments");
            assert_eq!(retry_after, Some(SEC));
        }
        other => panic!("expected a ready open-breaker rejection, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the open breaker kept the call out"
    );

    // Once the open wait is over, the next call is the half-open probe and reaches the service.
    tokio::time::advance(SEC).await;
    let probe = service.ready().await.unwrap().call(()).await;
    assert_eq!(probe, Err(Error::Service(TestError::Down(2))));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_holds_readiness_until_a_slot_is_given_back() {
    let registry = Registry::new();
    registry
        .declare_bulkhead("db", BulkheadConfig::new(1))
        .unwrap();
    let policy = Policy::builder("client")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut first = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&calls, |_, request: u32| Ok(request)));
    let mut second = first.clone();
    let mut cx = Context::from_waker(Waker::noop());

    // Readiness reserves the only slot, before any call is made.
    first.ready().await.unwrap();
    assert!(second.poll_ready(&mut cx).is_pending());
    assert_eq!(registry.get_bulkhead("db").unwrap().metrics().in_use, 1);

    // The call runs in the reserved slot and gives it back when it ends.
    assert_eq!(first.call(1).await, Ok(1));
    let ready = tokio::time::timeout(SEC, second.ready()).await;
    assert!(
        matches!(ready, Ok(Ok(_))),
        "a freed slot makes the waiter ready"
    );
    assert_eq!(second.call(2).await, Ok(2));

    // A reservation dropped without a call gives its slot back too.
    first.ready().await.unwrap();
    assert!(second.poll_ready(&mut cx).is_pending());
    drop(first);
    assert!(matches!(second.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_bulkhead_learns_from_calls_through_the_layer() {
    let registry = Registry::new();
    let algorithm = resilient::bulkhead::LimitAlgorithm::aimd(50 * MS);
    let bulkhead = registry
        .declare_bulkhead("db", BulkheadConfig::adaptive(2, 10, 50, algorithm))
        .unwrap();
    let policy = Policy::builder("client")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    // Every call takes 100 ms: twice what the limit counts as slow.
    let slow = service_fn(|request: u32| async move {
        tokio::time::sleep(100 * MS).await;
        Ok::<u32, TestError>(request)
    });
    let mut service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(slow);
    for request in 0..40 {
        assert_eq!(
            service.ready().await.unwrap().call(request).await,
            Ok(request)
        );
    }
    let limit = bulkhead.metrics().max_concurrent;
    assert!(
        limit < 10,
        "slow calls through the layer cut the limit: {limit}"
    );
    assert_eq!(bulkhead.metrics().in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_ready_at_once_even_with_a_full_bulkhead() {
    let registry = Registry::new();
    one_failure_opens(&registry, "api");
    let bulkhead = registry
        .declare_bulkhead("api", BulkheadConfig::new(1))
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let failing = counted(&calls, |n, _: ()| Err(TestError::Down(n)));
    let guarded = Policy::builder("guarded")
        .breaker("api")
        .bulkhead("api")
        .build_in(&registry)
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(PolicyLayer::new(guarded))
        .service(failing.clone());
    let mut cx = Context::from_waker(Waker::noop());

    let held = bulkhead.acquire().await.unwrap();
    assert!(service.poll_ready(&mut cx).is_pending(), "full bulkhead");

    // Another call site trips the shared breaker; the waiting service is now ready to refuse.
    let tripping = Policy::builder("tripping")
        .breaker("api")
        .build_in(&registry)
        .unwrap();
    let trip = ServiceBuilder::new()
        .layer(PolicyLayer::new(tripping))
        .service(failing);
    assert!(trip.oneshot(()).await.is_err());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert!(matches!(
        service.call(()).await,
        Err(Error::Rejected(Rejection::CircuitOpen { .. }))
    ));

    // Once the open wait is over, the probe needs a slot again.
    tokio::time::advance(SEC).await;
    assert!(service.poll_ready(&mut cx).is_pending());
    drop(held);
    service.ready().await.unwrap();
    assert_eq!(
        service.call(()).await,
        Err(Error::Service(TestError::Down(2)))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A service that must be polled ready before each call, as tower requires: a call without
/// readiness fails.
struct NeedsReadiness {
    ready: bool,
}

impl Clone for NeedsReadiness {
    /// A clone has not been polled.
    fn clone(&self) -> Self {
        NeedsReadiness { ready: false }
    }
}

impl Service<()> for NeedsReadiness {
    type Response = u32;
    type Error = TestError;
    type Future = std::future::Ready<Result<u32, TestError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TestError>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        let ready = std::mem::take(&mut self.ready);
        std::future::ready(if ready { Ok(1) } else { Err(TestError::Fatal) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_admitted_after_an_open_breakers_readiness_polls_the_inner_service_first() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("gate", BreakerConfig::consecutive_failures(1))
        .unwrap();
    let policy = Policy::builder("client")
        .breaker("gate")
        .build_in(&registry)
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(NeedsReadiness { ready: false });

    // The instance polled ready is the one called.
    assert_eq!(service.ready().await.unwrap().call(()).await, Ok(1));

    breaker.force_open();
    // Ready for the refusal, without asking the inner service.
    service.ready().await.unwrap();
    breaker.reset();
    assert_eq!(service.call(()).await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_counts_as_a_breaker_failure() {
    let registry = Registry::new();
    one_failure_opens(&registry, "slow");
    let policy = Policy::builder("client")
        .timeout(100 * MS)
        .breaker("slow")
        .build_in(&registry)
        .unwrap();
    let breaker = policy.breaker().unwrap().clone();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service_fn(move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(SEC).await;
                Ok::<u32, TestError>(0)
            }
        });

    let timed_out = service.clone().oneshot(()).await;
    assert_eq!(
        timed_out,
        Err(Error::Rejected(Rejection::Timeout {
            kind: TimeoutKind::Attempt,
            limit: 100 * MS,
        }))
    );
    assert_eq!(breaker.state(), BreakerState::Open);
    let rejected = service.oneshot(()).await;
    assert!(matches!(
        rejected,
        Err(Error::Rejected(Rejection::CircuitOpen { .. }))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

const SHARED: &str = "tower_shared_payments";

#[resilient(breaker = "tower_shared_payments")]
async fn charge_by_attribute() -> Result<u32, TestError> {
    Err(TestError::Down(0))
}

#[tokio::test(start_paused = true)]
async fn one_breaker_is_shared_by_name_between_an_annotated_function_and_a_layer() {
    one_failure_opens(resilient::registry(), SHARED);
    let policy = Policy::builder("tower_shared_client")
        .breaker(SHARED)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&calls, |_, request: u32| Ok(request)));

    assert_eq!(service.clone().oneshot(1).await, Ok(1));
    // The annotated function's failure opens the breaker the layer uses.
    assert_eq!(charge_by_attribute().await, Err(TestError::Down(0)));
    let rejected = service.oneshot(2).await;
    match rejected {
        Err(Error::Rejected(Rejection::CircuitOpen { breaker, .. })) => {
            assert_eq!(&*breaker, SHARED)
        }
        other => panic!("expected the shared breaker's rejection, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A request that owns something that cannot be copied, as a streaming body does.
#[derive(Debug)]
struct Stream(u32);

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_cloned_is_sent_once() {
    let registry = Registry::new();
    let policy = retrying(3).build_in(&registry).unwrap();
    let layer = PolicyLayer::new(policy);
    let failing = |n, _: Stream| Err(TestError::Down(n));

    let calls = Arc::new(AtomicU32::new(0));
    let once = ServiceBuilder::new()
        .layer(layer.clone().send_once())
        .service(counted(&calls, failing));
    assert_eq!(
        once.oneshot(Stream(1)).await,
        Err(Error::Service(TestError::Down(1)))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A copier may decline some requests and copy others.
    let calls = Arc::new(AtomicU32::new(0));
    let small_only = |request: &Stream| (request.0 < 10).then_some(Stream(request.0));
    let some = ServiceBuilder::new()
        .layer(layer.clone_requests_with(small_only))
        .service(counted(&calls, failing));
    assert!(some.clone().oneshot(Stream(100)).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "declined: sent once");
    assert!(some.oneshot(Stream(1)).await.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "copied: sent once and retried 3 times"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_if_sees_the_inner_services_error_type() {
    let registry = Registry::new();
    let policy = retrying(3)
        .retry_if(|e: &TestError| !matches!(e, TestError::Fatal))
        .build_in(&registry)
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&calls, |_, _: ()| Err(TestError::Fatal)));

    assert_eq!(
        service.oneshot(()).await,
        Err(Error::Service(TestError::Fatal))
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a fatal error is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn the_error_types_transient_impl_decides_retries_and_their_wait() {
    let registry = Registry::new();
    let policy = retrying(3).build_in(&registry).unwrap();
    let layer = PolicyLayer::new(policy).transient::<TestError>();

    // `RateLimited` is transient and asks for a wait: the retry waits that long.
    let calls = Arc::new(AtomicU32::new(0));
    let limited =
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(counted(&calls, |n, request: u32| {
                if n == 1 {
                    Err(TestError::RateLimited(5 * SEC))
                } else {
                    Ok(request)
                }
            }));
    let started = tokio::time::Instant::now();
    assert_eq!(limited.oneshot(3).await, Ok(3));
    assert!(
        started.elapsed() >= 5 * SEC,
        "waited {:?}",
        started.elapsed()
    );

    // `Fatal` is not: one attempt.
    let calls = Arc::new(AtomicU32::new(0));
    let fatal = ServiceBuilder::new()
        .layer(layer)
        .service(counted(&calls, |_, _: u32| Err(TestError::Fatal)));
    assert_eq!(
        fatal.oneshot(0).await,
        Err(Error::Service(TestError::Fatal))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_boxed_rejection_downcasts_as_towers_own_errors_do() {
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker("boxed", BreakerConfig::consecutive_failures(1))
        .unwrap();
    let policy = Policy::builder("client")
        .breaker("boxed")
        .build_in(&registry)
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service_fn(|_: ()| async { Err::<u32, _>(std::io::Error::other("down")) });

    let failed = service.clone().oneshot(()).await.unwrap_err();
    assert_eq!(
        failed.to_string(),
        "down",
        "transparent: the service's own message"
    );
    let boxed = failed.into_box_error();
    assert!(boxed.downcast_ref::<std::io::Error>().is_some());

    breaker.force_open();
    let refused = service.oneshot(()).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        std::error::Error::source(&refused).is_none(),
        "no message twice"
    );
    let boxed = refused.into_box_error();
    assert_eq!(boxed.to_string(), message);
    assert!(matches!(
        boxed.downcast_ref::<Rejection>(),
        Some(Rejection::CircuitOpen { .. })
    ));
}

#[test]
fn the_service_and_its_future_cross_threads_and_the_service_is_shared() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let registry = Registry::new();
    let policy = Policy::builder("client")
        .bulkhead("db")
        .build_in(&registry)
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy))
        .service(counted(&Arc::new(AtomicU32::new(0)), |_, n: u32| Ok(n)));
    // What axum's router and tower-http ask of a service.
    send_sync(&service);
    send(&service.call(1));
}

/// One bad host opens only its own breaker: the layer's `breaker_key` picks each request's
/// breaker in a family, as `#[resilient(breaker_key = ...)]` does.
#[tokio::test(start_paused = true)]
async fn a_keyed_layer_gives_each_host_its_own_breaker() {
    let registry = Registry::new();
    let hosts = registry
        .declare_breaker_family(
            "tower_hosts",
            resilient::family::FamilyConfig::new(
                BreakerConfig::consecutive_failures(2).with_open_wait(SEC),
            ),
        )
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let upstream = counted(&calls, |n, host: &'static str| match host {
        "db-3" => Err(TestError::Down(n)),
        _ => Ok(n),
    });
    let policy = Policy::builder("tower_keyed").build_in(&registry).unwrap();
    let service = ServiceBuilder::new()
        .layer(PolicyLayer::new(policy).breaker_key(hosts.clone(), |host: &&'static str| *host))
        .service(upstream);

    for _ in 0..2 {
        let result = service.clone().oneshot("db-3").await;
        assert!(matches!(result, Err(Error::Service(TestError::Down(_)))));
    }
    let refused = service.clone().oneshot("db-3").await.unwrap_err();
    assert!(
        matches!(refused.rejection(), Some(Rejection::CircuitOpen { breaker, .. })
            if breaker.contains("db-3")),
        "{refused:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the open key's call never reached the host"
    );

    assert!(
        service.clone().oneshot("db-1").await.is_ok(),
        "another host passes"
    );
    let db1 = hosts.breaker(&"db-1").unwrap();
    assert_eq!(db1.state(), BreakerState::Closed);
    assert_eq!(hosts.breaker(&"db-3").unwrap().state(), BreakerState::Open);
}
