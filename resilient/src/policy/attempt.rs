//! One attempt as a single hand-written future: the body, the breaker's permit and the
//! bulkhead's slot it runs under, and its time limit, armed only if the body has to wait.
//!
//! The step-wise driver ([`Execution::attempt`](super::Execution::attempt)) is an `async fn`
//! that nests the body's future in three others (span, panic watch, timeout); each layer
//! stores the body again and moves it on every call. This future holds it once, in place, and
//! does at its first poll what a call ready at once needs: poll, record, release. A call that
//! has to wait arms its timer then, so a ready call never reads the clock for its timeout nor
//! registers a timer. Without a bulkhead, the attempt also asks the breaker for its permit at
//! that first poll and writes it in place: handed through the driver, the freshly written
//! permit was copied three times, each copy a load stalled on the store just before it
//! (about 9 ns of a 85 ns call).
//!
//! Only a thin shell is generic in the body ([`Guarded`], [`StepwiseAttempt`]): it polls the
//! body in place between calls to a [`Guard`] that does everything else, so that the guard is
//! compiled once per crate rather than once per annotated function. Where the crate is
//! optimised, the guard's steps are always inlined into the shell (a call is as fast as before);
//! in a debug build (`debug_assertions`) they are inlined by hint only, because at `opt-level
//! = 0` `#[inline(always)]` would copy them into every annotated function again.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::breaker::{BreakerPermit, CircuitBreaker};
use crate::bulkhead::BulkheadPermit;
use crate::error::{Rejection, TimeoutKind};

use crate::context::{CallScope, Entered};

use super::{Attempt, Execution, Policy};

/// What admitting an attempt without waiting gave.
pub(super) enum Admission<'p> {
    /// The attempt may run, holding these.
    Admitted(Option<BreakerPermit<'p>>, Option<BulkheadPermit<'p>>),
    /// The breaker or a bulkhead that never waits refused it.
    Refused(Rejection),
    /// The bulkhead is full but lets calls wait: only the step-wise driver waits.
    MustWait,
}

/// Admits a lean attempt, or `None` when nothing can make it wait (no bulkhead, or one that
/// never waits) and the breaker, if any, is closed: the attempt then admits itself at its
/// first poll ([`Guarded::deferred`]), writing its permit and slot straight into itself rather
/// than having them handed through the driver. Otherwise as [`admit_now`]: a breaker that is
/// not closed decides before the attempt is built, so that an open one refuses without it.
#[inline(always)]
pub(super) fn admit_lean(policy: &Policy) -> Option<Admission<'_>> {
    let breaker = policy.breaker.as_ref();
    match &policy.bulkhead {
        Some(bulkhead) if bulkhead.lets_calls_wait() => Some(admit_now(policy, breaker)),
        _ if breaker.is_some_and(CircuitBreaker::is_not_closed) => Some(admit_now(policy, breaker)),
        _ => None,
    }
}

/// Admits an attempt through `breaker` and the policy's bulkhead, without waiting. The breaker
/// comes first, as in the step-wise driver; its permit drops unrecorded when the bulkhead
/// refuses, since a full bulkhead is our capacity, not the dependency's failure.
#[inline(always)]
pub(super) fn admit_now<'p>(
    policy: &'p Policy,
    breaker: Option<&'p CircuitBreaker>,
) -> Admission<'p> {
    admit_without_waiting(policy, breaker, true)
}

/// [`admit_now`]; with `may_wait` false, a full bulkhead refuses even if its configuration
/// changed to let calls wait since the attempt was told it would not.
#[inline(always)]
fn admit_without_waiting<'p>(
    policy: &'p Policy,
    breaker: Option<&'p CircuitBreaker>,
    may_wait: bool,
) -> Admission<'p> {
    let permit = match breaker.map(CircuitBreaker::try_acquire) {
        None => None,
        Some(Ok(permit)) => Some(permit),
        Some(Err(rejection)) => return Admission::Refused(rejection),
    };
    let Some(bulkhead) = &policy.bulkhead else {
        return Admission::Admitted(permit, None);
    };
    match bulkhead.try_acquire() {
        Ok(slot) => Admission::Admitted(permit, Some(slot)),
        Err(rejection) => full_bulkhead(bulkhead, rejection, may_wait),
    }
}

#[cold]
fn full_bulkhead<'p>(
    bulkhead: &crate::bulkhead::Bulkhead,
    rejection: Rejection,
    may_wait: bool,
) -> Admission<'p> {
    if may_wait && bulkhead.lets_calls_wait() {
        Admission::MustWait
    } else {
        Admission::Refused(rejection)
    }
}

pin_project! {
    /// The time limit of one attempt: nothing, a limit not yet armed, or an armed timer.
    #[project = TimerProj]
    enum Timer {
        Unlimited,
        Lazy { total: Option<Instant> },
        // Boxed: a timer is armed only for a body that has to wait, which does I/O anyway,
        // while inline it would grow every call's future by the size of a `Sleep`.
        Armed { kind: TimeoutKind, sleep: Pin<Box<Sleep>> },
    }
}

pin_project! {
    /// One admitted attempt in flight: its body, and the [`Guard`] that does everything else.
    /// It records its outcome in the breaker and gives its bulkhead slot back when it ends;
    /// dropped before, it records nothing (a cancellation), unless the body itself panicked.
    ///
    /// Only this shell is generic in the body: its `poll` polls the body between calls to the
    /// guard, which is compiled once, not once per annotated function.
    pub(super) struct Guarded<'s, 'p, F> {
        #[pin]
        body: F,
        #[pin]
        guard: Guard<'s, 'p>,
    }
}

pin_project! {
    /// What an attempt runs under, apart from its body: its permit and slot, its time limit,
    /// and the call's context, which the body sees while it is polled.
    pub(super) struct Guard<'s, 'p> {
        #[pin]
        timer: Timer,
        policy: &'p Policy,
        scope: &'s CallScope,
        // The attempt's number in its call, as `context()` gives it.
        number: u32,
        // Admission was left to the first poll, through the policy's breaker and bulkhead
        // (see `admit_lean`).
        deferred: bool,
        permit: Option<BreakerPermit<'p>>,
        slot: Option<BulkheadPermit<'p>>,
        // When an adaptive bulkhead's slot was granted: its limit learns from the latency.
        slot_granted: Option<Instant>,
    }
}

impl<'s, 'p, F> Guarded<'s, 'p, F> {
    /// `body`, attempt `number` of the call `scope`, under `permit` and `slot`, limited by the
    /// policy's attempt timeout and the call's `total` deadline.
    #[inline]
    pub(super) fn new(
        policy: &'p Policy,
        (scope, number): (&'s CallScope, u32),
        body: F,
        permit: Option<BreakerPermit<'p>>,
        slot: Option<BulkheadPermit<'p>>,
        total: Option<Instant>,
    ) -> Self {
        Guarded {
            body,
            guard: Guard::new(policy, (scope, number), permit, slot, total),
        }
    }

    /// `body`, the first attempt of the call `scope`, admitted at its first poll through the
    /// policy's breaker and bulkhead; see [`admit_lean`].
    #[inline]
    pub(super) fn deferred(
        policy: &'p Policy,
        scope: &'s CallScope,
        body: F,
        total: Option<Instant>,
    ) -> Self {
        let mut guarded = Guarded::new(policy, (scope, 1), body, None, None, total);
        guarded.guard.deferred = true;
        guarded
    }
}

impl<T, E: Any, F: Future<Output = Result<T, E>>> Future for Guarded<'_, '_, F> {
    type Output = Attempt<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt<T, E>> {
        let this = self.project();
        let mut guard = this.guard;
        if let Err(rejection) = guard.as_mut().admit_deferred() {
            return Poll::Ready(Attempt::Rejected(rejection));
        }
        // Left in a block, not passed to `drop`: moved into `drop`, the guard was copied,
        // read back whole from the fields `enter` had just written (a stalled forward).
        let polled = {
            let _entered = guard.as_mut().enter();
            this.body.poll(cx)
        };
        match polled {
            Poll::Ready(result) => {
                guard.finish(&result);
                Poll::Ready(Attempt::Done(result))
            }
            Poll::Pending => guard.pending(cx).map(Attempt::Rejected),
        }
    }
}

impl<'s, 'p> Guard<'s, 'p> {
    #[inline]
    fn new(
        policy: &'p Policy,
        (scope, number): (&'s CallScope, u32),
        permit: Option<BreakerPermit<'p>>,
        slot: Option<BulkheadPermit<'p>>,
        total: Option<Instant>,
    ) -> Self {
        let timer = if policy.timeouts.attempt.is_none() && total.is_none() {
            Timer::Unlimited
        } else {
            Timer::Lazy { total }
        };
        let slot_granted = granted(slot.as_ref());
        Guard {
            timer,
            policy,
            scope,
            number,
            deferred: false,
            permit,
            slot,
            slot_granted,
        }
    }

    /// Admits a deferred attempt at its first poll; later polls find nothing to do.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn admit_deferred(self: Pin<&mut Self>) -> Result<(), Rejection> {
        let this = self.project();
        if !std::mem::take(this.deferred) {
            return Ok(());
        }
        let policy = *this.policy;
        let admission = match (&policy.breaker, &policy.bulkhead) {
            // The common case on its own: a breaker alone needs only its permit, written in
            // place (see `acquire_into`).
            (Some(breaker), None) => return breaker.acquire_into(this.permit),
            (breaker, _) => admit_without_waiting(policy, breaker.as_ref(), false),
        };
        match admission {
            Admission::Admitted(permit, slot) => {
                *this.slot_granted = granted(slot.as_ref());
                *this.permit = permit;
                *this.slot = slot;
                Ok(())
            }
            Admission::Refused(rejection) => Err(rejection),
            Admission::MustWait => unreachable!("admission without waiting never waits"),
        }
    }

    /// Starts one poll of the body: the call's context is current until the returned guard
    /// drops, and a panic out of the body before [`finish`](Self::finish) or
    /// [`pending`](Self::pending) is the permit's call's own failure.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn enter(self: Pin<&mut Self>) -> Entered<'s> {
        let this = self.project();
        if let Some(permit) = this.permit.as_mut() {
            permit.begin_poll();
        }
        this.scope.enter(*this.number)
    }

    /// Ends the attempt with its body's result: records it and gives the slot back. The
    /// permit is consumed by the record, so the poll needs no ending.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn finish<T, E: Any>(self: Pin<&mut Self>, result: &Result<T, E>) {
        let this = self.project();
        if let Some(permit) = this.permit.take() {
            permit.record_result(result);
        }
        give_back(this.slot.take(), *this.slot_granted, result.is_ok());
    }

    /// Ends one poll of a body still pending, and waits on the time limit: the rejection once
    /// it passed.
    #[inline]
    fn pending(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Rejection> {
        let this = self.project();
        if let Some(permit) = this.permit.as_mut() {
            permit.end_poll();
        }
        poll_limit(
            this.timer,
            this.policy,
            this.permit,
            this.slot,
            *this.slot_granted,
            cx,
        )
    }
}

/// Waits on a pending attempt's time limit: the rejection once it passed, with the permit
/// recorded and the slot given back as the kind of limit says.
fn poll_limit<'p>(
    timer: Pin<&mut Timer>,
    policy: &Policy,
    permit: &mut Option<BreakerPermit<'p>>,
    slot: &mut Option<BulkheadPermit<'p>>,
    slot_granted: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<Rejection> {
    let kind = ready!(poll_timer(timer, policy, cx));
    match kind {
        // The dependency's own slowness: an adaptive limit hears of it.
        TimeoutKind::Attempt => give_back(slot.take(), slot_granted, false),
        // The caller's budget ran out: says nothing certain, so no signal.
        _ => *slot = None,
    }
    Poll::Ready(timed_out(policy, permit.take(), kind))
}

/// When `slot` was granted, if its limit is adaptive: the limit learns from the latency.
#[inline]
fn granted(slot: Option<&BulkheadPermit<'_>>) -> Option<Instant> {
    match slot {
        Some(slot) if slot.is_adaptive() => Some(Instant::now()),
        _ => None,
    }
}

/// Gives a bulkhead slot back, telling an adaptive limit how the attempt went. Inlined, so
/// that an attempt without a slot (a breaker alone) pays one test for it, not a call.
#[inline(always)]
fn give_back(slot: Option<BulkheadPermit<'_>>, granted: Option<Instant>, ok: bool) {
    if let Some(slot) = slot {
        give_back_slot(slot, granted, ok);
    }
}

fn give_back_slot(slot: BulkheadPermit<'_>, granted: Option<Instant>, ok: bool) {
    match granted {
        Some(granted) => slot.record(granted.elapsed(), ok),
        None => drop(slot),
    }
}

/// Arms the timer on the body's first `Pending`, then polls it; ready when the limit passed.
fn poll_timer(
    mut timer: Pin<&mut Timer>,
    policy: &Policy,
    cx: &mut Context<'_>,
) -> Poll<TimeoutKind> {
    loop {
        match timer.as_mut().project() {
            TimerProj::Unlimited => return Poll::Pending,
            TimerProj::Lazy { total } => {
                let Some((deadline, kind)) = policy.timeouts.attempt_deadline(*total) else {
                    // An attempt limit too long for the clock: no limit at all.
                    timer.set(Timer::Unlimited);
                    return Poll::Pending;
                };
                timer.set(Timer::Armed {
                    kind,
                    sleep: Box::pin(tokio::time::sleep_until(deadline)),
                });
            }
            TimerProj::Armed { kind, sleep } => {
                ready!(sleep.as_mut().poll(cx));
                return Poll::Ready(*kind);
            }
        }
    }
}

/// The rejection for an attempt cut short by its limit, recorded in the breaker when it was
/// the attempt's own limit. The caller's total budget says nothing certain about the
/// dependency, so then the permit drops unrecorded.
#[cold]
fn timed_out(policy: &Policy, permit: Option<BreakerPermit<'_>>, kind: TimeoutKind) -> Rejection {
    match kind {
        TimeoutKind::Attempt => {
            if let Some(permit) = permit {
                permit.record_timeout();
            }
            let limit = policy.timeouts.attempt.unwrap_or_default();
            tracing::debug!(
                target: "resilient::timeout",
                call_site = %policy.name, ?limit,
                "attempt timed out"
            );
            Rejection::Timeout { kind, limit }
        }
        _ => Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: policy.timeouts.total.unwrap_or_default(),
        },
    }
}

/// What a step-wise attempt got before its body runs; see
/// [`Execution::prepare_attempt`](super::Execution::prepare_attempt).
pub(super) enum Prepared<'a> {
    /// The call site is switched off: the body runs plain.
    Bypassed,
    /// The attempt may run, holding these.
    Admitted(Option<BreakerPermit<'a>>, Option<BulkheadPermit<'a>>),
    /// The breaker, the bulkhead or the deadline refused it.
    Refused(Rejection),
}

pin_project! {
    /// A step-wise attempt: its preparation `P` (admission, which may wait), then its body
    /// guarded as on the lean path, inside the call's span. The body is polled in place by
    /// this small shell, generic in it; the steps around it are compiled once.
    pub(super) struct StepwiseAttempt<'a, 'p, F, P> {
        #[pin]
        body: F,
        #[pin]
        step: Step<'a, 'p, P>,
    }
}

pin_project! {
    /// Where a step-wise attempt is.
    #[project = StepProj]
    enum Step<'a, 'p, P> {
        Preparing { #[pin] prepare: P },
        Running {
            #[pin]
            guard: Guard<'a, 'a>,
            execution: &'a Execution<'p>,
        },
        Bypassed { execution: &'a Execution<'p>, number: u32 },
        Done,
    }
}

impl<'a, 'p: 'a, F, P> StepwiseAttempt<'a, 'p, F, P> {
    /// The attempt of `body` once `prepare` has admitted it.
    pub(super) fn new(prepare: P, body: F) -> Self {
        StepwiseAttempt {
            body,
            step: Step::Preparing { prepare },
        }
    }
}

impl<'a, 'p: 'a, T, E, F, P> Future for StepwiseAttempt<'a, 'p, F, P>
where
    E: Any,
    F: Future<Output = Result<T, E>>,
    P: Future<Output = (Prepared<'a>, &'a Execution<'p>)>,
{
    type Output = Attempt<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt<T, E>> {
        let this = self.project();
        let mut step = this.step;
        if let Err(rejection) = ready!(step.as_mut().prepare(cx)) {
            return Poll::Ready(Attempt::Rejected(rejection));
        }
        let _span = step.as_mut().enter_span();
        let polled = {
            let _entered = step.as_mut().enter();
            this.body.poll(cx)
        };
        step.conclude(polled, cx)
    }
}

impl<'a, 'p: 'a, P> Step<'a, 'p, P>
where
    P: Future<Output = (Prepared<'a>, &'a Execution<'p>)>,
{
    /// Drives the preparation: ready once the body may be polled, or with the rejection that
    /// ends the attempt.
    fn prepare(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        let StepProj::Preparing { prepare } = self.as_mut().project() else {
            return match *self {
                Step::Done => panic!("a step-wise attempt is not polled after it completed"),
                _ => Poll::Ready(Ok(())),
            };
        };
        let (prepared, execution) = ready!(prepare.poll(cx));
        let number = execution.retries + 1;
        let next = match prepared {
            Prepared::Bypassed => Step::Bypassed { execution, number },
            Prepared::Admitted(permit, slot) => Step::Running {
                guard: Guard::new(
                    execution.policy,
                    (&execution.scope, number),
                    permit,
                    slot,
                    execution.deadline,
                ),
                execution,
            },
            Prepared::Refused(rejection) => {
                self.set(Step::Done);
                return Poll::Ready(Err(rejection));
            }
        };
        self.set(next);
        Poll::Ready(Ok(()))
    }

    /// The call's span, entered for one poll of the body and of its time limit.
    fn enter_span(self: Pin<&mut Self>) -> tracing::span::Entered<'a> {
        match self.project() {
            StepProj::Running { execution, .. } | StepProj::Bypassed { execution, .. } => {
                let execution: &'a Execution<'p> = execution;
                execution.span.enter()
            }
            _ => unreachable!("the span is entered once the attempt is prepared"),
        }
    }

    /// See [`Guard::enter`]; a bypassed attempt has only its context.
    fn enter(self: Pin<&mut Self>) -> Entered<'a> {
        match self.project() {
            StepProj::Running { guard, .. } => guard.enter(),
            StepProj::Bypassed { execution, number } => execution.scope.enter(*number),
            _ => unreachable!("the body is polled once the attempt is prepared"),
        }
    }

    /// See [`Guard::finish`] and [`Guard::pending`]; the attempt's trace ends with its outcome.
    fn conclude<T, E: Any>(
        mut self: Pin<&mut Self>,
        polled: Poll<Result<T, E>>,
        cx: &mut Context<'_>,
    ) -> Poll<Attempt<T, E>> {
        let attempt = match self.as_mut().project() {
            StepProj::Running { guard, execution } => {
                let execution: &'a Execution<'p> = execution;
                let attempt = match polled {
                    Poll::Ready(result) => {
                        guard.finish(&result);
                        Attempt::Done(result)
                    }
                    Poll::Pending => Attempt::Rejected(ready!(guard.pending(cx))),
                };
                execution.trace_end(matches!(attempt, Attempt::Done(Ok(_))));
                attempt
            }
            StepProj::Bypassed { .. } => Attempt::Done(ready!(polled)),
            _ => unreachable!("the body is polled once the attempt is prepared"),
        };
        self.set(Step::Done);
        Poll::Ready(attempt)
    }
}

pin_project! {
    /// An attempt as the driver runs it: admitted at once and guarded in place, settled
    /// before it started, or step-wise, with its preparation boxed (so that the admission's
    /// waiting adds nothing to the size of a call that never needs it).
    #[project = AttemptProj]
    pub(super) enum AttemptFuture<'a, 'p, F, T, E, S> {
        Guarded { #[pin] guarded: Guarded<'a, 'p, F> },
        Settled { attempt: Option<Attempt<T, E>> },
        Stepwise { #[pin] attempt: S },
    }
}

impl<T, E: Any, F, S> Future for AttemptFuture<'_, '_, F, T, E, S>
where
    F: Future<Output = Result<T, E>>,
    S: Future<Output = Attempt<T, E>>,
{
    type Output = Attempt<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt<T, E>> {
        match self.project() {
            AttemptProj::Guarded { guarded } => guarded.poll(cx),
            AttemptProj::Settled { attempt } => Poll::Ready(
                attempt
                    .take()
                    .expect("an attempt future is not polled after it completed"),
            ),
            AttemptProj::Stepwise { attempt } => attempt.poll(cx),
        }
    }
}
