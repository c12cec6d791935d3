//! The short path: a call that is one breaker permit around the attempt.

use std::any::Any;
use std::future::Future;

use crate::breaker::BreakerPermit;
use crate::error::Rejection;

use super::Policy;

/// A call on the short path (see [`Policy::simple_call`]). Dropped without
/// [`finish`](Self::finish), it counts as cancelled: the breaker's permit is released unrecorded.
///
/// Admission and the outcome are two small calls rather than one `Result` carrying the call:
/// a large enum written piece by piece and then moved whole stalls the processor on every call.
#[must_use = "a call records nothing until it is finished"]
#[derive(Debug)]
pub struct SimpleCall<'p> {
    pub(super) policy: &'p Policy,
    /// See [`CallSiteStats::start_timer`].
    pub(super) started: u64,
    pub(super) permit: Option<BreakerPermit<'p>>,
}

impl SimpleCall<'_> {
    /// Asks the breaker, if the policy has one, to let the call run.
    #[inline]
    pub fn admit(&mut self) -> Result<(), Rejection> {
        if let Some(breaker) = &self.policy.breaker {
            match breaker.try_acquire() {
                Ok(permit) => self.permit = Some(permit),
                Err(rejection) => {
                    self.policy.stats.stop_timer(self.started);
                    return Err(rejection);
                }
            }
        }
        Ok(())
    }

    /// Awaits the call itself, after [`admit`](Self::admit): through the breaker's permit (see
    /// [`BreakerPermit::run`]), so that the call's own panic is recorded as a failure and a
    /// panic elsewhere that drops it as a cancellation.
    #[inline]
    pub async fn run<F: Future>(&mut self, future: F) -> F::Output {
        crate::breaker::watch(self.permit.as_mut(), future).await
    }

    /// Records the call's outcome in the breaker, and its latency if sampled.
    #[inline]
    pub fn finish<T, E: Any>(self, result: &Result<T, E>) {
        if let Some(permit) = self.permit {
            permit.record_result(result);
        }
        self.policy.stats.stop_timer(self.started);
    }
}
