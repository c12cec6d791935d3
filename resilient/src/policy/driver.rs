//! The driver every call of a policy runs on: `#[resilient]` functions and [`Policy::call`].
//!
//! A call starts *lean*: its first attempt is one hand-written future
//! ([`Guarded`](super::attempt::Guarded)) admitted without waiting, and a success ends the
//! call there, without the step-wise driver. Everything else (a failure worth a retry, a
//! bulkhead that makes the call wait, a hedge, a call site an operator switched off, a call
//! traced at DEBUG, a key's own breaker) moves the call onto an [`Execution`], created then and
//! boxed, so that its state and its `async` steps add nothing to the size of a call
//! that never needs them, and are compiled once per result type rather than inlined into every
//! caller's future.

use std::any::Any;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::breaker::CircuitBreaker;
use crate::context::{CallScope, IdempotencyKey};
use crate::error::{Rejection, TimeoutKind};
use crate::retry::{CallGuard, Classification};

use super::attempt::{Admission, AttemptFuture, Guarded, StepwiseAttempt, admit_lean};
use super::{Attempt, Execution, Next, Policy};

/// One call of a policy in progress; see the [module](self).
pub(crate) struct Driver<'p> {
    policy: &'p Policy,
    /// Still on the lean path: no attempt failed and nothing asked for the step-wise driver.
    lean: bool,
    /// An operator switched the call site off when the call started (see
    /// [`Execution`]'s field of the same name).
    bypassed: bool,
    /// The call makes one attempt whatever the policy's retries (see
    /// [`Execution::single_attempt`]).
    single: bool,
    /// See [`CallSiteStats::start_timer`](crate::callsite::CallSiteStats).
    started: u64,
    /// This call's place in the retry budget's count of calls in flight, taken by its first
    /// attempt.
    call_guard: Option<CallGuard<'p>>,
    /// The call's deadline and idempotency key, as its attempts see them in
    /// [`context()`](crate::context::context).
    scope: CallScope,
    stepwise: Option<Box<Execution<'p>>>,
}

impl<'p> Driver<'p> {
    /// Starts one call of `policy`: counts it and starts its timers.
    #[inline]
    pub(crate) fn new(policy: &'p Policy) -> Self {
        policy.stats.record_call();
        let bypassed = policy.stats.is_bypassed();
        let lean =
            !bypassed && !tracing::enabled!(target: "resilient::call", tracing::Level::DEBUG);
        let deadline = policy.timeouts.total_deadline();
        Driver {
            policy,
            lean,
            bypassed,
            single: false,
            started: policy.stats.start_timer(),
            call_guard: None,
            scope: CallScope::new(None, deadline),
            stepwise: None,
        }
    }

    /// The policy this call runs.
    #[inline]
    pub(crate) fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// Whether an operator had switched the call site off when the call started.
    #[inline]
    pub(crate) fn bypassed(&self) -> bool {
        self.bypassed
    }

    /// See [`Execution::single_attempt`].
    pub(crate) fn single_attempt(&mut self) {
        self.single = true;
        if let Some(execution) = &mut self.stepwise {
            execution.single_attempt();
        }
    }

    /// See [`Execution::use_breaker`]. A key's breaker lives as long as the call, not the
    /// policy, so such a call runs on the step-wise driver.
    pub(crate) fn use_breaker(&mut self, breaker: Result<CircuitBreaker, Rejection>) {
        self.stepwise().use_breaker(breaker);
    }

    /// Admits the call's one attempt on the lean path, or `None` when it must go step-wise
    /// (see [`single_attempt`](Self::single_attempt)): then [`attempt`](Self::attempt) and
    /// [`next`](Self::next) run it.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(crate) fn admit_once(&mut self) -> Option<Result<Lean<'p>, Rejection>> {
        // As `admit_lean_attempt`, written out: folded into it, the refusal's timer stop
        // re-read the admission's result, several instructions of every call.
        if !self.lean {
            return None;
        }
        self.enter_budget();
        let Some(admission) = admit_lean(self.policy) else {
            return Some(Ok(Lean {
                policy: self.policy,
                admitted: Admitted::Deferred,
            }));
        };
        match admission {
            Admission::Admitted(permit, slot) => Some(Ok(Lean {
                policy: self.policy,
                admitted: Admitted::Now(permit, slot),
            })),
            Admission::Refused(rejection) => {
                self.policy.stats.stop_timer(self.started);
                Some(Err(rejection))
            }
            Admission::MustWait => None,
        }
    }

    /// Admits an attempt on the lean path, unless the call is step-wise already or the
    /// bulkhead would make the attempt wait. Always inlined where it is optimised, inlined by
    /// hint only in a debug build (see [`Guarded`]'s module).
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn admit_lean_attempt(&mut self) -> LeanStart<'p> {
        if !self.lean {
            return LeanStart::Stepwise;
        }
        self.enter_budget();
        match admit_lean(self.policy) {
            None => LeanStart::Deferred,
            Some(Admission::Admitted(permit, slot)) => LeanStart::Now(permit, slot),
            Some(Admission::Refused(rejection)) => LeanStart::Refused(rejection),
            Some(Admission::MustWait) => LeanStart::Stepwise,
        }
    }

    /// Counts the call in its retry budget's calls in flight, once.
    #[inline(always)]
    fn enter_budget(&mut self) {
        if let (Some(budget), None) = (&self.policy.budget, &self.call_guard) {
            self.call_guard = Some(budget.enter());
        }
    }

    /// Whether no attempt of this call has left the lean path yet.
    #[inline]
    pub(crate) fn on_lean_path(&self) -> bool {
        self.stepwise.is_none()
    }

    /// Ends a call whose attempt ran on the lean path: stops its timer.
    #[inline]
    pub(crate) fn finish_once(&self) {
        self.policy.stats.stop_timer(self.started);
    }

    /// Gives this call the caller's idempotency key; see
    /// [`Execution::use_idempotency_key`].
    pub(crate) fn use_idempotency_key(&mut self, key: IdempotencyKey) {
        match &mut self.stepwise {
            Some(execution) => execution.use_idempotency_key(key),
            None => self.scope.set_key(key),
        }
    }

    /// Runs one attempt; see [`Execution::attempt`]. `future` is not polled if the attempt is
    /// refused.
    #[inline]
    pub(crate) fn attempt<T, E, F>(&mut self, future: F) -> impl Future<Output = Attempt<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: Any,
    {
        let deadline = self.scope.deadline();
        match self.admit_lean_attempt() {
            LeanStart::Deferred => {
                return AttemptFuture::Guarded {
                    guarded: Guarded::deferred(self.policy, &self.scope, future, deadline),
                };
            }
            LeanStart::Now(permit, slot) => {
                return AttemptFuture::Guarded {
                    guarded: Guarded::new(
                        self.policy,
                        (&self.scope, 1),
                        future,
                        permit,
                        slot,
                        deadline,
                    ),
                };
            }
            LeanStart::Refused(rejection) => {
                return AttemptFuture::Settled {
                    attempt: Some(Attempt::Rejected(rejection)),
                };
            }
            LeanStart::Stepwise => {}
        }
        AttemptFuture::Stepwise {
            attempt: self.stepwise_attempt(future),
        }
    }

    /// Runs one attempt on the step-wise driver, whatever the lean path could do. Always
    /// inlined: out of line, its result is written through memory, which keeps [`attempt`]'s
    /// whole future in memory too, and moving it then stalls on a failed store-to-load forward
    /// (a `Policy::call` 14 % slower).
    ///
    /// [`attempt`]: Self::attempt
    #[inline(always)]
    pub(crate) fn stepwise_attempt<T, E, F>(
        &mut self,
        future: F,
    ) -> impl Future<Output = Attempt<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: Any,
    {
        let execution = self.stepwise();
        StepwiseAttempt::new(Box::pin(execution.prepare_attempt(false)), future)
    }

    /// Runs one attempt built by `make`, hedged when the policy hedges (see
    /// [`hedge`](crate::hedge)): then on the step-wise driver, since hedges need its budget
    /// and several attempts in flight.
    #[inline]
    pub(crate) fn attempt_with<T, E, F, Fut>(
        &mut self,
        make: &mut F,
    ) -> impl Future<Output = Attempt<T, E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Any,
    {
        match self.policy.hedge {
            Some(hedge) if !self.bypassed => {
                let execution = self.stepwise();
                Either::Right {
                    future: Box::pin(execution.hedged_attempt(make, hedge)),
                }
            }
            _ => Either::Left {
                future: self.attempt(make()),
            },
        }
    }

    /// Decides what follows an attempt; see [`Execution::next`]. A success, or an outcome
    /// that cannot be retried, ends a lean call here; anything else goes to the step-wise
    /// driver.
    #[inline]
    pub(crate) fn next<T, E, C>(
        &mut self,
        attempt: Attempt<T, E>,
        classify: C,
    ) -> impl Future<Output = Next<T, E>>
    where
        E: From<Rejection>,
        C: FnOnce(&E) -> Classification,
    {
        let attempt = if self.stepwise.is_none() {
            match self.settle(attempt) {
                Ok(result) => {
                    self.policy.stats.stop_timer(self.started);
                    return NextFuture::Ready {
                        ready: ready(Next::Return(result)),
                    };
                }
                Err(attempt) => attempt,
            }
        } else {
            attempt
        };
        let execution = self.stepwise();
        let outcome = execution.classify(attempt, classify);
        NextFuture::Stepwise {
            future: Box::pin(execution.conclude(outcome)),
        }
    }

    /// The call's result when a lean attempt's outcome ends it: a success, or a failure with
    /// no retry possible. Otherwise the attempt, for the step-wise driver.
    #[inline]
    fn settle<T, E: From<Rejection>>(
        &self,
        attempt: Attempt<T, E>,
    ) -> Result<Result<T, E>, Attempt<T, E>> {
        let no_retry = self.single || self.policy.retry.max_retries == 0;
        match attempt {
            Attempt::Done(Ok(value)) => Ok(Ok(value)),
            Attempt::Done(Err(error)) if no_retry => Ok(Err(error)),
            Attempt::Rejected(rejection) if no_retry || !self.retries_rejection(&rejection) => {
                Ok(Err(E::from(rejection)))
            }
            attempt => Err(attempt),
        }
    }

    /// Whether the step-wise driver could retry after `rejection` (its rule, in
    /// [`Execution::next`]).
    fn retries_rejection(&self, rejection: &Rejection) -> bool {
        match rejection {
            Rejection::Timeout {
                kind: TimeoutKind::Attempt,
                ..
            } => true,
            Rejection::Timeout { .. } => false,
            _ => self.policy.retry.retry_on_rejection,
        }
    }

    /// The step-wise driver, created on first use with what the lean path did so far.
    #[cold]
    fn stepwise(&mut self) -> &mut Execution<'p> {
        if self.stepwise.is_none() {
            self.lean = false;
            let deadline = self.scope.deadline();
            let mut execution = self.policy.resumed_execution(self.started, deadline);
            execution.bypassed = self.bypassed;
            execution.call_guard = self.call_guard.take();
            // With the key a lean attempt may have drawn, so that every retry sends it too.
            execution.scope = std::mem::take(&mut self.scope);
            if self.single {
                execution.single_attempt();
            }
            self.stepwise = Some(Box::new(execution));
        }
        self.stepwise
            .as_deref_mut()
            .expect("the step-wise driver was just created")
    }
}

/// An attempt admitted on the lean path, waiting for its body; see [`Driver::admit_once`].
pub(crate) struct Lean<'p> {
    policy: &'p Policy,
    admitted: Admitted<'p>,
}

/// How an attempt of a call that may retry starts; see [`Driver::attempt`].
enum LeanStart<'p> {
    /// Lean, admitted at its first poll (see [`admit_lean`]).
    Deferred,
    /// Lean, admitted now with these.
    Now(
        Option<crate::breaker::BreakerPermit<'p>>,
        Option<crate::bulkhead::BulkheadPermit<'p>>,
    ),
    /// Refused without waiting.
    Refused(Rejection),
    /// On the step-wise driver.
    Stepwise,
}

/// What a lean attempt holds, or the breaker it asks at its first poll.
enum Admitted<'p> {
    Now(
        Option<crate::breaker::BreakerPermit<'p>>,
        Option<crate::bulkhead::BulkheadPermit<'p>>,
    ),
    Deferred,
}

impl<'p> Lean<'p> {
    /// The attempt: `body`, guarded by what admitted it, in the context of `driver`'s call.
    /// Its outcome is recorded when it ends.
    #[inline]
    pub(crate) fn run<'d, T, E: Any, F: Future<Output = Result<T, E>>>(
        self,
        driver: &'d Driver<'p>,
        body: F,
    ) -> impl Future<Output = Attempt<T, E>> + use<'d, 'p, T, E, F> {
        self.guard(&driver.scope, body)
    }

    /// [`run`](Self::run), as the first attempt of the call `scope`.
    #[inline]
    fn guard<'s, F>(self, scope: &'s CallScope, body: F) -> Guarded<'s, 'p, F> {
        let deadline = scope.deadline();
        match self.admitted {
            Admitted::Now(permit, slot) => {
                Guarded::new(self.policy, (scope, 1), body, permit, slot, deadline)
            }
            Admitted::Deferred => Guarded::deferred(self.policy, scope, body, deadline),
        }
    }
}

pin_project! {
    /// What follows an attempt: known at once on the lean path, or the step-wise driver's
    /// decision (a classification, a retry event, a backoff sleep).
    #[project = NextProj]
    pub(crate) enum NextFuture<R, S> {
        Ready { #[pin] ready: Ready<R> },
        Stepwise { future: Pin<Box<S>> },
    }
}

impl<R, S: Future<Output = R>> Future for NextFuture<R, S> {
    type Output = R;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        match self.project() {
            NextProj::Ready { ready } => ready.poll(cx),
            NextProj::Stepwise { future } => future.as_mut().poll(cx),
        }
    }
}

pin_project! {
    /// One of two futures with the same output.
    #[project = EitherProj]
    pub(crate) enum Either<L, R> {
        Left { #[pin] future: L },
        Right { future: Pin<Box<R>> },
    }
}

impl<O, L: Future<Output = O>, R: Future<Output = O>> Future for Either<L, R> {
    type Output = O;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        match self.project() {
            EitherProj::Left { future } => future.poll(cx),
            EitherProj::Right { future } => future.as_mut().poll(cx),
        }
    }
}

impl std::fmt::Debug for Driver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("policy", &self.policy.name)
            .field("lean", &self.lean)
            .field("deadline", &self.scope.deadline())
            .finish_non_exhaustive()
    }
}
