//! Time limits: one per attempt, one for the whole call (attempts, bulkhead waits and backoff
//! sleeps together). Both run on tokio's clock, so `tokio::time::pause()` drives them in tests.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ConfigError, TimeoutKind};

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
    pub(crate) fn total_deadline(&self) -> Option<Instant> {
        self.total.map(|total| Instant::now() + total)
    }

    /// The deadline of one attempt starting now and which limit it is, given the call's.
    pub(crate) fn attempt_deadline(
        &self,
        total: Option<Instant>,
    ) -> Option<(Instant, TimeoutKind)> {
        let attempt = self.attempt.map(|limit| Instant::now() + limit);
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
