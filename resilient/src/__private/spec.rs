//! One call site's settings as its attribute wrote them, and the policy they make (with a
//! configuration file's on top).

use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::policy::{Policy, PolicyBuilder};

/// The backoff a call site gets when it sets `backoff` but not `max_backoff`, and the base when
/// it sets `max_backoff` or `jitter` alone. The macro checks `backoff ≤ max_backoff` against
/// these same numbers at compile time; a test below keeps them equal to [`Backoff::default`].
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
/// See [`DEFAULT_BACKOFF`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
pub(super) const BACKOFF_MULTIPLIER: f64 = 2.0;

/// One call site's settings, as written in its attribute and checked at compile time.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The call site's name: the `name` key, or the module path and function name, with
    /// [`SELF_PLACEHOLDER`](super::SELF_PLACEHOLDER) before a method's name (see [`CallSite::name_after`](super::CallSite::name_after)).
    pub name: &'static str,
    /// The breaker's name in the global registry.
    pub breaker: Option<&'static str>,
    /// The bulkhead's name in the global registry.
    pub bulkhead: Option<&'static str>,
    /// Limit for each attempt.
    pub timeout: Option<Duration>,
    /// Limit for the whole call.
    pub total_timeout: Option<Duration>,
    /// Attempts after the first.
    pub retries: u32,
    /// The first backoff delay.
    pub backoff: Option<Duration>,
    /// The largest backoff delay.
    pub max_backoff: Option<Duration>,
    /// The backoff's jitter.
    pub jitter: Option<Jitter>,
    /// The delay before a hedge starts beside a slow attempt.
    pub hedge: Option<Duration>,
    /// How many hedges, with `hedge`.
    pub hedges: u32,
    /// How old a cached value may be and still answer a failed call.
    pub cache: Option<Duration>,
    /// How many keys the cache keeps, with `cache`.
    pub cache_capacity: Option<usize>,
}

impl Spec {
    /// The policy this spec describes, for the call site named `name` (see [`CallSite::name`]).
    pub(super) fn builder(&self, name: &'static str) -> PolicyBuilder {
        let mut builder = Policy::builder(name).retries(self.retries);
        if let Some(limit) = self.timeout {
            builder = builder.timeout(limit);
        }
        if let Some(limit) = self.total_timeout {
            builder = builder.total_timeout(limit);
        }
        if self.backoff.is_some() || self.max_backoff.is_some() || self.jitter.is_some() {
            let backoff = Backoff::exponential(
                self.backoff.unwrap_or(DEFAULT_BACKOFF),
                BACKOFF_MULTIPLIER,
                self.max_backoff.unwrap_or(DEFAULT_MAX_BACKOFF),
            );
            builder = builder.backoff(backoff.with_jitter(self.jitter.unwrap_or_default()));
        }
        if let Some(delay) = self.hedge {
            builder = builder.hedge(delay).hedges(self.hedges);
        }
        if let Some(max_age) = self.cache {
            builder = builder.cache(max_age);
        }
        if let Some(capacity) = self.cache_capacity {
            builder = builder.cache_capacity(capacity);
        }
        if let Some(name) = self.breaker {
            builder = builder.breaker(name);
        }
        if let Some(name) = self.bulkhead {
            builder = builder.bulkhead(name);
        }
        builder
    }
}

#[cfg(feature = "serde")]
impl Spec {
    /// The attribute's settings with a configuration file's on top.
    pub(super) fn with_overrides(
        &self,
        name: &'static str,
        overrides: &crate::config::CallSiteOverrides,
    ) -> PolicyBuilder {
        let mut builder = self.builder(name);
        match overrides.retries {
            // Without `retries` in its attribute, the function moves its arguments into its one
            // attempt: it cannot run the body again, whatever the file says.
            Some(retries) if retries > 0 && self.retries == 0 => tracing::warn!(
                target: "resilient::registry",
                call_site = name,
                retries,
                "a configuration file gives this call site retries, but its attribute has none: add `retries` to the attribute to allow them"
            ),
            Some(retries) => builder = builder.retries(retries),
            None => {}
        }
        if let Some(limit) = overrides.timeout {
            builder = builder.timeout(limit);
        }
        if let Some(limit) = overrides.total_timeout {
            builder = builder.total_timeout(limit);
        }
        if overrides.backoff.is_some()
            || overrides.max_backoff.is_some()
            || overrides.jitter.is_some()
        {
            let backoff = Backoff::exponential(
                overrides
                    .backoff
                    .or(self.backoff)
                    .unwrap_or(DEFAULT_BACKOFF),
                BACKOFF_MULTIPLIER,
                overrides
                    .max_backoff
                    .or(self.max_backoff)
                    .unwrap_or(DEFAULT_MAX_BACKOFF),
            );
            let jitter = overrides.jitter.or(self.jitter).unwrap_or_default();
            builder = builder.backoff(backoff.with_jitter(jitter));
        }
        match (self.hedge, overrides.hedge.or(self.hedge)) {
            // Only a function written for hedging builds attempts that can run side by side.
            (None, Some(_)) => tracing::warn!(
                target: "resilient::registry",
                call_site = name,
                "a configuration file gives this call site `hedge`, but its attribute has none: add `hedge` to the attribute to allow hedges"
            ),
            (Some(_), Some(delay)) => {
                builder = builder
                    .hedge(delay)
                    .hedges(overrides.hedges.unwrap_or(self.hedges));
            }
            (_, None) => {}
        }
        if let Some(name) = &overrides.breaker {
            builder = builder.breaker(name.clone());
        }
        if let Some(name) = &overrides.bulkhead {
            builder = builder.bulkhead(name.clone());
        }
        match (self.cache, overrides.cache) {
            // Only a function whose attribute caches stores and serves values.
            (None, Some(Some(_))) => tracing::warn!(
                target: "resilient::registry",
                call_site = name,
                "a configuration file gives this call site `cache`, but its attribute has none: add `cache` to the attribute to cache its answers"
            ),
            (Some(_), Some(Some(max_age))) => builder = builder.cache(max_age),
            (_, Some(None)) => builder = builder.no_cache(),
            (_, None) => {}
        }
        if let Some(capacity) = overrides.cache_capacity {
            builder = builder.cache_capacity(capacity);
        }
        builder
    }
}
