//! Adaptive concurrency limits: a bulkhead whose limit follows what the dependency can take,
//! raised while latency holds and lowered when latency rises or calls fail.
//!
//! Two algorithms, after Netflix's concurrency-limits:
//!
//! * **AIMD**: a call slower than a threshold, or a failure, multiplies the limit by a backoff
//!   ratio; a full limit's worth of good calls adds one.
//! * **Vegas** (after TCP Vegas): the lowest latency seen stands for the dependency without a
//!   queue; a call's latency against it estimates how many calls wait in the dependency's
//!   queue, `limit × (1 − lowest / latency)`. The limit grows by `log10(limit)` a full limit's
//!   worth of calls while that queue is shorter than `2·log10(limit)`, shrinks as fast while
//!   it is longer than `4·log10(limit)`, and loses a tenth on a failure. No threshold to
//!   choose; but the lowest latency is kept until the bulkhead is reconfigured, so a
//!   dependency whose unloaded latency rises for good reads as a congested one.
//!
//! The limit moves a little with every call rather than once per round trip, so that it
//! needs no clock; since the calls that report a change were started before it, both
//! algorithms cut the limit at most once per limit's worth of calls (as TCP cuts its window
//! once per round trip), and both grow it only while calls use at least half of it: an idle
//! bulkhead learns nothing about what a busy one could take.

use std::time::Duration;

use crate::error::ConfigError;
use crate::timeout::check_duration;

/// How an adaptive bulkhead moves its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitAlgorithm {
    /// Additive increase, multiplicative decrease.
    Aimd {
        /// A call slower than this counts as a sign of overload, as a failure does.
        slow_call: Duration,
        /// The share of the limit kept after a sign of overload, in percent (1 to 99).
        backoff_percent: u8,
    },
    /// Latency-based, after TCP Vegas: needs no threshold.
    Vegas,
}

impl LimitAlgorithm {
    /// AIMD that keeps 90 % of the limit after a failure or a call slower than `slow_call`.
    pub fn aimd(slow_call: Duration) -> Self {
        LimitAlgorithm::Aimd {
            slow_call,
            backoff_percent: 90,
        }
    }
}

/// The bounds and the algorithm of an adaptive limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveLimit {
    /// The lowest the limit goes.
    pub min: usize,
    /// The highest the limit goes.
    pub max: usize,
    /// How the limit moves.
    pub algorithm: LimitAlgorithm,
}

impl AdaptiveLimit {
    /// Checks the bounds against `initial` and the algorithm's settings.
    pub(crate) fn validate(
        &self,
        subject: &str,
        initial: usize,
        most: usize,
    ) -> Result<(), ConfigError> {
        let bounds = |field, value: usize, reason| {
            Err(ConfigError::new(subject.to_owned(), field, value, reason))
        };
        if self.min == 0 || self.min > initial {
            return bounds(
                "min",
                self.min,
                "must be at least 1 and at most the initial limit (max_concurrent)",
            );
        }
        if self.max < initial || self.max > most {
            return bounds(
                "max",
                self.max,
                "must be at least the initial limit (max_concurrent) and at most 1048576",
            );
        }
        if let LimitAlgorithm::Aimd {
            slow_call,
            backoff_percent,
        } = self.algorithm
        {
            if slow_call.is_zero() {
                return Err(ConfigError::new(
                    subject.to_owned(),
                    "slow_call",
                    "0s",
                    "must be more than zero",
                ));
            }
            check_duration(subject, "slow_call", slow_call)?;
            if !(1..=99).contains(&backoff_percent) {
                return Err(ConfigError::new(
                    subject.to_owned(),
                    "backoff_percent",
                    backoff_percent,
                    "must be between 1 and 99",
                ));
            }
        }
        Ok(())
    }
}

/// An adaptive limit's state: the limit as a real number (so that small steps add up), and
/// what the algorithm remembers.
#[derive(Debug)]
pub(crate) struct Controller {
    settings: AdaptiveLimit,
    limit: f64,
    /// Vegas: the lowest latency seen, in seconds; infinite until the first sample.
    lowest: f64,
    /// Calls to go before the limit may be cut again: those in flight at the last cut
    /// reflect the limit before it.
    calm: f64,
}

impl Controller {
    pub(crate) fn new(settings: AdaptiveLimit, initial: usize) -> Self {
        Controller {
            settings,
            limit: initial as f64,
            lowest: f64::INFINITY,
            calm: 0.0,
        }
    }

    /// Takes one finished call (its latency, whether it succeeded, and the calls in flight
    /// counting it) and answers the new limit, within the bounds.
    pub(crate) fn sample(&mut self, latency: Duration, ok: bool, in_flight: usize) -> usize {
        let busy = in_flight as f64 * 2.0 >= self.limit;
        let next = match self.settings.algorithm {
            LimitAlgorithm::Aimd {
                slow_call,
                backoff_percent,
            } => {
                let good = ok && latency <= slow_call;
                self.aimd(good, backoff_percent, busy)
            }
            LimitAlgorithm::Vegas => self.vegas(latency.as_secs_f64(), ok, busy),
        };
        let (min, max) = (self.settings.min as f64, self.settings.max as f64);
        self.limit = next.clamp(min, max);
        self.calm = (self.calm - 1.0).max(0.0);
        // `limit` lies within [min, max], both usizes: the conversion is exact after `floor`.
        self.limit.floor() as usize
    }

    /// The limit cut to `ratio` of itself, unless it was cut less than a limit's worth of
    /// calls ago.
    fn cut(&mut self, ratio: f64) -> f64 {
        if self.calm > 0.0 {
            return self.limit;
        }
        let limit = self.limit * ratio;
        self.calm = limit + 1.0;
        limit
    }

    fn aimd(&mut self, good: bool, backoff_percent: u8, busy: bool) -> f64 {
        if !good {
            self.cut(f64::from(backoff_percent) / 100.0)
        } else if busy {
            self.limit + 1.0 / self.limit
        } else {
            self.limit
        }
    }

    fn vegas(&mut self, latency: f64, ok: bool, busy: bool) -> f64 {
        let limit = self.limit;
        if !ok {
            return self.cut(0.9);
        }
        if latency > 0.0 {
            self.lowest = self.lowest.min(latency);
        }
        if !busy || !self.lowest.is_finite() || latency <= 0.0 {
            return limit;
        }
        let queue = limit * (1.0 - self.lowest / latency);
        let log = limit.log10().max(1.0);
        if queue < 2.0 * log {
            limit + log / limit
        } else if queue > 4.0 * log {
            limit - log / limit
        } else {
            limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn vegas(min: usize, max: usize, initial: usize) -> Controller {
        let settings = AdaptiveLimit {
            min,
            max,
            algorithm: LimitAlgorithm::Vegas,
        };
        Controller::new(settings, initial)
    }

    #[test]
    fn vegas_grows_while_latency_holds_and_shrinks_when_it_rises() {
        let mut controller = vegas(1, 100, 10);
        let mut limit = 10;
        for _ in 0..10 {
            limit = controller.sample(10 * MS, true, limit);
        }
        assert_eq!(limit, 10, "just under one step (log10 of 10) in ten calls");
        limit = controller.sample(10 * MS, true, limit);
        assert_eq!(limit, 11);
        for _ in 0..12 {
            limit = controller.sample(30 * MS, true, limit);
        }
        assert_eq!(limit, 9, "a queue of two thirds of the limit: {limit}");
    }

    #[test]
    fn an_idle_bulkhead_does_not_grow() {
        let mut controller = vegas(1, 100, 10);
        for _ in 0..10 {
            assert_eq!(controller.sample(10 * MS, true, 4), 10);
        }
    }

    #[test]
    fn failures_shrink_the_limit_down_to_the_minimum_and_no_further() {
        let mut controller = vegas(3, 100, 10);
        let limits: Vec<_> = (0..200)
            .map(|_| controller.sample(10 * MS, false, 10))
            .collect();
        assert_eq!(&limits[..10], [9; 10], "one cut a limit's worth of calls");
        assert_eq!(limits[10], 8);
        assert_eq!(*limits.last().unwrap(), 3);
    }

    #[test]
    fn aimd_adds_one_per_full_limit_and_backs_off_on_a_slow_call() {
        let settings = AdaptiveLimit {
            min: 1,
            max: 100,
            algorithm: LimitAlgorithm::aimd(100 * MS),
        };
        let mut controller = Controller::new(settings, 10);
        let mut limit = 10;
        for _ in 0..10 {
            limit = controller.sample(50 * MS, true, 10);
        }
        assert_eq!(limit, 10, "just under 11: 10 steps of 1/limit each");
        limit = controller.sample(50 * MS, true, 10);
        assert_eq!(limit, 11);
        assert_eq!(controller.sample(150 * MS, true, 11), 9, "× 0.9 of 11.0x");
        assert_eq!(
            controller.sample(150 * MS, true, 11),
            9,
            "not cut twice in a row"
        );
    }
}
