//! What every key of a family shares: one breaker configuration and the bounds on memory.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::error::ConfigError;

/// How many keys a family holds unless [`FamilyConfig::with_max_keys`] says otherwise. A
/// per-key breaker with the default configuration retains about 1.1 KiB (BENCHMARKS.md, group
/// 11), so a full family of the default size costs about 11 MiB.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// How long a key may go unused before it is dropped, unless
/// [`FamilyConfig::with_idle_after`] says otherwise.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(600);

/// The configuration of a [`BreakerFamily`](super::BreakerFamily): each key's breaker, and how
/// many keys, for how long, the family keeps.
#[derive(Debug, Clone, Default)]
pub struct FamilyConfig {
    breaker: BreakerConfig,
    max_keys: Option<usize>,
    idle_after: Option<Duration>,
}

impl FamilyConfig {
    /// Every key gets a breaker configured with `breaker`.
    pub fn new(breaker: BreakerConfig) -> Self {
        FamilyConfig {
            breaker,
            max_keys: None,
            idle_after: None,
        }
    }

    /// At most `max_keys` keys at once (at least 1; [`DEFAULT_MAX_KEYS`] by default).
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// A key unused for `idle` is dropped ([`DEFAULT_IDLE_AFTER`] by default); a key whose
    /// breaker is still waiting out its open wait is kept however idle it is.
    pub fn with_idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = Some(idle);
        self
    }

    /// Each key's breaker configuration.
    pub fn breaker(&self) -> &BreakerConfig {
        &self.breaker
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }

    /// How long a key may go unused before it is dropped.
    pub fn idle_after(&self) -> Duration {
        self.idle_after.unwrap_or(DEFAULT_IDLE_AFTER)
    }

    /// Refuses a zero key limit, a zero idle time and an invalid breaker configuration.
    pub fn validate(&self, family: &str) -> Result<(), ConfigError> {
        let subject = format!("breaker family {family:?}");
        if self.max_keys() == 0 {
            return Err(ConfigError::new(
                subject,
                "max_keys",
                0,
                "a family must hold at least one key",
            ));
        }
        if self.idle_after().is_zero() {
            return Err(ConfigError::new(
                subject,
                "idle_after",
                Duration::ZERO,
                "a key must be kept for some time after its last use",
            ));
        }
        self.breaker.validate(family)
    }
}
