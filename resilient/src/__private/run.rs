//! The attempt loop's driver, typed by the annotated function's declared return type.

use std::any::Any;
use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

use crate::breaker::CircuitBreaker;
use crate::error::Rejection;
use crate::policy::{Attempt, Driver, Next};
use crate::registry::Registry;
use crate::retry::Classification;

use super::CallSite;

/// Says, at the return type, that a `#[resilient]` function must return a `Result`.
#[diagnostic::on_unimplemented(
    message = "a `#[resilient]` function must return `Result<T, E>`, not `{Self}`",
    label = "expected `Result<T, E>` here",
    note = "aliases such as `std::io::Result<T>` and `anyhow::Result<T>` are fine"
)]
pub trait ResilientResult {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
}

impl<T, E> ResilientResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// Says, at the return type, which `From` impl the error type lacks.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a `resilient::Rejection`: it needs `impl From<resilient::Rejection> for {Self}`",
    label = "`#[resilient]` returns its rejections (open breaker, full bulkhead, timeout) as this error type",
    note = "for an error type of your own, write the impl; with thiserror, a variant `Rejected(#[from] resilient::Rejection)` writes it",
    note = "for a type of another crate the orphan rule forbids that impl: return a newtype or an enum of your own, `anyhow::Error`, or `Box<dyn std::error::Error + Send + Sync>` (these two already have it)"
)]
pub trait AbsorbsRejection: From<Rejection> {}

impl<E: From<Rejection>> AbsorbsRejection for E {}

/// Starts one call of `site`; `R` is the function's declared return type. The marker argument
/// is written with the return type's tokens, so that a type error lands on the return type.
///
/// This is the only place that requires `E: From<Rejection>`: [`Run`] keeps the conversion, so
/// a missing impl is reported once.
pub fn start<R>(site: &'static CallSite, _return_type: PhantomData<R>) -> Run<R::Ok, R::Err>
where
    R: ResilientResult,
    R::Err: AbsorbsRejection,
{
    Run {
        driver: Driver::new(site.policy()),
        last_rejected: false,
        reject: <R::Err as From<Rejection>>::from,
        types: PhantomData,
    }
}

/// One call in progress, typed by the function's `Result<T, E>`.
#[derive(Debug)]
pub struct Run<T, E> {
    driver: Driver<'static>,
    /// The last attempt was refused or cut short by `resilient` (an outage for the cache).
    last_rejected: bool,
    reject: fn(Rejection) -> E,
    // A function pointer, so that `Run` is `Send` and `Sync` whatever `T` is.
    types: PhantomData<fn() -> T>,
}

/// The error the runtime's driver sees between attempts: the function's own, or a rejection
/// that [`Run`] converts at the end (so the driver needs no `From` bound on `E`).
#[derive(Debug)]
pub enum Failure<E> {
    /// The function's error.
    Error(E),
    /// `resilient` refused or cut short the call.
    Rejected(Rejection),
}

impl<E> From<Rejection> for Failure<E> {
    fn from(rejection: Rejection) -> Self {
        Failure::Rejected(rejection)
    }
}

impl<T, E: Any> Run<T, E> {
    /// Runs one attempt; see [`Execution::attempt`](crate::Execution::attempt). The breaker
    /// sees the function's own error.
    #[inline]
    pub fn attempt<F>(&mut self, attempt: F) -> impl Future<Output = Attempt<T, E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.driver.attempt(attempt)
    }

    /// Runs one attempt built by `make`, with hedges built the same way when the call site
    /// hedges (see [`hedge`](crate::hedge)).
    #[inline]
    pub fn attempt_with<F, A>(&mut self, make: &mut F) -> impl Future<Output = Attempt<T, E>>
    where
        F: FnMut() -> A,
        A: Future<Output = Result<T, E>>,
    {
        self.driver.attempt_with(make)
    }

    /// Decides what follows an attempt; see [`Execution::next`](crate::Execution::next).
    /// `classify` is a function pointer (the attribute's classifier captures nothing), so that
    /// the step-wise driver behind this is compiled once per result type, not once per
    /// annotated function.
    #[inline]
    pub fn next(
        &mut self,
        attempt: Attempt<T, E>,
        classify: fn(&E) -> Classification,
    ) -> impl Future<Output = Next<T, E>> {
        // A success on the lean path ends the call here, without the conversions below.
        let attempt = match attempt {
            Attempt::Done(Ok(value)) if self.driver.on_lean_path() => {
                self.last_rejected = false;
                self.driver.finish_once();
                return NextRun::Ready {
                    next: Some(Next::Return(Ok(value))),
                };
            }
            attempt => attempt,
        };
        NextRun::Deciding {
            future: self.decide(attempt, classify),
        }
    }

    /// [`next`](Self::next) for every outcome but a lean success.
    fn decide(
        &mut self,
        attempt: Attempt<T, E>,
        classify: fn(&E) -> Classification,
    ) -> impl Future<Output = Next<T, E>> + use<'_, T, E> {
        self.last_rejected = matches!(attempt, Attempt::Rejected(_));
        let attempt = match attempt {
            Attempt::Done(result) => Attempt::Done(result.map_err(Failure::Error)),
            Attempt::Rejected(rejection) => Attempt::Rejected(rejection),
        };
        let reject = self.reject;
        let next = self.driver.next(attempt, move |failure| match failure {
            Failure::Error(error) => classify(error),
            Failure::Rejected(rejection) => Classification::of(rejection),
        });
        async move {
            match next.await {
                Next::Retry => Next::Retry,
                Next::Return(result) => {
                    Next::Return(result.map_err(|failure| convert(reject, failure)))
                }
            }
        }
    }

    /// The whole call when it makes a single attempt (no `retries`); `make` builds the attempt,
    /// so that its future is built in place rather than moved in.
    #[inline]
    pub async fn once<F, A>(&mut self, make: F) -> Result<T, E>
    where
        F: FnOnce() -> A,
        A: Future<Output = Result<T, E>>,
    {
        self.driver.single_attempt();
        // Decided in a block of its own, so that nothing of the admission's result stays in
        // this future across the await below.
        let lean = match self.driver.admit_once() {
            Some(Ok(lean)) => lean,
            Some(Err(rejection)) => {
                self.last_rejected = true;
                return Err((self.reject)(rejection));
            }
            None => return Box::pin(self.stepwise_once(make)).await,
        };
        let attempt = lean.run(&self.driver, make()).await;
        self.driver.finish_once();
        match attempt {
            Attempt::Done(result) => result,
            Attempt::Rejected(rejection) => {
                self.last_rejected = true;
                Err((self.reject)(rejection))
            }
        }
    }

    /// [`once`](Self::once) on the step-wise driver: out of line, so that its states add
    /// nothing to the size of the function's future.
    async fn stepwise_once<F, A>(&mut self, make: F) -> Result<T, E>
    where
        F: FnOnce() -> A,
        A: Future<Output = Result<T, E>>,
    {
        let attempt = match self.driver.stepwise_attempt(make()).await {
            Attempt::Done(result) => Attempt::Done(result.map_err(Failure::Error)),
            Attempt::Rejected(rejection) => {
                self.last_rejected = true;
                Attempt::Rejected(rejection)
            }
        };
        // A function, not a closure: a closure here would be a type of its own per annotated
        // function, and so would the step-wise `next` it is passed to.
        match self.driver.next(attempt, stop::<E>).await {
            Next::Return(result) => result.map_err(|failure| convert(self.reject, failure)),
            // `next` retries only while retries are left, and this call has none.
            Next::Retry => unreachable!("`single_attempt` allows no retry"),
        }
    }

    /// Runs this call's attempts through the breaker of `key` in the family `family` of the
    /// current registry (`breaker_key`). A family or key the registry refuses rejects the call
    /// as an open breaker named after the family; nothing panics.
    pub fn use_key<K: Hash + Debug + ?Sized>(&mut self, family: &'static str, key: &K) {
        let breaker = match crate::registry::scoped() {
            Some(registry) => key_breaker(&registry, family, key),
            None => key_breaker(crate::registry(), family, key),
        };
        self.driver.use_breaker(breaker);
    }

    /// Gives this call the caller's idempotency key (`idempotency_key`): every attempt's
    /// [`context()`](crate::context::context) gives it.
    pub fn use_idempotency_key(&mut self, key: crate::context::IdempotencyKey) {
        self.driver.use_idempotency_key(key);
    }

    /// Stores a success under `key` in the call site's stale-while-failing cache (`cache`).
    pub fn cache_store<K: CacheKey>(&self, key: K, value: &T)
    where
        T: CacheValue,
    {
        if let Some(cache) = self.live_cache::<K>() {
            cache.store(key, value);
        }
    }

    /// The value stored under `key`, to answer a failed call with, when the call was an outage
    /// (its last attempt rejected, or its error `transient`) and the value is fresh enough.
    /// [`StaleCache::serve`](crate::StaleCache::serve) logs, counts and reports it.
    pub fn cache_serve<K: CacheKey>(&self, key: &K, transient: bool) -> Option<T>
    where
        T: CacheValue,
    {
        if !(transient || self.last_rejected) {
            return None;
        }
        Some(self.live_cache::<K>()?.serve(key)?.value)
    }

    /// The cache, unless an operator switched the call site off when the call started.
    fn live_cache<K: CacheKey>(&self) -> Option<crate::StaleCache<'static, K, T>>
    where
        T: CacheValue,
    {
        if self.driver.bypassed() {
            return None;
        }
        self.driver.policy().stale_cache::<K, T>()
    }

    /// Counts a fallback served, logs it and tells the registry's listeners.
    pub fn fallback_served(&self) {
        self.driver.policy().fallback_served::<E>();
    }
}

/// The classification of a call that makes one attempt: nothing is retried.
fn stop<E>(_: &Failure<E>) -> Classification {
    Classification::STOP
}

fn convert<E>(reject: fn(Rejection) -> E, failure: Failure<E>) -> E {
    match failure {
        Failure::Error(error) => error,
        Failure::Rejected(rejection) => reject(rejection),
    }
}

/// Says, at the attribute, what a cached success value needs.
#[diagnostic::on_unimplemented(
    message = "`cache` keeps the last good value to answer failed calls, so `{Self}` must be `Clone + Send + Sync + 'static`",
    label = "the success value of a `#[resilient(cache = ...)]` function"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> CacheValue for T {}

/// Says, at the attribute, what the cache's key needs.
#[diagnostic::on_unimplemented(
    message = "`cache` keys its values by `{Self}`, which must be `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "the key: the arguments as owned values, or `cache_key`",
    note = "give the key yourself with `cache_key = <expression>` (an id, a tuple of the arguments that matter)"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

/// An argument as an owned value for the cache's key: `&str` gives a `String`, `&[T]` a
/// `Vec<T>`, any `Clone` value its clone.
pub fn owned<T: ToOwned + ?Sized>(value: &T) -> T::Owned {
    value.to_owned()
}

/// The breaker of `key` in `family`, or the rejection that stands for a refused family or key.
fn key_breaker<K: Hash + Debug + ?Sized>(
    registry: &Registry,
    family: &'static str,
    key: &K,
) -> Result<CircuitBreaker, Rejection> {
    let refused = || Rejection::CircuitOpen {
        breaker: family.into(),
        retry_after: None,
    };
    let family = registry.breaker_family(family).map_err(|_| refused())?;
    family.breaker(key).map_err(Rejection::from)
}

pin_project_lite::pin_project! {
    /// What [`Run::next`] gives: known at once, or decided by the driver.
    #[project = NextRunProj]
    enum NextRun<N, F> {
        Ready { next: Option<N> },
        Deciding { #[pin] future: F },
    }
}

impl<N, F: Future<Output = N>> Future for NextRun<N, F> {
    type Output = N;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<N> {
        match self.project() {
            NextRunProj::Ready { next } => std::task::Poll::Ready(
                next.take()
                    .expect("a `next` future is not polled after it completed"),
            ),
            NextRunProj::Deciding { future } => future.poll(cx),
        }
    }
}
