//! The configurations under test: the trip policies and the rest of a breaker's settings.

use super::*;

/// Thresholds are whole quarters, so the model can compare rates in integers exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Trip {
    Consecutive(u32),
    Count {
        failures: u32,
        within_ms: u64,
    },
    RateOverCalls {
        size: u32,
        quarters: u32,
        minimum: u32,
    },
    RateOverTime {
        span_ms: u64,
        quarters: u32,
        minimum: u32,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) trip: Trip,
    /// Slow-call duration and rate threshold in quarters.
    pub(crate) slow: Option<(u64, u32)>,
    pub(crate) open_wait_ms: u64,
    pub(crate) doubling: bool,
    pub(crate) max_open_wait_ms: u64,
    pub(crate) probes: u32,
    pub(crate) successes: u32,
    pub(crate) max_half_open_ms: Option<u64>,
}

impl Spec {
    pub(crate) fn config(&self) -> BreakerConfig {
        let ms = Duration::from_millis;
        let rate = |quarters: u32| f64::from(quarters) / 4.0;
        let config = match self.trip {
            Trip::Consecutive(n) => BreakerConfig::consecutive_failures(n),
            Trip::Count {
                failures,
                within_ms,
            } => BreakerConfig::failure_count(failures, ms(within_ms)),
            Trip::RateOverCalls {
                size,
                quarters,
                minimum,
            } => BreakerConfig::failure_rate(rate(quarters), SlidingWindow::Calls(size), minimum),
            Trip::RateOverTime {
                span_ms,
                quarters,
                minimum,
            } => BreakerConfig::failure_rate(
                rate(quarters),
                SlidingWindow::Time(ms(span_ms)),
                minimum,
            ),
        };
        let config = match self.slow {
            Some((duration_ms, quarters)) => {
                config.with_slow_calls(ms(duration_ms), rate(quarters))
            }
            None => config,
        };
        config
            .with_open_wait(ms(self.open_wait_ms))
            .with_open_wait_growth(
                if self.doubling { 2.0 } else { 1.0 },
                ms(self.max_open_wait_ms),
            )
            .with_half_open(self.probes, self.successes)
            .with_max_half_open(self.max_half_open_ms.map(ms))
    }
}
