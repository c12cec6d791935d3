//! tower integration (the `tower` feature): a [`PolicyLayer`] runs every call of a tower
//! [`Service`] through a [`Policy`], in the attribute's order:
//!
//! ```text
//! total timeout → retry → circuit breaker → bulkhead → attempt timeout → the inner service
//! ```
//!
//! (The fallback stays the caller's: it matches on the [`Error`].)
//!
//! * **Names are shared.** The policy's breaker and bulkhead come from a registry by name, the
//!   global one with [`PolicyBuilder::build`](crate::PolicyBuilder::build) or any other with
//!   [`build_in`](crate::PolicyBuilder::build_in): a breaker named `payments` is one breaker for
//!   every annotated function and every layer that names it.
//! * **Readiness.** With a bulkhead, `poll_ready` reserves a slot (as tower's
//!   `ConcurrencyLimit` does) and is pending while the bulkhead is full; `call` runs its first
//!   attempt in that slot. The wait is the caller's to bound (tower's `load_shed` or `timeout`
//!   in front), since a readiness wait has no call to reject yet. Retries give the slot back
//!   during their backoff and ask the bulkhead again, honouring its `max_wait`. While the
//!   breaker is open, `poll_ready` is ready at once, without a slot and without asking the
//!   inner service: the call will be refused, and waiting for capacity first would turn
//!   failing fast into queueing.
//! * **Admission.** `call` asks the breaker: while it is open (its wait not over) or forced
//!   open, the response future is [`Rejection::CircuitOpen`], ready at once, and the inner
//!   service is not called. Otherwise the breaker admits each attempt as it starts (a half-open
//!   probe slot is taken only by an attempt that runs).
//! * **Retries** need a second copy of the request, as in tower's own
//!   `retry::Policy::clone_request`: requests that are `Clone` are cloned by default
//!   ([`CloneRequests`]); [`PolicyLayer::clone_requests_with`] takes a function that may decline
//!   (a streaming body), and [`PolicyLayer::send_once`] sends every request once. A request
//!   that cannot be copied is sent once, whatever the policy's retries.
//! * **Errors** are [`Error<E>`]: the inner service's own error, or the [`Rejection`] that
//!   refused or cut the call short, so a caller can answer 503 or 504 for the latter. It is a
//!   `std::error::Error` and converts into tower's `BoxError`.
//! * **Cost.** A call that runs: one allocation, the boxed future of the call (its type cannot
//!   be named on stable Rust otherwise), a clone of the inner service (tower's convention for
//!   handing the ready instance to the call) and an `Arc` count for the policy; a clone of the
//!   request per attempt when the policy retries. A call refused by an open breaker: none of
//!   these. Readiness: nothing, except one boxed wait when the bulkhead is full.
//!
//! The policy's `retry_if` predicates and the breaker's failure predicate see the inner
//! service's error type, as they see a function's error under the attribute.
//!
//! ```
//! use std::time::Duration;
//! use resilient::tower::{Error, PolicyLayer};
//! use resilient::{Policy, Registry, Rejection};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new();
//! let policy = Policy::builder("payments_client")
//!     .timeout(Duration::from_secs(2))
//!     .retries(2)
//!     .breaker("payments")
//!     .bulkhead("payments")
//!     .build_in(&registry)?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(PolicyLayer::new(policy))
//!     .service_fn(|amount: u32| async move { Ok::<_, std::io::Error>(amount * 100) });
//!
//! match service.oneshot(42).await {
//!     Ok(cents) => assert_eq!(cents, 4200),
//!     // An open breaker, a full bulkhead or a timeout: answer 503 or 504.
//!     Err(Error::Rejected(rejection)) => println!("unavailable: {rejection}"),
//!     Err(Error::Service(e)) => println!("the payments service failed: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::bulkhead::OwnedSlot;
use crate::error::Rejection;
use crate::policy::{Attempt, Next, Policy};

mod clone;
mod error;

pub use self::clone::{CloneRequest, CloneRequests, SendOnce};
pub use self::error::Error;

type Running<R, E> = Pin<Box<dyn Future<Output = Result<R, Error<E>>> + Send>>;

/// The response future of a [`PolicyService`]: the call running, or the open breaker's
/// rejection, ready at once.
pub struct ResponseFuture<R, E> {
    state: State<R, E>,
}

enum State<R, E> {
    Rejected(Option<Rejection>),
    Running(Running<R, E>),
}

impl<R, E> Future for ResponseFuture<R, E> {
    type Output = Result<R, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Running(call) => call.as_mut().poll(cx),
            // Polled again after it answered: the rejection was taken, as a fused future's
            // would be; pending keeps the contract without a panic.
            State::Rejected(rejection) => match rejection.take() {
                Some(rejection) => Poll::Ready(Err(Error::Rejected(rejection))),
                None => Poll::Pending,
            },
        }
    }
}

impl<R, E> fmt::Debug for ResponseFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Rejected(rejection) => f.debug_tuple("Rejected").field(rejection).finish(),
            State::Running(_) => f.write_str("Running"),
        }
    }
}

/// A [`Layer`] that runs a service's calls through a [`Policy`]; see the [module](self).
#[derive(Clone)]
pub struct PolicyLayer<C = CloneRequests> {
    policy: Arc<Policy>,
    clone: C,
}

impl PolicyLayer {
    /// A layer running calls through `policy`, cloning requests for retries.
    pub fn new(policy: Policy) -> Self {
        PolicyLayer {
            policy: Arc::new(policy),
            clone: CloneRequests,
        }
    }
}

impl<C> PolicyLayer<C> {
    /// Sends every request once: no retries, whatever the policy says.
    pub fn send_once(self) -> PolicyLayer<SendOnce> {
        self.clone_requests_with(SendOnce)
    }

    /// Copies requests for retries with `clone`; a request it declines (`None`) is sent once.
    pub fn clone_requests_with<D>(self, clone: D) -> PolicyLayer<D> {
        PolicyLayer {
            policy: self.policy,
            clone,
        }
    }

    /// The policy the layer runs calls through.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<C> fmt::Debug for PolicyLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for PolicyLayer<C> {
    type Service = PolicyService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService {
            inner,
            policy: self.policy.clone(),
            clone: self.clone.clone(),
            slot: None,
            waiting: None,
            inner_ready: false,
        }
    }
}

type SlotWait = Pin<Box<dyn Future<Output = Option<OwnedSlot>> + Send>>;

/// A service whose calls run through a [`Policy`]; made by a [`PolicyLayer`].
pub struct PolicyService<S, C = CloneRequests> {
    inner: S,
    policy: Arc<Policy>,
    clone: C,
    /// The bulkhead slot reserved by `poll_ready`, for the next `call`.
    slot: Option<OwnedSlot>,
    /// The wait for a slot while the bulkhead is full.
    waiting: Option<SlotWait>,
    /// `poll_ready` saw the inner service ready; false when it answered for an open breaker
    /// without asking the inner service, so that a call the breaker admits after all waits
    /// for the inner service's readiness first.
    inner_ready: bool,
}

impl<S: Clone, C: Clone> Clone for PolicyService<S, C> {
    /// A clone reserves its own slot: a reservation belongs to the handle that made it.
    fn clone(&self) -> Self {
        PolicyService {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            clone: self.clone.clone(),
            slot: None,
            waiting: None,
            inner_ready: false,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for PolicyService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl<S, C> PolicyService<S, C> {
    /// Reserves a bulkhead slot if the policy has a bulkhead and none is held yet.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(bulkhead) = self.policy.bulkhead() else {
            return Poll::Ready(());
        };
        if self.slot.is_some() {
            return Poll::Ready(());
        }
        let waiting = match &mut self.waiting {
            Some(waiting) => waiting,
            None => match bulkhead.try_reserve() {
                Some(slot) => {
                    self.slot = Some(slot);
                    return Poll::Ready(());
                }
                None => self.waiting.insert(Box::pin(bulkhead.clone().reserve())),
            },
        };
        let slot = std::task::ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        // `None` (a closed semaphore) cannot happen; the call then asks the bulkhead itself.
        self.slot = slot;
        Poll::Ready(())
    }
}

impl<S, C> PolicyService<S, C> {
    /// Whether an open breaker will refuse the next call (see [`reject_now`](Self::reject_now)).
    fn refusing(&self) -> bool {
        let policy = &*self.policy;
        !policy.retry().retry_on_rejection
            && !policy.stats().is_bypassed()
            && policy
                .breaker()
                .is_some_and(|breaker| breaker.refusing().is_some())
    }

    /// An open breaker's rejection, decided in `call` so that a refused call allocates
    /// nothing and clones nothing. Left to the running call when a rejection may be retried
    /// ([`retry_on_rejection`](crate::PolicyBuilder::retry_on_rejection)) or the call site is
    /// switched off.
    fn reject_now(&self) -> Option<Rejection> {
        let policy = &*self.policy;
        if policy.retry().retry_on_rejection || policy.stats().is_bypassed() {
            return None;
        }
        let rejection = policy.breaker()?.reject_now()?;
        policy.stats().record_call();
        Some(rejection)
    }
}

impl<S, C, Req> Service<Req> for PolicyService<S, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    S::Response: Send + 'static,
    C: CloneRequest<Req> + Clone + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An open breaker answers at once: the call it refuses needs no slot and no inner
        // service, and waiting for either would turn failing fast into queueing.
        if self.refusing() {
            self.waiting = None;
            self.inner_ready = false;
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.poll_slot(cx));
        std::task::ready!(self.inner.poll_ready(cx)).map_err(Error::Service)?;
        self.inner_ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if let Some(rejection) = self.reject_now() {
            // The reserved slot goes back with the refused call.
            self.slot = None;
            return ResponseFuture {
                state: State::Rejected(Some(rejection)),
            };
        }
        // The ready instance goes with the call; a fresh clone waits for the next readiness.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let call = Call {
            policy: self.policy.clone(),
            inner,
            clone: self.clone.clone(),
            slot: self.slot.take(),
            inner_ready: std::mem::take(&mut self.inner_ready),
        };
        ResponseFuture {
            state: State::Running(Box::pin(call.run(request))),
        }
    }
}

/// What one call's future owns.
struct Call<S, C> {
    policy: Arc<Policy>,
    inner: S,
    clone: C,
    slot: Option<OwnedSlot>,
    inner_ready: bool,
}

impl<S, C> Call<S, C> {
    async fn run<Req>(mut self, request: Req) -> Result<S::Response, Error<S::Error>>
    where
        S: Service<Req>,
        S::Error: 'static,
        C: CloneRequest<Req>,
    {
        let policy = &*self.policy;
        if let Some(mut call) = policy.simple_call() {
            call.admit()?;
            let result = call
                .run(send(&mut self.inner, request, !self.inner_ready))
                .await;
            call.finish(&result);
            return result.map_err(Error::Service);
        }
        let mut execution = policy.execution();
        if let Some(slot) = self.slot.take() {
            execution.use_reserved_slot(slot);
        }
        let retries = policy.retry().max_retries > 0;
        let mut request = request;
        let mut ready = self.inner_ready;
        loop {
            // Copied before it is sent, since sending consumes it (tower's convention).
            let spare = retries
                .then(|| self.clone.clone_request(&request))
                .flatten();
            if spare.is_none() {
                execution.single_attempt();
            }
            let inner = &mut self.inner;
            let attempt = execution
                .attempt(send(inner, request, !std::mem::replace(&mut ready, false)))
                .await;
            let attempt = match attempt {
                Attempt::Done(result) => Attempt::Done(result.map_err(Error::Service)),
                Attempt::Rejected(rejection) => Attempt::Rejected(rejection),
            };
            match execution.next(attempt, |e| classify(policy, e)).await {
                Next::Return(result) => return result,
                Next::Retry => match spare {
                    Some(next) => request = next,
                    // `single_attempt` above forbids a retry without a copy; should that ever
                    // change, the call ends on what is known rather than panicking.
                    None => return Err(Error::Rejected(unreachable_retry(policy))),
                },
            }
        }
    }
}

/// One attempt: a retry waits for the inner service's readiness again; the first attempt uses
/// the readiness `poll_ready` saw, if it asked.
async fn send<S: Service<Req>, Req>(
    inner: &mut S,
    request: Req,
    poll_ready: bool,
) -> Result<S::Response, S::Error> {
    if poll_ready {
        std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
    }
    inner.call(request).await
}

fn classify<E: 'static>(policy: &Policy, error: &Error<E>) -> crate::Classification {
    match error {
        Error::Service(error) => policy.classify(error),
        Error::Rejected(rejection) => policy.classify(rejection),
    }
}

fn unreachable_retry(policy: &Policy) -> Rejection {
    Rejection::Timeout {
        kind: crate::TimeoutKind::Total,
        limit: policy.timeouts().total.unwrap_or_default(),
    }
}
