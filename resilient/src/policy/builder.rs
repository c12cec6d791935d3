//! Building a policy: each setting, and the checks `build` makes.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::cache::{Attached, CacheConfig, DEFAULT_CACHE_CAPACITY, check_capacity};
use crate::error::ConfigError;
use crate::hedge::HedgeConfig;
use crate::name::check_field;
use crate::registry::Registry;
use crate::retry::BudgetConfig;
use crate::timeout::TimeoutConfig;

use super::{Policy, PolicyBuilder};

impl PolicyBuilder {
    /// Limit for each attempt; a timed-out attempt counts as a breaker failure and is retried.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeouts.attempt = Some(limit);
        self
    }

    /// Limit for the whole call, attempts and backoff together.
    pub fn total_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.total = Some(limit);
        self
    }

    /// Attempts after the first.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry.max_retries = retries;
        self
    }

    /// The delays between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.retry.backoff = backoff;
        self
    }

    /// The jitter applied to the backoff.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.retry.backoff.jitter = jitter;
        self
    }

    /// The retry budget; `None` turns it off.
    pub fn retry_budget(mut self, budget: Option<BudgetConfig>) -> Self {
        self.retry.budget = budget;
        self
    }

    /// Backs off and retries when the breaker or the bulkhead rejects an attempt, instead of
    /// returning the rejection at once.
    pub fn retry_on_rejection(mut self, retry: bool) -> Self {
        self.retry.retry_on_rejection = retry;
        self
    }

    /// The longest wait a dependency's `Retry-After` (or any
    /// [`Transient::retry_after`](crate::Transient::retry_after) hint) can impose before a
    /// retry; default [`DEFAULT_MAX_RETRY_AFTER`](crate::retry::DEFAULT_MAX_RETRY_AFTER), one
    /// minute. A longer hint waits this long instead. `Duration::ZERO` ignores hints. At most
    /// [`MAX_DURATION`](crate::MAX_DURATION), checked by `build`.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.retry.max_retry_after = cap;
        self
    }

    /// Starts a hedge beside an attempt that has not answered within `delay` (see
    /// [`hedge`](crate::hedge)); one hedge unless [`hedges`](Self::hedges) allows more.
    pub fn hedge(mut self, delay: Duration) -> Self {
        let hedges = self.hedge.map_or(1, |hedge| hedge.hedges);
        self.hedge = Some(HedgeConfig::new(delay).with_hedges(hedges));
        self
    }

    /// How many hedges may run beside an attempt, each `delay` after the previous one; needs
    /// [`hedge`](Self::hedge).
    pub fn hedges(mut self, hedges: u32) -> Self {
        let delay = self.hedge.map_or(Duration::ZERO, |hedge| hedge.delay);
        self.hedge = Some(HedgeConfig::new(delay).with_hedges(hedges));
        self
    }

    /// Records every attempt in the named breaker of the registry.
    pub fn breaker(mut self, name: impl Into<String>) -> Self {
        self.breaker = Some(name.into());
        self
    }

    /// Runs every attempt inside the named bulkhead of the registry.
    pub fn bulkhead(mut self, name: impl Into<String>) -> Self {
        self.bulkhead = Some(name.into());
        self
    }

    /// Keeps the last good value per key and serves it when a call fails or is rejected, while
    /// it is at most `max_age` old (see [`crate::cache`]); positive and at most
    /// [`MAX_DURATION`](crate::MAX_DURATION).
    pub fn cache(mut self, max_age: Duration) -> Self {
        self.cache = Some(max_age);
        self
    }

    /// How many keys the stale cache keeps (from 1 to
    /// [`MAX_CACHE_CAPACITY`](crate::cache::MAX_CACHE_CAPACITY); default
    /// [`DEFAULT_CACHE_CAPACITY`]). Without
    /// [`cache`](Self::cache) there is no cache to size.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// No stale cache (what a configuration file's `cache = "off"` sets).
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Decides, for errors of type `E`, which are worth retrying. Predicates apply in the
    /// order added; an error no predicate speaks for is retried.
    pub fn retry_if<E: Any>(
        mut self,
        transient: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if.push(Arc::new(move |error: &dyn Any| {
            error.downcast_ref::<E>().map(&transient)
        }));
        self
    }

    /// Builds the policy against the process-wide registry.
    pub fn build(self) -> Result<Policy, ConfigError> {
        self.build_in(crate::registry())
    }

    /// Builds the policy against `registry`. Refuses, with a [`ConfigError`], a name that breaks
    /// the naming rule ([`MAX_NAME_LEN`](crate::MAX_NAME_LEN)) and a new policy, breaker or
    /// bulkhead name past the registry's
    /// [implicit limit](crate::Registry::set_implicit_limit).
    pub fn build_in(self, registry: &Registry) -> Result<Policy, ConfigError> {
        let subject = format!("policy {:?}", self.name);
        // One naming rule everywhere: get-or-create would otherwise register a breaker or
        // bulkhead no one can tell apart from a typo, or put a line break in a log line.
        check_field(&subject, "name", &self.name)?;
        for (field, name) in [("breaker", &self.breaker), ("bulkhead", &self.bulkhead)] {
            if let Some(name) = name {
                check_field(&subject, field, name)?;
            }
        }
        self.timeouts.validate(&subject)?;
        if let Some(hedge) = &self.hedge {
            hedge.validate(&subject)?;
        }
        self.retry.validate(&subject)?;
        let cache = self.cache_config(&subject)?;
        // The policy's own name first: refused, it leaves no breaker or bulkhead behind.
        let stats = registry.policy_stats(&self.name)?;
        let breaker = match self.breaker.as_deref() {
            Some(name) => Some(registry.breaker(name)?),
            None => None,
        };
        let bulkhead = match self.bulkhead.as_deref() {
            Some(name) => Some(registry.bulkhead(name)?),
            None => None,
        };
        let budget = match self.retry.budget {
            // Hedges spend the budget as retries do.
            Some(config) if self.retry.max_retries > 0 || self.hedge.is_some() => {
                let dependency = self
                    .breaker
                    .as_deref()
                    .or(self.bulkhead.as_deref())
                    .unwrap_or(&self.name);
                Some(registry.retry_budget(dependency, config)?)
            }
            _ => None,
        };
        let cache = cache.map(|config| Attached {
            config,
            slot: registry.cache_slot(&self.name, &stats),
        });
        let simple = self.timeouts == TimeoutConfig::default()
            && bulkhead.is_none()
            && self.retry.max_retries == 0
            && self.hedge.is_none();
        Ok(Policy {
            name: self.name.into(),
            simple,
            breaker,
            bulkhead,
            retry: self.retry,
            timeouts: self.timeouts,
            budget,
            hedge: self.hedge,
            retry_if: self.retry_if,
            stats,
            listeners: registry.listeners().clone(),
            cache,
        })
    }

    /// The stale cache's limits, checked; `None` without [`cache`](Self::cache).
    fn cache_config(&self, subject: &str) -> Result<Option<CacheConfig>, ConfigError> {
        if let Some(capacity) = self.cache_capacity {
            check_capacity(subject, capacity)?;
        }
        let Some(max_age) = self.cache else {
            return Ok(None);
        };
        let config = CacheConfig::new(max_age)
            .with_capacity(self.cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY));
        config.validate(subject)?;
        Ok(Some(config))
    }
}
