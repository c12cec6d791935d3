//! Hedged attempts: when an attempt has not answered within a delay, another starts beside it,
//! and the first success wins ("The Tail at Scale"; Polly's hedging strategy, tower's `Hedge`).
//!
//! A hedge cuts the tail a few slow replicas or a lost packet add to a call, at the price of
//! extra load; these rules keep that price bounded:
//!
//! * Each hedge is an attempt for the breaker and the bulkhead: it needs a permit and a slot,
//!   and never waits for either. A hedge is never started into an open breaker or a full
//!   bulkhead.
//! * Each hedge spends the retry budget (see [`BudgetConfig`](crate::retry::BudgetConfig)):
//!   when retries and hedges already make up the budget's share of the calls in flight, no
//!   hedge starts, so hedging cannot multiply the load during an outage.
//! * A failed attempt does not start a hedge at once: the attempts still running go on, and
//!   when all have failed the last failure is the group's outcome, for the retry policy to
//!   judge (a retry starts a new group, after its backoff).
//! * The losers are cancelled when the winner returns: their permits free their slots and
//!   record nothing, as for any cancelled call.
//!
//! Hedging needs attempts that can run side by side, so each must own what it uses: the
//! programmatic API builds them with [`Policy::call`](crate::Policy::call)'s closure, and the
//! attribute refuses `hedge` on a function taking `&mut` arguments.

use std::time::Duration;

use crate::error::ConfigError;
use crate::timeout::check_duration;

/// The most hedges one attempt may have.
pub const MAX_HEDGES: u32 = 10;

/// When to start hedges, and how many.
///
/// | field | default |
/// |---|---|
/// | `delay` | (required) |
/// | `hedges` | 1 |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeConfig {
    /// How long an attempt may go unanswered before the next hedge starts; each further hedge
    /// waits as long again.
    pub delay: Duration,
    /// How many hedges may run beside the first attempt.
    pub hedges: u32,
}

impl HedgeConfig {
    /// One hedge after `delay`.
    pub fn new(delay: Duration) -> Self {
        HedgeConfig { delay, hedges: 1 }
    }

    /// Up to `hedges` hedges, each `delay` after the previous one.
    pub fn with_hedges(mut self, hedges: u32) -> Self {
        self.hedges = hedges;
        self
    }

    /// Checks the delay (positive, at most [`MAX_DURATION`](crate::MAX_DURATION)) and the count
    /// (1 to [`MAX_HEDGES`]).
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        check_duration(subject, "hedge", self.delay)?;
        if self.delay.is_zero() {
            return Err(ConfigError::new(
                subject,
                "hedge",
                self.delay,
                "must be greater than zero (a zero delay doubles every call)",
            ));
        }
        if self.hedges == 0 || self.hedges > MAX_HEDGES {
            return Err(ConfigError::new(
                subject,
                "hedges",
                self.hedges,
                "must be from 1 to 10 (resilient::hedge::MAX_HEDGES)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_zero_delay_and_counts_out_of_range() {
        let ms = Duration::from_millis(1);
        assert!(HedgeConfig::new(ms).validate("p").is_ok());
        let zero = HedgeConfig::new(Duration::ZERO).validate("p").unwrap_err();
        assert!(zero.to_string().contains("hedge"), "{zero}");
        let none = HedgeConfig::new(ms)
            .with_hedges(0)
            .validate("p")
            .unwrap_err();
        assert!(none.to_string().contains("hedges"), "{none}");
        assert!(HedgeConfig::new(ms).with_hedges(11).validate("p").is_err());
        let long = HedgeConfig::new(Duration::from_secs(400 * 24 * 3600));
        assert!(long.validate("p").is_err());
    }
}
