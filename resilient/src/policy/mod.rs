//! A policy puts the pieces together, in one fixed order (outer to inner):
//!
//! ```text
//! fallback → total timeout → retry → circuit breaker → bulkhead → attempt timeout → the call
//! ```
//!
//! * The breaker records every attempt, not whole retry sequences: each attempt is evidence.
//! * An open breaker or a full bulkhead ends the retry loop at once (unless
//!   [`PolicyBuilder::retry_on_rejection`] asks otherwise): retrying into them only adds load.
//! * The attempt timeout sits inside the breaker, so a timed-out attempt counts as a failure.
//! * The bulkhead slot is given back after each attempt, so a backoff sleep holds no slot.
//! * The total timeout covers attempts, bulkhead waits and backoff sleeps; no sleep runs past
//!   it.
//! * The fallback is the caller's: it sees the final error, whatever produced it.
//!
//! Run a policy with [`Policy::call`], or step by step with an [`Execution`] (what the
//! `#[resilient]` attribute expands to).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::cache::{Attached, CacheConfig, StaleCache};
use crate::callsite::CallSiteStats;
use crate::context::IdempotencyKey;
use crate::error::Rejection;
use crate::event::Listeners;
use crate::hedge::HedgeConfig;
use crate::retry::{Classification, RetryBudget, RetryConfig};
use crate::timeout::TimeoutConfig;

mod attempt;
mod builder;
mod driver;
mod execution;
mod hedged;
mod simple;

pub use self::execution::{Attempt, Execution, Next};
pub use self::simple::SimpleCall;

pub(crate) use self::driver::Driver;

type RetryPredicate = Arc<dyn Fn(&dyn Any) -> Option<bool> + Send + Sync>;

/// Timeouts, retries, a breaker and a bulkhead, built once and run for every call.
///
/// ```
/// use std::time::Duration;
/// use resilient::{Policy, Registry, Rejection};
///
/// #[derive(Debug)]
/// enum FetchError { Unavailable, Rejected(Rejection) }
/// impl From<Rejection> for FetchError {
///     fn from(r: Rejection) -> Self { FetchError::Rejected(r) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new();
/// let policy = Policy::builder("fetch_user")
///     .timeout(Duration::from_secs(2))
///     .retries(3)
///     .breaker("users_db")
///     .bulkhead("users_db")
///     .build_in(&registry)?;
///
/// let user: Result<&str, FetchError> = policy.call(|| async { Ok("ada") }).await;
/// assert_eq!(user.unwrap(), "ada");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Policy {
    name: Arc<str>,
    /// No timeout, no bulkhead, no retry: a call is one breaker permit around the attempt, and
    /// takes the short path of [`Execution::fast_path`].
    simple: bool,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    budget: Option<Arc<RetryBudget>>,
    hedge: Option<HedgeConfig>,
    retry_if: Vec<RetryPredicate>,
    stats: Arc<CallSiteStats>,
    /// The registry's listeners, told about retries and fallbacks.
    listeners: Arc<Listeners>,
    /// The stale-while-failing cache, when [`PolicyBuilder::cache`] set one.
    cache: Option<Attached>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("breaker", &self.breaker)
            .field("bulkhead", &self.bulkhead)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .field("cache", &self.cache_config())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Policy`]; every setting is optional.
#[derive(Clone)]
#[must_use = "a builder does nothing until built"]
pub struct PolicyBuilder {
    name: String,
    breaker: Option<String>,
    bulkhead: Option<String>,
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    hedge: Option<HedgeConfig>,
    retry_if: Vec<RetryPredicate>,
    /// `cache`'s max age; `None`: no stale cache.
    cache: Option<Duration>,
    /// `cache_capacity`, checked even without `cache`.
    cache_capacity: Option<usize>,
}

impl Policy {
    /// Starts a policy; `name` names the call site in logs and metrics.
    pub fn builder(name: impl Into<String>) -> PolicyBuilder {
        PolicyBuilder {
            name: name.into(),
            breaker: None,
            bulkhead: None,
            retry: RetryConfig::default(),
            timeouts: TimeoutConfig::default(),
            hedge: None,
            retry_if: Vec::new(),
            cache: None,
            cache_capacity: None,
        }
    }

    /// The call site's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker, if the policy has one.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The bulkhead, if the policy has one.
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// The retry settings.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The time limits.
    pub fn timeouts(&self) -> &TimeoutConfig {
        &self.timeouts
    }

    /// The hedging settings, if the policy hedges its attempts.
    pub fn hedge(&self) -> Option<HedgeConfig> {
        self.hedge
    }

    /// The stale cache's limits, if the policy has one.
    pub fn cache_config(&self) -> Option<CacheConfig> {
        self.cache.as_ref().map(|cache| cache.config)
    }

    /// The call site's stale-while-failing cache for keys `K` and values `V`, under this
    /// policy's limits; `None` without [`PolicyBuilder::cache`], or when the call site's cache
    /// already holds another pair of types (a generic function instantiated twice: one warning,
    /// those calls are not cached). See [`crate::cache`].
    pub fn stale_cache<K, V>(&self) -> Option<StaleCache<'_, K, V>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        self.cache.as_ref()?.typed()
    }

    /// [`call`](Self::call), with the stale-while-failing cache: a success is stored under
    /// `key`, and an outage is answered with the value stored under `key` when it is at most
    /// the cache's max age old ([`StaleCache::serve`]). An outage is a call whose last attempt
    /// was rejected (open breaker, full bulkhead, timeout) or failed with an error
    /// [`classify`](Self::classify) calls transient. A permanent error (such as a 404) is an
    /// answer, not an outage: it comes through as it is, as HTTP's `stale-if-error` serves only
    /// server errors. Without a cache, or while an operator has switched the call site off,
    /// this is `call`.
    ///
    /// A success costs a clone of the value and of the key, an allocation and a short lock.
    pub async fn call_cached<K, T, E, F, Fut>(&self, key: K, mut make: F) -> Result<T, E>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Rejection> + 'static,
    {
        let Some(cache) = self
            .stale_cache::<K, T>()
            .filter(|_| !self.stats.is_bypassed())
        else {
            return self.call(make).await;
        };
        // The public step-wise API, so that the last attempt's kind is known: a rejection
        // becomes an `E` the classifier may call permanent, and is still an outage.
        let mut execution = self.execution();
        let (result, outage) = loop {
            let attempt = execution.attempt(make()).await;
            let outage = match &attempt {
                Attempt::Rejected(_) => true,
                Attempt::Done(Err(error)) => self.classify(error).transient,
                Attempt::Done(Ok(_)) => false,
            };
            if let Next::Return(result) = execution.next(attempt, |e| self.classify(e)).await {
                break (result, outage);
            }
        };
        match result {
            Ok(value) => {
                cache.store(key, &value);
                Ok(value)
            }
            Err(error) if outage => cache.serve(&key).map(|stale| stale.value).ok_or(error),
            Err(error) => Err(error),
        }
    }

    /// The call site's counters, shared by every policy built under the same name in one
    /// registry.
    pub fn stats(&self) -> &CallSiteStats {
        &self.stats
    }

    /// Reports a fallback served after the call failed with an error of type `E`: counts it
    /// in the call site's stats, logs it at DEBUG on `resilient::fallback` and sends
    /// [`Event::Fallback`](crate::Event::Fallback) to the registry's listeners.
    pub fn fallback_served<E: ?Sized>(&self) {
        self.stats.record_fallback();
        self.listeners.fallback::<E>(&self.name);
    }

    /// Runs one call: `make` builds the future of one attempt and is called again for each
    /// retry, so it must own (or clone) what the attempt needs.
    ///
    /// Errors are retried when transient by the predicates given to
    /// [`PolicyBuilder::retry_if`] (all are, by default). Use an [`Execution`] for attempts that
    /// borrow from their surroundings.
    // Not an `async fn` itself: one state machine, not one around another.
    pub fn call<T, E, F, Fut>(&self, make: F) -> impl Future<Output = Result<T, E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Rejection> + 'static,
    {
        self.call_keyed(None, make)
    }

    /// [`call`](Self::call) with the caller's idempotency key: every attempt's
    /// [`context()`](crate::context::context) gives `key` instead of a generated one (a request
    /// id the caller already has, or a key it keeps so that a retry of the whole request later
    /// still sends the same).
    pub fn call_with_key<T, E, F, Fut>(
        &self,
        key: IdempotencyKey,
        make: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Rejection> + 'static,
    {
        self.call_keyed(Some(key), make)
    }

    async fn call_keyed<T, E, F, Fut>(
        &self,
        key: Option<IdempotencyKey>,
        mut make: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Rejection> + 'static,
    {
        let mut driver = Driver::new(self);
        if let Some(key) = key {
            driver.use_idempotency_key(key);
        }
        loop {
            let attempt = driver.attempt_with(&mut make).await;
            if let Next::Return(result) = driver.next(attempt, |e| self.classify(e)).await {
                return result;
            }
        }
    }

    /// What the policy's `retry_if` predicates say of `error`. When none applies, the types the
    /// crate classifies itself decide (with the `http` feature,
    /// `http::HttpError` and `reqwest::Error`), and every other error is
    /// transient. Their `Retry-After` hint sets the least delay either way.
    pub fn classify<E: 'static>(&self, error: &E) -> Classification {
        let known = crate::known::classification(error);
        let transient = self
            .retry_if
            .iter()
            .find_map(|predicate| predicate(error))
            .or(known.map(|known| known.transient))
            .unwrap_or(true);
        Classification {
            transient,
            retry_after: known.and_then(|known| known.retry_after),
        }
    }

    /// Starts one call on the short path, when the policy allows it: no timeout, no bulkhead,
    /// no retry, its call site not switched off, and no subscriber tracing its span (DEBUG on
    /// `resilient::call`). `None`: use an [`Execution`]. Otherwise [`SimpleCall::admit`], run
    /// the attempt through [`SimpleCall::run`], and [`SimpleCall::finish`] with its result.
    ///
    /// The step-wise driver moves the attempt's future and its result through nested state
    /// machines; a call that needs none of its steps is the breaker's permit, the future awaited
    /// in place, and the outcome recorded.
    #[inline]
    pub fn simple_call(&self) -> Option<SimpleCall<'_>> {
        if !self.simple
            || self.stats.is_bypassed()
            || tracing::enabled!(target: "resilient::call", tracing::Level::DEBUG)
        {
            return None;
        }
        self.stats.record_call();
        Some(SimpleCall {
            policy: self,
            started: self.stats.start_timer(),
            permit: None,
        })
    }

    /// Starts one call, to be driven attempt by attempt:
    ///
    /// ```
    /// # use resilient::{Policy, Rejection, policy::Next};
    /// # #[derive(Debug)] struct E;
    /// # impl From<Rejection> for E { fn from(_: Rejection) -> Self { E } }
    /// # async fn fetch(id: &mut u32) -> Result<u32, E> { *id += 1; Ok(*id) }
    /// # async fn demo(policy: &Policy, id: &mut u32) -> Result<u32, E> {
    /// let mut execution = policy.execution();
    /// loop {
    ///     // Each attempt may borrow from the caller, `&mut` included.
    ///     let attempt = execution.attempt(fetch(id)).await;
    ///     match execution.next(attempt, |e| policy.classify(e)).await {
    ///         Next::Return(result) => break result,
    ///         Next::Retry => continue,
    ///     }
    /// }
    /// # }
    /// ```
    pub fn execution(&self) -> Execution<'_> {
        self.stats.record_call();
        let deadline = self.timeouts.total_deadline();
        let mut execution = self.resumed_execution(self.stats.start_timer(), deadline);
        execution.bypassed = self.stats.is_bypassed();
        execution
    }

    /// The step-wise driver for a call that started on the [`Driver`]'s lean path: counted
    /// already, its timer started at `started`, its total deadline `deadline`.
    pub(crate) fn resumed_execution(
        &self,
        started: u64,
        deadline: Option<tokio::time::Instant>,
    ) -> Execution<'_> {
        // Disabled (no subscriber wants DEBUG on `resilient::call`), this is a cached interest
        // check and an empty span: the arguments are not even evaluated.
        let span = tracing::debug_span!(
            target: "resilient::call",
            "resilient",
            call_site = %self.name,
            breaker = self.breaker.as_ref().map_or("", CircuitBreaker::name),
            bulkhead = self.bulkhead.as_ref().map_or("", Bulkhead::name),
        );
        Execution {
            policy: self,
            span,
            bypassed: false,
            started,
            retries: 0,
            retry_limit: self.retry.max_retries,
            deadline,
            previous_delay: Duration::ZERO,
            random: None,
            call_guard: None,
            retry_guard: None,
            #[cfg(feature = "tower")]
            reserved: None,
            keyed: None,
            scope: crate::context::CallScope::new(None, deadline),
        }
    }
}
