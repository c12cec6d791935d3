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

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::breaker::{BreakerPermit, CircuitBreaker};
use crate::bulkhead::BulkheadPermit;
use crate::error::{Rejection, TimeoutKind};

use crate::context::WithContext;

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
/// never waits): the attempt then admits itself at its first poll ([`Guarded::deferred`]),
/// writing its permit and slot straight into itself rather than having them handed through
/// the driver. Otherwise as [`admit_now`].
#[inline(always)]
pub(super) fn admit_lean(policy: &Policy) -> Option<Admission<'_>> {
    match &policy.bulkhead {
        Some(bulkhead) if bulkhead.lets_calls_wait() => {
            Some(admit_now(policy, policy.breaker.as_ref()))
        }
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
    /// One admitted attempt in flight. It records its outcome in the breaker and gives its
    /// bulkhead slot back when it ends; dropped before, it records nothing (a cancellation),
    /// unless the body itself panicked.
    pub(super) struct Guarded<'p, F> {
        #[pin]
        body: F,
        #[pin]
        timer: Timer,
        policy: &'p Policy,
        // Admission was left to the first poll, through the policy's breaker and bulkhead
        // (see `admit_lean`).
        deferred: bool,
        permit: Option<BreakerPermit<'p>>,
        slot: Option<BulkheadPermit<'p>>,
        // When an adaptive bulkhead's slot was granted: its limit learns from the latency.
        slot_granted: Option<Instant>,
    }
}

impl<'p, F> Guarded<'p, F> {
    /// `body` under `permit` and `slot`, limited by the policy's attempt timeout and the call's
    /// `total` deadline.
    #[inline]
    pub(super) fn new(
        policy: &'p Policy,
        body: F,
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
        Guarded {
            body,
            timer,
            policy,
            deferred: false,
            permit,
            slot,
            slot_granted,
        }
    }

    /// `body`, admitted at its first poll through the policy's breaker and bulkhead; see
    /// [`admit_lean`].
    #[inline]
    pub(super) fn deferred(policy: &'p Policy, body: F, total: Option<Instant>) -> Self {
        let mut guarded = Guarded::new(policy, body, None, None, total);
        guarded.deferred = true;
        guarded
    }
}

impl<T, E: Any, F: Future<Output = Result<T, E>>> Future for Guarded<'_, F> {
    type Output = Attempt<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt<T, E>> {
        let mut this = self.project();
        if std::mem::take(this.deferred) {
            let policy = *this.policy;
            let admission = match (&policy.breaker, &policy.bulkhead) {
                // The common case on its own: a breaker alone needs only its permit.
                (Some(breaker), None) => match breaker.try_acquire() {
                    Ok(permit) => Admission::Admitted(Some(permit), None),
                    Err(rejection) => Admission::Refused(rejection),
                },
                (breaker, _) => admit_without_waiting(policy, breaker.as_ref(), false),
            };
            match admission {
                Admission::Admitted(permit, slot) => {
                    *this.slot_granted = granted(slot.as_ref());
                    *this.permit = permit;
                    *this.slot = slot;
                }
                Admission::Refused(rejection) => {
                    return Poll::Ready(Attempt::Rejected(rejection));
                }
                Admission::MustWait => unreachable!("admission without waiting never waits"),
            }
        }
        let body = this.body;
        // Polled as the permit's call, so that only a panic out of the body is its failure.
        let polled = match this.permit.as_mut() {
            Some(permit) => permit.poll_call(|| body.poll(cx)),
            None => body.poll(cx),
        };
        if let Poll::Ready(result) = polled {
            if let Some(permit) = this.permit.take() {
                permit.record_result(&result);
            }
            give_back(this.slot.take(), *this.slot_granted, result.is_ok());
            return Poll::Ready(Attempt::Done(result));
        }
        let kind = ready!(poll_timer(this.timer.as_mut(), this.policy, cx));
        match kind {
            // The dependency's own slowness: an adaptive limit hears of it.
            TimeoutKind::Attempt => give_back(this.slot.take(), *this.slot_granted, false),
            // The caller's budget ran out: says nothing certain, so no signal.
            _ => *this.slot = None,
        }
        Poll::Ready(Attempt::Rejected(timed_out(
            this.policy,
            this.permit.take(),
            kind,
        )))
    }
}

/// When `slot` was granted, if its limit is adaptive: the limit learns from the latency.
#[inline]
fn granted(slot: Option<&BulkheadPermit<'_>>) -> Option<Instant> {
    match slot {
        Some(slot) if slot.is_adaptive() => Some(Instant::now()),
        _ => None,
    }
}

/// Gives a bulkhead slot back, telling an adaptive limit how the attempt went.
#[inline]
fn give_back(slot: Option<BulkheadPermit<'_>>, granted: Option<Instant>, ok: bool) {
    match (slot, granted) {
        (Some(slot), Some(granted)) => slot.record(granted.elapsed(), ok),
        (slot, _) => drop(slot),
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
    /// guarded as on the lean path, inside the call's span. Only the body's type makes it
    /// generic, and what is generic is this small future: the preparation is compiled once.
    #[project = StepwiseProj]
    pub(super) enum StepwiseAttempt<'a, 'p, F, P> {
        Preparing { #[pin] prepare: P, body: Option<F> },
        Running {
            #[pin]
            guarded: Guarded<'a, WithContext<'a, F>>,
            execution: &'a Execution<'p>,
        },
        Bypassed {
            #[pin]
            body: WithContext<'a, F>,
            execution: &'a Execution<'p>,
        },
        Done,
    }
}

impl<'a, 'p: 'a, F, P> StepwiseAttempt<'a, 'p, F, P> {
    /// The attempt of `body` once `prepare` has admitted it.
    pub(super) fn new(prepare: P, body: F) -> Self {
        StepwiseAttempt::Preparing {
            prepare,
            body: Some(body),
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt<T, E>> {
        loop {
            match self.as_mut().project() {
                StepwiseProj::Preparing { prepare, body } => {
                    let (prepared, execution) = ready!(prepare.poll(cx));
                    let body = body
                        .take()
                        .expect("a step-wise attempt's body is taken once");
                    let number = execution.retries + 1;
                    let body = execution.scope.attempt(number, body);
                    let next = match prepared {
                        Prepared::Bypassed => StepwiseAttempt::Bypassed { body, execution },
                        Prepared::Admitted(permit, slot) => StepwiseAttempt::Running {
                            guarded: Guarded::new(
                                execution.policy,
                                body,
                                permit,
                                slot,
                                execution.deadline,
                            ),
                            execution,
                        },
                        Prepared::Refused(rejection) => {
                            self.set(StepwiseAttempt::Done);
                            return Poll::Ready(Attempt::Rejected(rejection));
                        }
                    };
                    self.set(next);
                }
                StepwiseProj::Running { guarded, execution } => {
                    let execution = *execution;
                    let attempt = {
                        let _entered = execution.span.enter();
                        ready!(guarded.poll(cx))
                    };
                    self.set(StepwiseAttempt::Done);
                    execution.trace_end(matches!(attempt, Attempt::Done(Ok(_))));
                    return Poll::Ready(attempt);
                }
                StepwiseProj::Bypassed { body, execution } => {
                    let result = {
                        let _entered = execution.span.enter();
                        ready!(body.poll(cx))
                    };
                    self.set(StepwiseAttempt::Done);
                    return Poll::Ready(Attempt::Done(result));
                }
                StepwiseProj::Done => {
                    panic!("a step-wise attempt is not polled after it completed")
                }
            }
        }
    }
}

pin_project! {
    /// An attempt as the driver runs it: admitted at once and guarded in place, settled
    /// before it started, or step-wise, with its preparation boxed (so that the admission's
    /// waiting adds nothing to the size of a call that never needs it).
    #[project = AttemptProj]
    pub(super) enum AttemptFuture<'a, 'p, F, T, E, P> {
        Guarded { #[pin] guarded: Guarded<'a, WithContext<'a, F>> },
        Settled { attempt: Option<Attempt<T, E>> },
        Stepwise { #[pin] attempt: StepwiseAttempt<'a, 'p, F, Pin<Box<P>>> },
    }
}

impl<'a, 'p: 'a, T, E: Any, F, P> Future for AttemptFuture<'a, 'p, F, T, E, P>
where
    F: Future<Output = Result<T, E>>,
    P: Future<Output = (Prepared<'a>, &'a Execution<'p>)>,
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
