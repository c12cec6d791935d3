//! Driving the breaker and the model through the same operations, compared after every step.

use super::*;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A call that ends at once.
    Call(End),
    /// A call that ends after this many milliseconds.
    SlowCall(End, u64),
    /// A call admitted now and ended by a later `End` (at most six held at once).
    Begin,
    /// Ends the held call at this index, modulo how many are held.
    End(usize, End),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

pub(crate) struct Run<'a> {
    pub(crate) breaker: &'a CircuitBreaker,
    pub(crate) model: Model,
    pub(crate) step: usize,
}

impl<'a> Run<'a> {
    pub(crate) fn admit(&mut self) -> Result<Option<(BreakerPermit<'a>, Ticket)>, TestCaseError> {
        let real = self.breaker.try_acquire();
        let expected = self.model.admit();
        let step = self.step;
        match (real, expected) {
            (Ok(permit), Ok(ticket)) => {
                prop_assert_eq!(
                    permit.is_probe(),
                    matches!(ticket, Ticket::Probe { .. }),
                    "step {}: {:?}",
                    step,
                    ticket
                );
                Ok(Some((permit, ticket)))
            }
            (Err(rejection), Err(refusal)) => {
                let actual = match rejection {
                    Rejection::CircuitOpen { retry_after, .. } => {
                        Refusal::Open(retry_after.map(|d| d.as_micros() as u64))
                    }
                    Rejection::HalfOpenFull { .. } => Refusal::HalfOpenFull,
                    other => panic!("a breaker does not answer {other:?}"),
                };
                prop_assert_eq!(actual, refusal, "step {}", step);
                Ok(None)
            }
            (real, expected) => Err(TestCaseError::fail(format!(
                "step {step}: the breaker answered {real:?}, the model {expected:?}"
            ))),
        }
    }

    pub(crate) fn end(&mut self, (permit, ticket): (BreakerPermit<'a>, Ticket), end: End) {
        match end {
            End::Success => permit.record_success(),
            End::Failure => permit.record_failure(),
            End::Ignored => permit.record_ignored(),
            End::Cancelled => drop(permit),
        }
        self.model.end(ticket, end);
    }

    async fn advance(&mut self, ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
        self.model.now += ms * MICROS_PER_MS;
    }

    pub(crate) fn check(&self, op: &Op) -> Result<(), TestCaseError> {
        let (step, model) = (self.step, &self.model);
        let metrics = self.breaker.metrics();
        prop_assert_eq!(
            metrics.state,
            model.phase.state(),
            "step {} ({:?}): model {:?}",
            step,
            op,
            model.phase
        );
        prop_assert_eq!(
            metrics.half_open_probes_in_flight,
            model.probes(),
            "step {} ({:?})",
            step,
            op
        );
        if model.phase == Phase::Closed {
            let window = (
                metrics.calls_in_window,
                metrics.failures_in_window,
                metrics.slow_calls_in_window,
            );
            prop_assert_eq!(window, model.tally(), "step {} ({:?})", step, op);
            if model.judged {
                self.check_no_condemned_window(&metrics)?;
            }
        }
        if let Phase::Open { until } = model.phase {
            let left = Duration::from_micros(until.saturating_sub(model.now));
            prop_assert_eq!(metrics.retry_after, Some(left), "step {} ({:?})", step, op);
        }
        Ok(())
    }
}

impl Run<'_> {
    /// The invariant of the trip rule, on the breaker's own snapshot: once a record returns, a
    /// closed breaker whose window holds `minimum_calls` has each rate below its threshold.
    pub(crate) fn check_no_condemned_window(
        &self,
        metrics: &resilient::breaker::BreakerMetrics,
    ) -> Result<(), TestCaseError> {
        let (quarters, minimum) = match self.model.spec.trip {
            Trip::RateOverCalls {
                quarters, minimum, ..
            }
            | Trip::RateOverTime {
                quarters, minimum, ..
            } => (quarters, minimum),
            _ => return Ok(()),
        };
        if metrics.calls_in_window < u64::from(minimum) {
            return Ok(());
        }
        let calls = metrics.calls_in_window;
        prop_assert!(
            4 * metrics.failures_in_window < u64::from(quarters) * calls,
            "step {}: closed with {} failures of {} calls, threshold {}/4",
            self.step,
            metrics.failures_in_window,
            calls,
            quarters
        );
        if let Some((_, slow_quarters)) = self.model.spec.slow {
            prop_assert!(
                4 * metrics.slow_calls_in_window < u64::from(slow_quarters) * calls,
                "step {}: closed with {} slow calls of {} calls, threshold {}/4",
                self.step,
                metrics.slow_calls_in_window,
                calls,
                slow_quarters
            );
        }
        Ok(())
    }
}

pub(crate) fn run(spec: Spec, ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let registry = Registry::new();
        let breaker = registry
            .declare_breaker("model", spec.config())
            .map_err(|err| TestCaseError::fail(format!("{spec:?} is invalid: {err}")))?;
        let mut run = Run {
            breaker: &breaker,
            model: Model::new(spec),
            step: 0,
        };
        let mut held = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            run.step = step;
            run.model.judged = false;
            match *op {
                Op::Call(end) => {
                    if let Some(call) = run.admit()? {
                        run.end(call, end);
                    }
                }
                Op::SlowCall(end, ms) => {
                    let call = run.admit()?;
                    run.advance(ms).await;
                    if let Some(call) = call {
                        run.end(call, end);
                    }
                }
                Op::Begin => {
                    if held.len() < 6
                        && let Some(call) = run.admit()?
                    {
                        held.push(call);
                    }
                }
                Op::End(index, end) => {
                    if !held.is_empty() {
                        let call = held.remove(index % held.len());
                        run.end(call, end);
                    }
                }
                Op::Advance(ms) => run.advance(ms).await,
                Op::ForceOpen => {
                    breaker.force_open();
                    run.model.command(Phase::ForcedOpen);
                }
                Op::Disable => {
                    breaker.disable();
                    run.model.command(Phase::Disabled);
                }
                Op::Reset => {
                    breaker.reset();
                    run.model.command(Phase::Closed);
                }
            }
            run.check(op)?;
        }
        // Whatever is still in flight is cancelled: nothing may stay wedged.
        for call in held.drain(..) {
            run.end(call, End::Cancelled);
        }
        run.check(&Op::End(0, End::Cancelled))?;
        Ok(())
    })
}
