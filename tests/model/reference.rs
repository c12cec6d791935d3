//! The reference model: the breaker's documented semantics, written sequentially.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    Closed,
    Open {
        until: u64,
    },
    HalfOpen {
        since: u64,
        probes: u32,
        successes: u32,
    },
    ForcedOpen,
    Disabled,
}

impl Phase {
    pub(crate) fn state(self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            Phase::ForcedOpen => BreakerState::ForcedOpen,
            Phase::Disabled => BreakerState::Disabled,
        }
    }
}

/// What the model admitted a call as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Ticket {
    Closed { period: u64, start: u64 },
    Probe { period: u64, start: u64 },
    Pass,
}

/// Why the model refused a call; `Open` carries the microseconds left, if known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Refusal {
    Open(Option<u64>),
    HalfOpenFull,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum End {
    Success,
    Failure,
    Ignored,
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded {
    pub(crate) at: u64,
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

pub(crate) struct Model {
    pub(crate) spec: Spec,
    /// Microseconds since the breaker was created.
    pub(crate) now: u64,
    pub(crate) period: u64,
    pub(crate) phase: Phase,
    pub(crate) reopenings: u32,
    pub(crate) consecutive: u32,
    /// The outcomes of the current closed period (for count windows, the last N of them).
    pub(crate) recorded: VecDeque<Recorded>,
    /// Whether the last step recorded an outcome in the closed window.
    pub(crate) judged: bool,
}

impl Model {
    pub(crate) fn new(spec: Spec) -> Self {
        Model {
            spec,
            now: 0,
            period: 0,
            phase: Phase::Closed,
            reopenings: 0,
            consecutive: 0,
            recorded: VecDeque::new(),
            judged: false,
        }
    }

    pub(crate) fn enter(&mut self, phase: Phase) {
        self.period += 1;
        self.phase = phase;
        if phase == Phase::Closed {
            self.consecutive = 0;
            self.recorded.clear();
        }
    }

    pub(crate) fn open_wait(&self, reopenings: u32) -> u64 {
        let max = self.spec.max_open_wait_ms * MICROS_PER_MS;
        let mut wait = self.spec.open_wait_ms * MICROS_PER_MS;
        if self.spec.doubling {
            for _ in 0..reopenings {
                wait = wait.saturating_mul(2);
            }
        }
        wait.min(max)
    }

    pub(crate) fn trip(&mut self) {
        self.reopenings = 0;
        let until = self.now + self.open_wait(0);
        self.enter(Phase::Open { until });
    }

    pub(crate) fn reopen(&mut self) {
        self.reopenings += 1;
        let until = self.now + self.open_wait(self.reopenings);
        self.enter(Phase::Open { until });
    }

    pub(crate) fn command(&mut self, phase: Phase) {
        self.reopenings = 0;
        self.enter(phase);
    }

    pub(crate) fn admit(&mut self) -> Result<Ticket, Refusal> {
        loop {
            let (period, start) = (self.period, self.now);
            match self.phase {
                Phase::Closed => return Ok(Ticket::Closed { period, start }),
                Phase::Disabled => return Ok(Ticket::Pass),
                Phase::ForcedOpen => return Err(Refusal::Open(None)),
                Phase::Open { until } if self.now < until => {
                    return Err(Refusal::Open(Some(until - self.now)));
                }
                Phase::Open { .. } => {
                    self.enter(Phase::HalfOpen {
                        since: self.now,
                        probes: 1,
                        successes: 0,
                    });
                    return Ok(Ticket::Probe {
                        period: self.period,
                        start,
                    });
                }
                Phase::HalfOpen {
                    since,
                    probes,
                    successes,
                } => {
                    if let Some(limit) = self.spec.max_half_open_ms
                        && self.now - since >= limit * MICROS_PER_MS
                    {
                        self.reopen();
                        continue;
                    }
                    if probes >= self.spec.probes {
                        return Err(Refusal::HalfOpenFull);
                    }
                    self.phase = Phase::HalfOpen {
                        since,
                        probes: probes + 1,
                        successes,
                    };
                    return Ok(Ticket::Probe { period, start });
                }
            }
        }
    }

    pub(crate) fn is_slow(&self, start: u64) -> bool {
        self.spec
            .slow
            .is_some_and(|(duration_ms, _)| self.now - start >= duration_ms * MICROS_PER_MS)
    }

    pub(crate) fn end(&mut self, ticket: Ticket, end: End) {
        match ticket {
            Ticket::Pass => {}
            Ticket::Closed { period, .. } if period != self.period => {}
            Ticket::Probe { period, .. } if period != self.period => {}
            Ticket::Closed { start, .. } => match end {
                End::Success | End::Failure => {
                    let slow = self.is_slow(start);
                    self.record(end == End::Failure, slow);
                }
                End::Ignored | End::Cancelled => {}
            },
            Ticket::Probe { start, .. } => {
                let Phase::HalfOpen {
                    since,
                    probes,
                    successes,
                } = self.phase
                else {
                    unreachable!("a probe's period is a half-open one");
                };
                match end {
                    End::Failure => self.reopen(),
                    End::Success if self.is_slow(start) => self.reopen(),
                    End::Success if successes + 1 >= self.spec.successes => {
                        self.reopenings = 0;
                        self.enter(Phase::Closed);
                    }
                    End::Success => {
                        self.phase = Phase::HalfOpen {
                            since,
                            probes: probes - 1,
                            successes: successes + 1,
                        }
                    }
                    End::Ignored | End::Cancelled => {
                        self.phase = Phase::HalfOpen {
                            since,
                            probes: probes - 1,
                            successes,
                        }
                    }
                }
            }
        }
    }

    /// Records a closed-period outcome and trips if the policy says so.
    pub(crate) fn record(&mut self, failed: bool, slow: bool) {
        self.judged = true;
        let at = self.now;
        let trips = match self.spec.trip {
            Trip::Consecutive(limit) => {
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                self.consecutive >= limit
            }
            Trip::Count { failures, .. } => {
                if failed {
                    self.recorded.push_back(Recorded { at, failed, slow });
                }
                failed && self.tally().1 >= u64::from(failures)
            }
            Trip::RateOverCalls { size, .. } => {
                self.recorded.push_back(Recorded { at, failed, slow });
                if self.recorded.len() > size as usize {
                    self.recorded.pop_front();
                }
                self.rate_trips()
            }
            Trip::RateOverTime { .. } => {
                self.recorded.push_back(Recorded { at, failed, slow });
                self.rate_trips()
            }
        };
        if trips {
            self.trip();
        }
    }

    pub(crate) fn in_time_window(&self, span_ms: u64, at: u64) -> bool {
        let bucket = span_ms * MICROS_PER_MS / 20;
        self.now / bucket - at / bucket < 20
    }

    /// Calls, failures and slow calls the closed window holds now, as the breaker's metrics
    /// report them (the failure-count policy counts no calls).
    pub(crate) fn tally(&self) -> (u64, u64, u64) {
        let live: Vec<&Recorded> = match self.spec.trip {
            Trip::Consecutive(_) => return (0, 0, 0),
            Trip::RateOverCalls { .. } => self.recorded.iter().collect(),
            Trip::Count { within_ms, .. } => {
                let failures = self
                    .recorded
                    .iter()
                    .filter(|r| self.in_time_window(within_ms, r.at))
                    .count();
                return (0, failures as u64, 0);
            }
            Trip::RateOverTime { span_ms, .. } => self
                .recorded
                .iter()
                .filter(|r| self.in_time_window(span_ms, r.at))
                .collect(),
        };
        let count = |f: fn(&Recorded) -> bool| live.iter().filter(|r| f(r)).count() as u64;
        (live.len() as u64, count(|r| r.failed), count(|r| r.slow))
    }

    pub(crate) fn rate_trips(&self) -> bool {
        let (quarters, minimum) = match self.spec.trip {
            Trip::RateOverCalls {
                quarters, minimum, ..
            }
            | Trip::RateOverTime {
                quarters, minimum, ..
            } => (u64::from(quarters), u64::from(minimum)),
            _ => return false,
        };
        let (calls, failures, slow) = self.tally();
        if calls < minimum {
            return false;
        }
        let failure_rate_trips = failures > 0 && 4 * failures >= quarters * calls;
        let slow_rate_trips = self
            .spec
            .slow
            .is_some_and(|(_, q)| slow > 0 && 4 * slow >= u64::from(q) * calls);
        failure_rate_trips || slow_rate_trips
    }

    pub(crate) fn probes(&self) -> u32 {
        match self.phase {
            Phase::HalfOpen { probes, .. } => probes,
            _ => 0,
        }
    }
}
