//! One call's future: the policy's attempts, retries and backoff, over the inner service.

use std::sync::Arc;

use tower_service::Service;

use crate::bulkhead::OwnedSlot;
use crate::error::Rejection;
use crate::policy::{Attempt, Next, Policy};

use super::classify::Shared;
use super::{CloneRequest, Error};

/// What one call's future owns.
pub(super) struct Call<S, C> {
    pub(super) shared: Arc<Shared>,
    pub(super) inner: S,
    pub(super) clone: C,
    pub(super) slot: Option<OwnedSlot>,
    pub(super) inner_ready: bool,
}

impl<S, C> Call<S, C> {
    pub(super) async fn run<Req>(mut self, request: Req) -> Result<S::Response, Error<S::Error>>
    where
        S: Service<Req>,
        S::Error: 'static,
        C: CloneRequest<Req>,
        Req: 'static,
    {
        let shared = &*self.shared;
        let policy = &shared.policy;
        let keyed = shared.key.as_ref().and_then(|key| key(&request));
        if keyed.is_none()
            && let Some(mut call) = policy.simple_call()
        {
            call.admit()?;
            let result = call
                .run(send(&mut self.inner, request, !self.inner_ready))
                .await;
            call.finish(&result);
            return result.map_err(Error::Service);
        }
        let mut execution = policy.execution();
        if let Some(breaker) = keyed {
            execution.use_breaker(breaker);
        }
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
            match execution.next(attempt, |e| shared.classify(e)).await {
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

fn unreachable_retry(policy: &Policy) -> Rejection {
    Rejection::Timeout {
        kind: crate::TimeoutKind::Total,
        limit: policy.timeouts().total.unwrap_or_default(),
    }
}
