//! One call in progress, step by step: attempts, the decision after each, backoff sleeps.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Random;
use crate::breaker::{BreakerPermit, CircuitBreaker};
use crate::bulkhead::BulkheadPermit;
use crate::error::{Rejection, TimeoutKind};
use crate::event::Event;
use crate::retry::{CallGuard, Classification};
use crate::timeout::run_until;

use super::Policy;
use super::attempt::{Prepared, StepwiseAttempt};

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// The attempt ran to completion.
    Done(Result<T, E>),
    /// The attempt was refused or cut short by `resilient`.
    Rejected(Rejection),
}

/// What to do after an attempt.
#[derive(Debug)]
pub enum Next<T, E> {
    /// The call is over: return this.
    Return(Result<T, E>),
    /// The backoff has been slept: run another attempt.
    Retry,
}

/// One call of a [`Policy`] in progress. Each step is cancel safe: dropping the future of
/// [`attempt`](Self::attempt) or [`next`](Self::next) gives back every permit and records
/// nothing.
pub struct Execution<'p> {
    pub(super) policy: &'p Policy,
    /// The call's span (DEBUG, target `resilient::call`): attempts run inside it.
    pub(super) span: tracing::Span,
    /// An operator switched the call site off: one plain attempt, nothing else.
    pub(super) bypassed: bool,
    /// See [`CallSiteStats::start_timer`].
    pub(super) started: u64,
    pub(super) retries: u32,
    /// Retries this call may make: the policy's, or 0 for a call whose attempt cannot be run
    /// again (see [`single_attempt`](Execution::single_attempt)).
    pub(super) retry_limit: u32,
    pub(super) deadline: Option<Instant>,
    pub(super) previous_delay: Duration,
    pub(super) random: Option<Random>,
    pub(super) call_guard: Option<CallGuard<'p>>,
    pub(super) retry_guard: Option<CallGuard<'p>>,
    /// A bulkhead slot a tower service reserved in `poll_ready`, for the first attempt.
    #[cfg(feature = "tower")]
    pub(super) reserved: Option<crate::bulkhead::OwnedSlot>,
    /// This call's own breaker, in place of the policy's: a key's breaker from a
    /// [`BreakerFamily`](crate::family::BreakerFamily), or the rejection of a refused key.
    pub(super) keyed: Option<Result<CircuitBreaker, Rejection>>,
    /// The attempts' [`context()`](crate::context::context): the call's key and deadline.
    pub(super) scope: crate::context::CallScope,
}

impl fmt::Debug for Execution<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("policy", &self.policy.name)
            .field("retries", &self.retries)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'p> Execution<'p> {
    /// Makes this call a single attempt whatever the policy's retries: for callers that cannot
    /// build the attempt twice (an annotated function without `retries` moves its arguments
    /// into its one attempt, even when a configuration file gives its call site retries).
    pub fn single_attempt(&mut self) {
        self.retry_limit = 0;
    }

    /// Runs the next attempt in `slot`, taken by a tower service's `poll_ready`, instead of
    /// asking the bulkhead again.
    #[cfg(feature = "tower")]
    pub(crate) fn use_reserved_slot(&mut self, slot: crate::bulkhead::OwnedSlot) {
        self.reserved = Some(slot);
    }

    /// Runs this call's attempts through `breaker` instead of the policy's: the breaker of one
    /// key of a [`BreakerFamily`](crate::family::BreakerFamily). An `Err` (a
    /// [refused key](crate::family::KeyRefused)) rejects every attempt with it.
    pub fn use_breaker(&mut self, breaker: Result<CircuitBreaker, Rejection>) {
        self.keyed = Some(breaker);
    }

    /// Gives this call the caller's idempotency key (see [`context()`](crate::context::context))
    /// instead of one generated on first use. Call it before the first attempt.
    pub fn use_idempotency_key(&mut self, key: crate::context::IdempotencyKey) {
        self.scope.set_key(key);
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Runs one attempt through the breaker, the bulkhead and the attempt timeout, and records
    /// its outcome in the breaker. `future` is not polled if the attempt is refused.
    pub async fn attempt<T, E, F>(&mut self, future: F) -> Attempt<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Any,
    {
        // Taken first, so that an attempt refused before its bulkhead step gives it back; held
        // until the attempt ends.
        #[cfg(feature = "tower")]
        let reserved = self.reserved.take().map(ReservedSlot::enter);
        #[cfg(not(feature = "tower"))]
        let reserved: Option<()> = None;
        let attempt = StepwiseAttempt::new(self.prepare_attempt(reserved.is_some()), future).await;
        #[cfg(feature = "tower")]
        if let Some(reserved) = reserved {
            reserved.give_back(capacity_signal(&attempt));
        }
        attempt
    }

    /// Everything of a step-wise attempt before its body: its trace, the kill switch, the key's
    /// breaker, and admission, which may wait for a bulkhead slot. Not generic, so that it is
    /// compiled once rather than once per attempt's type; it gives the execution back shared,
    /// for the attempt to read while it runs.
    pub(super) async fn prepare_attempt<'a>(
        &'a mut self,
        reserved: bool,
    ) -> (Prepared<'a>, &'a Execution<'p>) {
        self.trace_start(self.retries + 1);
        if self.bypassed {
            return (Prepared::Bypassed, self);
        }
        self.enter_budget();
        let this: &'a Execution<'p> = self;
        let breaker = match &this.keyed {
            None => this.policy.breaker.as_ref(),
            Some(Ok(breaker)) => Some(breaker),
            Some(Err(rejection)) => return (Prepared::Refused(rejection.clone()), this),
        };
        let prepared = match this.admit(breaker, reserved).await {
            Ok((permit, slot)) => Prepared::Admitted(permit, slot),
            Err(rejection) => Prepared::Refused(rejection),
        };
        (prepared, this)
    }

    // The two traces are functions of their own: in `attempt`, generic over every annotated
    // function's body, their expansion would be compiled once per function.
    #[inline(never)]
    pub(super) fn trace_start(&self, number: u32) {
        tracing::trace!(
            target: "resilient::call",
            parent: &self.span,
            attempt = number,
            "attempt starts"
        );
    }

    #[inline(never)]
    pub(super) fn trace_end(&self, ok: bool) {
        tracing::trace!(
            target: "resilient::call",
            parent: &self.span,
            attempt = self.retries + 1,
            ok,
            "attempt ended"
        );
    }

    /// Counts this call in its retry budget's calls in flight, once, before its first
    /// attempt is admitted.
    pub(super) fn enter_budget(&mut self) {
        if let (Some(budget), None) = (&self.policy.budget, &self.call_guard) {
            self.call_guard = Some(budget.enter());
        }
    }

    /// Admits one attempt, after [`enter_budget`](Self::enter_budget): the total deadline,
    /// the breaker, then the bulkhead (waiting up to its `max_wait`, within the deadline). Not
    /// generic, so that it is compiled once, not once per attempt's type.
    pub(super) async fn admit<'b>(
        &self,
        breaker: Option<&'b CircuitBreaker>,
        reserved: bool,
    ) -> Result<(Option<BreakerPermit<'b>>, Option<BulkheadPermit<'p>>), Rejection> {
        let policy = self.policy;
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            return Err(self.total_timeout());
        }
        let mut permit = breaker.map(CircuitBreaker::try_acquire).transpose()?;
        let slot = match (&policy.bulkhead, reserved) {
            (None, _) | (Some(_), true) => None,
            (Some(bulkhead), false) => match run_until(self.deadline, bulkhead.acquire()).await {
                Some(Ok(slot)) => {
                    if let Some(permit) = &mut permit {
                        permit.restart_timer();
                    }
                    Some(slot)
                }
                // The breaker permit drops unrecorded: a full bulkhead is our capacity, not
                // the dependency's failure.
                Some(Err(rejection)) => return Err(rejection),
                None => return Err(self.total_timeout()),
            },
        };
        Ok((permit, slot))
    }

    /// Decides what follows an attempt: return its result, or sleep the backoff and retry.
    /// `classify` says whether an error is worth retrying.
    pub async fn next<T, E>(
        &mut self,
        attempt: Attempt<T, E>,
        classify: impl FnOnce(&E) -> Classification,
    ) -> Next<T, E>
    where
        E: From<Rejection>,
    {
        let outcome = self.classify(attempt, classify);
        self.conclude(outcome).await
    }

    /// The attempt's outcome, with its error classified. Synchronous and small: the only part
    /// of [`next`](Self::next) generic over the classifier, which differs for every annotated
    /// function, so that [`conclude`](Self::conclude) is compiled once per result type.
    pub(crate) fn classify<T, E>(
        &self,
        attempt: Attempt<T, E>,
        classify: impl FnOnce(&E) -> Classification,
    ) -> Outcome<T, E>
    where
        E: From<Rejection>,
    {
        match attempt {
            Attempt::Done(Ok(value)) => Outcome::Succeeded(value),
            Attempt::Done(Err(error)) => {
                let classification = classify(&error);
                Outcome::Failed {
                    error,
                    classification,
                    error_kind: std::any::type_name::<E>(),
                }
            }
            Attempt::Rejected(rejection) => {
                let retryable = match &rejection {
                    Rejection::Timeout {
                        kind: TimeoutKind::Attempt,
                        ..
                    } => true,
                    Rejection::Timeout { .. } => false,
                    _ => self.policy.retry.retry_on_rejection,
                };
                let classification = Classification {
                    transient: retryable,
                    retry_after: rejection.retry_after(),
                };
                let error_kind = if rejection.is_timeout() {
                    "attempt timeout"
                } else {
                    "rejected"
                };
                Outcome::Failed {
                    error: E::from(rejection),
                    classification,
                    error_kind,
                }
            }
        }
    }

    /// Returns a success, or sleeps the backoff before a retry, or returns the error when the
    /// call must end.
    pub(crate) async fn conclude<T, E>(&mut self, outcome: Outcome<T, E>) -> Next<T, E> {
        match outcome {
            Outcome::Succeeded(value) => self.finish(Ok(value)),
            Outcome::Failed {
                error,
                classification,
                error_kind,
            } => {
                if self.back_off(classification, error_kind).await {
                    Next::Retry
                } else {
                    self.finish(Err(error))
                }
            }
        }
    }

    /// Plans a retry and sleeps its backoff: `false` when the call must end now. Not generic,
    /// so that it is compiled once, not once per result type.
    async fn back_off(&mut self, classification: Classification, error_kind: &'static str) -> bool {
        let Some(delay) = self.plan_retry(classification) else {
            return false;
        };
        let policy = self.policy;
        tracing::debug!(
            target: "resilient::retry",
            call_site = %policy.name,
            retry = self.retries,
            ?delay,
            error = error_kind,
            "attempt failed, retrying"
        );
        policy.listeners.emit(|| Event::Retry {
            call_site: policy.name.clone(),
            attempt: self.retries,
            delay,
            error: error_kind,
        });
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        true
    }

    fn finish<T, E>(&self, result: Result<T, E>) -> Next<T, E> {
        self.policy.stats.stop_timer(self.started);
        Next::Return(result)
    }

    /// The delay before the next retry, or `None` when the call must end now.
    fn plan_retry(&mut self, classification: Classification) -> Option<Duration> {
        let retry = &self.policy.retry;
        if self.bypassed || !classification.transient || self.retries >= self.retry_limit {
            return None;
        }
        let random = self.random.get_or_insert_with(Random::new);
        let mut delay = retry
            .backoff
            .delay(self.retries + 1, self.previous_delay, random);
        if let Some(hint) = classification.retry_after {
            // The dependency may ask for more time than the backoff gives, up to the cap.
            delay = delay.max(hint.min(retry.max_retry_after));
        }
        // A delay too large for an `Instant` (a hostile `Retry-After`) would never end: the
        // call ends now, with the error and its hint, deadline or not.
        let Some(end) = Instant::now().checked_add(delay) else {
            tracing::debug!(
                target: "resilient::retry",
                call_site = %self.policy.name, ?delay,
                "no retry: the backoff is too long for the clock"
            );
            return None;
        };
        // A backoff that ends at or after the deadline leaves the next attempt no time at all.
        if let Some(deadline) = self.deadline
            && end >= deadline
        {
            tracing::debug!(
                target: "resilient::retry",
                call_site = %self.policy.name, ?delay,
                "no retry: the backoff would end past the total timeout"
            );
            return None;
        }
        if let Some(budget) = &self.policy.budget {
            // Replacing the previous retry's guard ends that retry's count.
            self.retry_guard = None;
            match budget.try_retry() {
                Some(guard) => self.retry_guard = Some(guard),
                None => {
                    tracing::debug!(
                        target: "resilient::retry",
                        call_site = %self.policy.name, budget = budget.name(),
                        "no retry: the retry budget is spent"
                    );
                    return None;
                }
            }
        }
        self.retries += 1;
        self.policy.stats.record_retry();
        self.previous_delay = delay;
        Some(delay)
    }

    fn total_timeout(&self) -> Rejection {
        Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: self.policy.timeouts.total.unwrap_or_default(),
        }
    }
}

/// An attempt's outcome as [`Execution::conclude`] takes it: a success, or an error with what
/// its classification said.
pub(crate) enum Outcome<T, E> {
    Succeeded(T),
    Failed {
        error: E,
        classification: Classification,
        error_kind: &'static str,
    },
}

/// A slot a tower service reserved in `poll_ready`, held by the attempt that uses it, and when
/// that attempt began if the bulkhead's limit is adaptive.
#[cfg(feature = "tower")]
struct ReservedSlot {
    slot: crate::bulkhead::OwnedSlot,
    started: Option<Instant>,
}

#[cfg(feature = "tower")]
impl ReservedSlot {
    fn enter(slot: crate::bulkhead::OwnedSlot) -> Self {
        let started = slot.is_adaptive().then(Instant::now);
        ReservedSlot { slot, started }
    }

    /// Gives the slot back, telling an adaptive limit whether the attempt went well (see
    /// [`capacity_signal`]), as the lean attempt does for a slot of its own.
    fn give_back(self, ok: Option<bool>) {
        if let (Some(started), Some(ok)) = (self.started, ok) {
            self.slot.record(started.elapsed(), ok);
        }
    }
}

/// What an attempt says of the dependency's capacity: a result is a sample (good when `Ok`), an
/// attempt timeout a bad one, and any other refusal (the breaker, the total deadline) nothing.
#[cfg(feature = "tower")]
fn capacity_signal<T, E>(attempt: &Attempt<T, E>) -> Option<bool> {
    match attempt {
        Attempt::Done(result) => Some(result.is_ok()),
        Attempt::Rejected(Rejection::Timeout {
            kind: TimeoutKind::Attempt,
            ..
        }) => Some(false),
        Attempt::Rejected(_) => None,
    }
}
