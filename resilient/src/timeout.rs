//! Time limits: one per attempt, one for the whole call (attempts, bulkhead waits and backoff
//! sleeps together). Both run on tokio's clock, so `tokio::time::pause()` drives them in tests.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ConfigError, TimeoutKind};

/// The longest duration any setting accepts: 365 days.
///
/// Every duration of a policy, breaker, bulkhead or retry (from the attribute, a builder, a
/// configuration file or the environment) is refused above this limit with a [`ConfigError`]
/// naming the field. Nothing a dependency call needs comes close to a year, and the limit keeps
/// every `Instant + Duration` the library computes far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Refuses a duration above [`MAX_DURATION`], naming `field` of `subject`.
pub(crate) fn check_duration(
    subject: &str,
    field: &'static str,
    value: Duration,
) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::new(
            subject,
            field,
            value,
            "must be at most 365 days (resilient::MAX_DURATION)",
        ));
    }
    Ok(())
}

/// `now + offset`, or `None` when the sum would not fit in an `Instant`: a deadline that far
/// away is no deadline at all.
pub(crate) fn deadline_after(offset: Duration) -> Option<Instant> {
    Instant::now().checked_add(offset)
}

/// The two time limits of a policy. Either may be absent; an absent limit costs nothing (no
/// timer, no clock read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutConfig {
    /// Limit for each attempt. A timed-out attempt counts as a failure of the dependency.
    pub attempt: Option<Duration>,
    /// Limit for the whole call.
    pub total: Option<Duration>,
}

impl TimeoutConfig {
    /// Checks that both limits are positive and the attempt limit fits in the total.
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        if let Some(attempt) = self.attempt {
            check_duration(subject, "timeout", attempt)?;
        }
        if let Some(total) = self.total {
            check_duration(subject, "total_timeout", total)?;
        }
        if let Some(attempt) = self.attempt
            && attempt.is_zero()
        {
            return Err(ConfigError::new(
                subject,
                "timeout",
                attempt,
                "must be greater than zero",
            ));
        }
        if let Some(total) = self.total
            && total.is_zero()
        {
            return Err(ConfigError::new(
                subject,
                "total_timeout",
                total,
                "must be greater than zero",
            ));
        }
        if let (Some(attempt), Some(total)) = (self.attempt, self.total)
            && attempt > total
        {
            return Err(ConfigError::new(
                subject,
                "timeout",
                attempt,
                "must not exceed total_timeout: no attempt could use it all",
            ));
        }
        Ok(())
    }

    /// The deadline of the whole call, if it has one, for a call starting now.
    #[inline]
    pub(crate) fn total_deadline(&self) -> Option<Instant> {
        self.total.and_then(deadline_after)
    }

    /// The deadline of one attempt starting now and which limit it is, given the call's.
    pub(crate) fn attempt_deadline(
        &self,
        total: Option<Instant>,
    ) -> Option<(Instant, TimeoutKind)> {
        let attempt = self.attempt.and_then(deadline_after);
        match (attempt, total) {
            (Some(attempt), Some(total)) if total < attempt => Some((total, TimeoutKind::Total)),
            (Some(attempt), _) => Some((attempt, TimeoutKind::Attempt)),
            (None, Some(total)) => Some((total, TimeoutKind::Total)),
            (None, None) => None,
        }
    }
}

/// Runs `future` until `deadline`; `None` if the deadline came first (the future is dropped,
/// which cancels it). Without a deadline this is the plain future: no timer is set.
pub(crate) async fn run_until<F: Future>(
    deadline: Option<Instant>,
    future: F,
) -> Option<F::Output> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_longer_than_the_total_is_refused() {
        let config = TimeoutConfig {
            attempt: Some(Duration::from_secs(3)),
            total: Some(Duration::from_secs(2)),
        };
        let err = config.validate("policy \"price\"").unwrap_err();
        assert_eq!(err.field(), "timeout");
        assert!(err.to_string().contains("total_timeout"));
    }

    #[test]
    fn zero_limits_are_refused() {
        let attempt = TimeoutConfig {
            attempt: Some(Duration::ZERO),
            total: None,
        };
        assert_eq!(attempt.validate("p").unwrap_err().field(), "timeout");
        let total = TimeoutConfig {
            attempt: None,
            total: Some(Duration::ZERO),
        };
        assert_eq!(total.validate("p").unwrap_err().field(), "total_timeout");
    }

    #[test]
    fn durations_past_the_limit_are_refused_by_name() {
        let too_long = MAX_DURATION + Duration::from_nanos(1);
        let attempt = TimeoutConfig {
            attempt: Some(too_long),
            total: None,
        };
        let err = attempt.validate("p").unwrap_err();
        assert_eq!(err.field(), "timeout");
        assert!(err.to_string().contains("365 days"), "{err}");
        let total = TimeoutConfig {
            attempt: None,
            total: Some(Duration::MAX),
        };
        assert_eq!(total.validate("p").unwrap_err().field(), "total_timeout");
        let at_limit = TimeoutConfig {
            attempt: Some(MAX_DURATION),
            total: Some(MAX_DURATION),
        };
        assert!(at_limit.validate("p").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrepresentable_deadline_is_no_deadline() {
        // Validation refuses such limits; the arithmetic still must not panic if one slips by.
        let config = TimeoutConfig {
            attempt: Some(Duration::MAX),
            total: Some(Duration::MAX),
        };
        assert_eq!(config.total_deadline(), None);
        assert_eq!(config.attempt_deadline(None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_earlier_deadline_wins() {
        let config = TimeoutConfig {
            attempt: Some(Duration::from_secs(2)),
            total: Some(Duration::from_secs(5)),
        };
        let total = config.total_deadline();
        let (first, kind) = config.attempt_deadline(total).unwrap();
        assert_eq!(kind, TimeoutKind::Attempt);
        assert_eq!(first, Instant::now() + Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(4)).await;
        let (second, kind) = config.attempt_deadline(total).unwrap();
        assert_eq!(kind, TimeoutKind::Total);
        assert_eq!(Some(second), total);
    }
}
