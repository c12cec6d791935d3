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
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::{Backoff, Jitter, Random};
use crate::breaker::{BreakerPermit, CircuitBreaker};
use crate::bulkhead::Bulkhead;
use crate::callsite::CallSiteStats;
use crate::error::{ConfigError, Rejection, TimeoutKind};
use crate::event::{Event, Listeners};
use crate::name::check_field;
use crate::registry::Registry;
use crate::retry::{BudgetConfig, CallGuard, Classification, RetryBudget, RetryConfig};
use crate::timeout::{TimeoutConfig, run_until};

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
    retry_if: Vec<RetryPredicate>,
    stats: Arc<CallSiteStats>,
    /// The registry's listeners, told about retries and fallbacks.
    listeners: Arc<Listeners>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("breaker", &self.breaker)
            .field("bulkhead", &self.bulkhead)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
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
    retry_if: Vec<RetryPredicate>,
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
            retry_if: Vec::new(),
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

    /// The call site's counters, shared by every policy built under the same name in one
    /// registry.
    pub fn stats(&self) -> &CallSiteStats {
        &self.stats
    }

    /// Reports a fallback served after the call failed with an error of type `E`: counts it
    /// in the call site's stats, logs it at DEBUG on `resilient::fallback` and sends
    /// [`Event::Fallback`] to the registry's listeners.
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
    pub async fn call<T, E, F, Fut>(&self, mut make: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Rejection> + 'static,
    {
        if let Some(mut call) = self.simple_call() {
            call.admit()?;
            let result = call.run(make()).await;
            call.finish(&result);
            return result;
        }
        let mut execution = self.execution();
        loop {
            let attempt = execution.attempt(make()).await;
            if let Next::Return(result) = execution.next(attempt, |e| self.classify(e)).await {
                return result;
            }
        }
    }

    /// What the policy's `retry_if` predicates say of `error` (transient when none applies).
    pub fn classify<E: 'static>(&self, error: &E) -> Classification {
        let transient = self
            .retry_if
            .iter()
            .find_map(|predicate| predicate(error))
            .unwrap_or(true);
        Classification {
            transient,
            retry_after: None,
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
            bypassed: self.stats.is_bypassed(),
            started: self.stats.start_timer(),
            retries: 0,
            retry_limit: self.retry.max_retries,
            deadline: self.timeouts.total_deadline(),
            previous_delay: Duration::ZERO,
            random: None,
            call_guard: None,
            retry_guard: None,
        }
    }
}

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
        self.retry.validate(&subject)?;
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
            Some(config) if self.retry.max_retries > 0 => {
                let dependency = self
                    .breaker
                    .as_deref()
                    .or(self.bulkhead.as_deref())
                    .unwrap_or(&self.name);
                Some(registry.retry_budget(dependency, config)?)
            }
            _ => None,
        };
        let simple = self.timeouts == TimeoutConfig::default()
            && bulkhead.is_none()
            && self.retry.max_retries == 0;
        Ok(Policy {
            name: self.name.into(),
            simple,
            breaker,
            bulkhead,
            retry: self.retry,
            timeouts: self.timeouts,
            budget,
            retry_if: self.retry_if,
            stats,
            listeners: registry.listeners().clone(),
        })
    }
}

/// A call on the short path (see [`Policy::simple_call`]). Dropped without
/// [`finish`](Self::finish), it counts as cancelled: the breaker's permit is released unrecorded.
///
/// Admission and the outcome are two small calls rather than one `Result` carrying the call:
/// a large enum written piece by piece and then moved whole stalls the processor on every call.
#[must_use = "a call records nothing until it is finished"]
#[derive(Debug)]
pub struct SimpleCall<'p> {
    policy: &'p Policy,
    /// See [`CallSiteStats::start_timer`].
    started: u64,
    permit: Option<BreakerPermit<'p>>,
}

impl SimpleCall<'_> {
    /// Asks the breaker, if the policy has one, to let the call run.
    #[inline]
    pub fn admit(&mut self) -> Result<(), Rejection> {
        if let Some(breaker) = &self.policy.breaker {
            match breaker.try_acquire() {
                Ok(permit) => self.permit = Some(permit),
                Err(rejection) => {
                    self.policy.stats.stop_timer(self.started);
                    return Err(rejection);
                }
            }
        }
        Ok(())
    }

    /// Awaits the call itself, after [`admit`](Self::admit): through the breaker's permit (see
    /// [`BreakerPermit::run`]), so that the call's own panic is recorded as a failure and a
    /// panic elsewhere that drops it as a cancellation.
    #[inline]
    pub async fn run<F: Future>(&mut self, future: F) -> F::Output {
        crate::breaker::watch(self.permit.as_mut(), future).await
    }

    /// Records the call's outcome in the breaker, and its latency if sampled.
    #[inline]
    pub fn finish<T, E: Any>(self, result: &Result<T, E>) {
        if let Some(permit) = self.permit {
            permit.record_result(result);
        }
        self.policy.stats.stop_timer(self.started);
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// The attempt ran to completion.
    Done(Result<T, E>),
    /// The attempt was refused or cut short by `resilient`.
    Rejected(Rejection),
}

/// What to do after an attempt.
#[derive(Debug)]
pub enum Next<T, E> {
    /// The call is over: return this.
    Return(Result<T, E>),
    /// The backoff has been slept: run another attempt.
    Retry,
}

/// One call of a [`Policy`] in progress. Each step is cancel safe: dropping the future of
/// [`attempt`](Self::attempt) or [`next`](Self::next) gives back every permit and records
/// nothing.
pub struct Execution<'p> {
    policy: &'p Policy,
    /// The call's span (DEBUG, target `resilient::call`): attempts run inside it.
    span: tracing::Span,
    /// An operator switched the call site off: one plain attempt, nothing else.
    bypassed: bool,
    /// See [`CallSiteStats::start_timer`].
    started: u64,
    retries: u32,
    /// Retries this call may make: the policy's, or 0 for a call whose attempt cannot be run
    /// again (see [`single_attempt`](Execution::single_attempt)).
    retry_limit: u32,
    deadline: Option<Instant>,
    previous_delay: Duration,
    random: Option<Random>,
    call_guard: Option<CallGuard<'p>>,
    retry_guard: Option<CallGuard<'p>>,
}

impl fmt::Debug for Execution<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("policy", &self.policy.name)
            .field("retries", &self.retries)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'p> Execution<'p> {
    /// Makes this call a single attempt whatever the policy's retries: for callers that cannot
    /// build the attempt twice (an annotated function without `retries` moves its arguments
    /// into its one attempt, even when a configuration file gives its call site retries).
    pub fn single_attempt(&mut self) {
        self.retry_limit = 0;
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Runs one attempt through the breaker, the bulkhead and the attempt timeout, and records
    /// its outcome in the breaker. `future` is not polled if the attempt is refused.
    pub async fn attempt<T, E, F>(&mut self, future: F) -> Attempt<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Any,
    {
        let policy = self.policy;
        let future = future.instrument(self.span.clone());
        tracing::trace!(
            target: "resilient::call",
            parent: &self.span,
            attempt = self.retries + 1,
            "attempt starts"
        );
        if self.bypassed {
            return Attempt::Done(future.await);
        }
        if let (Some(budget), None) = (&policy.budget, &self.call_guard) {
            self.call_guard = Some(budget.enter());
        }
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            return Attempt::Rejected(self.total_timeout());
        }
        let mut permit = match policy.breaker.as_ref().map(CircuitBreaker::try_acquire) {
            Some(Err(rejection)) => return Attempt::Rejected(rejection),
            Some(Ok(permit)) => Some(permit),
            None => None,
        };
        let _slot = match &policy.bulkhead {
            None => None,
            Some(bulkhead) => match run_until(self.deadline, bulkhead.acquire()).await {
                Some(Ok(slot)) => {
                    if let Some(permit) = &mut permit {
                        permit.restart_timer();
                    }
                    Some(slot)
                }
                // The breaker permit drops unrecorded: a full bulkhead is our capacity, not
                // the dependency's failure.
                Some(Err(rejection)) => return Attempt::Rejected(rejection),
                None => return Attempt::Rejected(self.total_timeout()),
            },
        };
        let limit = policy.timeouts.attempt_deadline(self.deadline);
        // Watched by the permit, so that only a panic out of the attempt itself is its failure.
        let future = crate::breaker::watch(permit.as_mut(), future);
        match run_until(limit.map(|(deadline, _)| deadline), future).await {
            Some(result) => {
                if let Some(permit) = permit {
                    permit.record_result(&result);
                }
                tracing::trace!(
                    target: "resilient::call",
                    parent: &self.span,
                    attempt = self.retries + 1,
                    ok = result.is_ok(),
                    "attempt ended"
                );
                Attempt::Done(result)
            }
            None => match limit {
                Some((_, TimeoutKind::Attempt)) => {
                    if let Some(permit) = permit {
                        permit.record_timeout();
                    }
                    let limit = policy.timeouts.attempt.unwrap_or_default();
                    tracing::debug!(
                        target: "resilient::timeout",
                        call_site = %policy.name, ?limit,
                        "attempt timed out"
                    );
                    Attempt::Rejected(Rejection::Timeout {
                        kind: TimeoutKind::Attempt,
                        limit,
                    })
                }
                // Cut short by the caller's total budget: says nothing certain about the
                // dependency, so the permit drops unrecorded.
                _ => Attempt::Rejected(self.total_timeout()),
            },
        }
    }

    /// Decides what follows an attempt: return its result, or sleep the backoff and retry.
    /// `classify` says whether an error is worth retrying.
    pub async fn next<T, E>(
        &mut self,
        attempt: Attempt<T, E>,
        classify: impl FnOnce(&E) -> Classification,
    ) -> Next<T, E>
    where
        E: From<Rejection>,
    {
        let (error, classification, error_kind) = match attempt {
            Attempt::Done(Ok(value)) => return self.finish(Ok(value)),
            Attempt::Done(Err(error)) => {
                let classification = classify(&error);
                (error, classification, std::any::type_name::<E>())
            }
            Attempt::Rejected(rejection) => {
                let retryable = match &rejection {
                    Rejection::Timeout {
                        kind: TimeoutKind::Attempt,
                        ..
                    } => true,
                    Rejection::Timeout { .. } => false,
                    _ => self.policy.retry.retry_on_rejection,
                };
                let classification = Classification {
                    transient: retryable,
                    retry_after: rejection.retry_after(),
                };
                let error_kind = if rejection.is_timeout() {
                    "attempt timeout"
                } else {
                    "rejected"
                };
                (E::from(rejection), classification, error_kind)
            }
        };
        match self.plan_retry(classification) {
            Some(delay) => {
                let policy = self.policy;
                tracing::debug!(
                    target: "resilient::retry",
                    call_site = %policy.name,
                    retry = self.retries,
                    ?delay,
                    error = error_kind,
                    "attempt failed, retrying"
                );
                policy.listeners.emit(|| Event::Retry {
                    call_site: policy.name.clone(),
                    attempt: self.retries,
                    delay,
                    error: error_kind,
                });
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Next::Retry
            }
            None => self.finish(Err(error)),
        }
    }

    fn finish<T, E>(&self, result: Result<T, E>) -> Next<T, E> {
        self.policy.stats.stop_timer(self.started);
        Next::Return(result)
    }

    /// The delay before the next retry, or `None` when the call must end now.
    fn plan_retry(&mut self, classification: Classification) -> Option<Duration> {
        let retry = &self.policy.retry;
        if self.bypassed || !classification.transient || self.retries >= self.retry_limit {
            return None;
        }
        let random = self.random.get_or_insert_with(Random::new);
        let mut delay = retry
            .backoff
            .delay(self.retries + 1, self.previous_delay, random);
        if let Some(hint) = classification.retry_after {
            delay = delay.max(hint);
        }
        // A backoff that ends at or after the deadline leaves the next attempt no time at all.
        // A delay too large for an `Instant` (a hostile `Retry-After`) ends after any deadline.
        if let Some(deadline) = self.deadline
            && Instant::now()
                .checked_add(delay)
                .is_none_or(|end| end >= deadline)
        {
            tracing::debug!(
                target: "resilient::retry",
                call_site = %self.policy.name, ?delay,
                "no retry: the backoff would end past the total timeout"
            );
            return None;
        }
        if let Some(budget) = &self.policy.budget {
            // Replacing the previous retry's guard ends that retry's count.
            self.retry_guard = None;
            match budget.try_retry() {
                Some(guard) => self.retry_guard = Some(guard),
                None => {
                    tracing::debug!(
                        target: "resilient::retry",
                        call_site = %self.policy.name, budget = budget.name(),
                        "no retry: the retry budget is spent"
                    );
                    return None;
                }
            }
        }
        self.retries += 1;
        self.policy.stats.record_retry();
        self.previous_delay = delay;
        Some(delay)
    }

    fn total_timeout(&self) -> Rejection {
        Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: self.policy.timeouts.total.unwrap_or_default(),
        }
    }
}
