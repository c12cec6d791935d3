//! The service: readiness (the bulkhead slot, the inner service, an open breaker's early
//! answer) and the hand-over of each call to its future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::bulkhead::OwnedSlot;
use crate::error::Rejection;

use super::call::Call;
use super::classify::Shared;
use super::future::State;
use super::{CloneRequest, CloneRequests, Error, ResponseFuture};

/// `Sync` too, so that the service is, as axum's router and tower-http ask of services.
type SlotWait = Pin<Box<dyn Future<Output = Option<OwnedSlot>> + Send + Sync>>;

/// A service whose calls run through a [`Policy`](crate::Policy); made by a
/// [`PolicyLayer`](super::PolicyLayer).
pub struct PolicyService<S, C = CloneRequests> {
    inner: S,
    shared: Arc<Shared>,
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

impl<S, C> PolicyService<S, C> {
    pub(super) fn new(inner: S, shared: Arc<Shared>, clone: C) -> Self {
        PolicyService {
            inner,
            shared,
            clone,
            slot: None,
            waiting: None,
            inner_ready: false,
        }
    }
}

impl<S: Clone, C: Clone> Clone for PolicyService<S, C> {
    /// A clone reserves its own slot: a reservation belongs to the handle that made it.
    fn clone(&self) -> Self {
        PolicyService::new(self.inner.clone(), self.shared.clone(), self.clone.clone())
    }
}

impl<S: fmt::Debug, C> fmt::Debug for PolicyService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyService")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl<S, C> PolicyService<S, C> {
    /// Reserves a bulkhead slot if the policy has a bulkhead and none is held yet.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(bulkhead) = self.shared.policy.bulkhead() else {
            return Poll::Ready(());
        };
        // A switched-off call site runs one plain attempt, outside the bulkhead.
        if self.slot.is_some() || self.shared.policy.stats().is_bypassed() {
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
    /// Whether an open breaker may answer before the call runs: not when a rejection may be
    /// retried ([`retry_on_rejection`](crate::PolicyBuilder::retry_on_rejection)), nor when
    /// the call site is switched off.
    fn answers_early(&self) -> bool {
        let policy = &self.shared.policy;
        !policy.retry().retry_on_rejection && !policy.stats().is_bypassed()
    }

    /// Whether an open breaker will refuse the next call (see [`reject_now`](Self::reject_now)).
    fn refusing(&self) -> bool {
        self.answers_early()
            && self
                .shared
                .policy
                .breaker()
                .is_some_and(|breaker| breaker.refusing().is_some())
    }

    /// An open breaker's rejection, decided in `call` so that a refused call allocates
    /// nothing and clones nothing.
    fn reject_now(&self) -> Option<Rejection> {
        if !self.answers_early() {
            return None;
        }
        let rejection = self.shared.policy.breaker()?.reject_now()?;
        self.shared.policy.stats().record_call();
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
            shared: self.shared.clone(),
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
