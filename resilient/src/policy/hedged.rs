//! One hedged attempt: the first attempt and the hedges started beside it while it is slow (see
//! [`hedge`](crate::hedge) for the rules).

use std::any::Any;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::Sleep;

use crate::breaker::CircuitBreaker;
use crate::event::Event;
use crate::hedge::HedgeConfig;
use crate::retry::CallGuard;

use super::attempt::{Admission, Guarded, admit_now};
use super::{Attempt, Execution};

impl<'p> Execution<'p> {
    /// Runs one attempt built by `make`, and hedges of it built the same way: the first
    /// success is the outcome; when every attempt started has failed, the last failure is.
    pub(crate) async fn hedged_attempt<T, E, F, Fut>(
        &mut self,
        make: &mut F,
        hedge: HedgeConfig,
    ) -> Attempt<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Any,
    {
        if self.bypassed {
            return self.attempt(make()).await;
        }
        let policy = self.policy;
        let keyed = self.keyed.clone();
        let breaker = match &keyed {
            None => policy.breaker.as_ref(),
            Some(Ok(breaker)) => Some(breaker),
            Some(Err(rejection)) => return Attempt::Rejected(rejection.clone()),
        };
        // The first attempt is admitted as any attempt is (it may wait in the bulkhead).
        self.enter_budget();
        let (permit, slot) = match self.admit(breaker, false).await {
            Ok(admitted) => admitted,
            Err(rejection) => return Attempt::Rejected(rejection),
        };
        // Hedges are the same attempt for the call's context: they share its number.
        let execution: &Execution<'p> = self;
        let number = execution.retries + 1;
        let first = Guarded::new(
            policy,
            (&execution.scope, number),
            make(),
            permit,
            slot,
            execution.deadline,
        );
        let mut group = Group {
            execution,
            number,
            breaker,
            running: vec![Box::pin(first)],
            budget_guards: Vec::new(),
            hedges: hedge.hedges,
            hedges_left: hedge.hedges,
            timer: Box::pin(tokio::time::sleep(hedge.delay)),
            delay: hedge.delay,
            last_failure: None,
        };
        poll_fn(|cx| group.poll(cx, make)).await
    }
}

/// The attempts of one hedged attempt in flight.
struct Group<'e, 'p, 'b, Fut, T, E> {
    execution: &'e Execution<'p>,
    /// The attempt's number, which its hedges share.
    number: u32,
    breaker: Option<&'b CircuitBreaker>,
    running: Vec<Pin<Box<Guarded<'e, 'b, Fut>>>>,
    /// Each hedge's place in the retry budget, held until the group ends.
    budget_guards: Vec<CallGuard<'p>>,
    hedges: u32,
    hedges_left: u32,
    timer: Pin<Box<Sleep>>,
    delay: std::time::Duration,
    last_failure: Option<Attempt<T, E>>,
}

impl<'e, 'p: 'b, 'b, Fut, T, E> Group<'e, 'p, 'b, Fut, T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Any,
{
    fn poll<F: FnMut() -> Fut>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        make: &mut F,
    ) -> Poll<Attempt<T, E>> {
        loop {
            let mut index = 0;
            while index < self.running.len() {
                let Poll::Ready(attempt) = self.running[index].as_mut().poll(cx) else {
                    index += 1;
                    continue;
                };
                drop(self.running.swap_remove(index));
                if matches!(attempt, Attempt::Done(Ok(_))) {
                    // The losers drop here: cancelled, their permits record nothing.
                    self.running.clear();
                    return Poll::Ready(attempt);
                }
                self.last_failure = Some(attempt);
            }
            if self.running.is_empty() {
                let failure = self.last_failure.take();
                return Poll::Ready(failure.expect("a group ends with an outcome"));
            }
            if self.hedges_left == 0 || self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if !self.start_hedge(make) {
                self.hedges_left = 0;
                return Poll::Pending;
            }
            // Poll the new hedge (and arm the timer again) before waiting.
            match tokio::time::Instant::now().checked_add(self.delay) {
                Some(next) => self.timer.as_mut().reset(next),
                None => self.hedges_left = 0,
            }
        }
    }

    /// Starts one hedge if the budget, the breaker and the bulkhead allow it, none of them
    /// waiting.
    fn start_hedge<F: FnMut() -> Fut>(&mut self, make: &mut F) -> bool {
        let policy = self.execution.policy;
        let guard = match &policy.budget {
            None => None,
            Some(budget) => match budget.try_retry() {
                Some(guard) => Some(guard),
                None => {
                    tracing::debug!(
                        target: "resilient::hedge",
                        call_site = %policy.name, budget = budget.name(),
                        "no hedge: the retry budget is spent"
                    );
                    return false;
                }
            },
        };
        let (permit, slot) = match admit_now(policy, self.breaker) {
            Admission::Admitted(permit, slot) => (permit, slot),
            Admission::Refused(_) | Admission::MustWait => {
                tracing::debug!(
                    target: "resilient::hedge",
                    call_site = %policy.name,
                    "no hedge: the breaker or the bulkhead refused it"
                );
                return false;
            }
        };
        self.budget_guards.extend(guard);
        self.hedges_left -= 1;
        let execution = self.execution;
        self.running.push(Box::pin(Guarded::new(
            policy,
            (&execution.scope, self.number),
            make(),
            permit,
            slot,
            execution.deadline,
        )));
        policy.stats.record_hedge();
        let hedge = self.hedges - self.hedges_left;
        tracing::debug!(
            target: "resilient::hedge",
            call_site = %policy.name, hedge, delay = ?self.delay,
            "attempt slow, hedge started"
        );
        policy.listeners.emit(|| Event::Hedge {
            call_site: policy.name.clone(),
            hedge,
            delay: self.delay,
        });
        true
    }
}
