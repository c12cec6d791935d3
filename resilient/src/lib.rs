//! `resilient` keeps one failing dependency from taking a whole service down.
//!
//! Every call to a dependency gets, in this order (outer to inner):
//!
//! ```text
//! fallback → total timeout → retry → circuit breaker → bulkhead → attempt timeout → the call
//! ```
//!
//! * a per-attempt **timeout**, and optionally a **total** one across attempts and backoff;
//! * **retries** with exponential backoff and jitter, limited by a per-dependency **budget**;
//! * a **circuit breaker**, shared by name through a process-wide [`registry()`], that fails
//!   fast while the dependency is down and probes it carefully when it may have recovered;
//! * a **bulkhead**, a per-dependency concurrency limit that rejects instead of queueing
//!   forever;
//! * a **fallback** when all of that still fails.
//!
//! Put [`#[resilient(...)]`](macro@resilient) on an async fn, or use the programmatic API in
//! [`policy`]; declare breakers and bulkheads in the [`registry()`], watch them through
//! [`event`], [`snapshot`](Registry::snapshot) and the `metrics` feature, and configure them from
//! files with the `serde` feature. The `http`, `reqwest` and `axum` features classify HTTP
//! outcomes for retries and breakers and turn a [`Rejection`] into a 503 or 504 response
//! (`resilient::http`).

#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod backoff;
pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod callsite;
#[cfg(feature = "serde")]
pub mod config;
pub mod context;
mod counter;
pub mod error;
pub mod event;
pub mod family;
#[cfg(feature = "tonic")]
pub mod grpc;
pub mod hedge;
#[cfg(feature = "http")]
pub mod http;
mod known;
#[cfg(feature = "metrics")]
pub mod metrics;
mod name;
pub mod policy;
pub mod registry;
pub mod retry;
pub mod snapshot;
mod suggest;
mod sync;
pub mod timeout;
#[cfg(feature = "tower")]
pub mod tower;
mod window;

#[cfg(all(test, resilient_loom))]
mod loom_tests;

#[doc(hidden)]
pub mod __private;

pub use backoff::{Backoff, Jitter};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, SlidingWindow, TripPolicy};
pub use bulkhead::{Bulkhead, BulkheadConfig};
pub use cache::{CacheConfig, Stale, StaleCache};
pub use context::{CallContext, IdempotencyKey, context};
pub use error::{ConfigError, RegistryError, Rejection, TimeoutKind, UnknownName, ValidationError};
pub use event::{Event, Listeners};
pub use name::MAX_NAME_LEN;
pub use policy::{Execution, Policy, PolicyBuilder, SimpleCall};
pub use registry::{DEFAULT_IMPLICIT_LIMIT, Registry, Scoped, registry};
pub use retry::{Classification, RetryConfig, Transient};
pub use snapshot::Snapshot;
pub use timeout::{MAX_DURATION, TimeoutConfig};

/// Wraps an `async fn` in a per-attempt timeout, retries with backoff and jitter, a named
/// circuit breaker, a bulkhead, a total timeout and a fallback.
///
/// ```
/// use resilient::{BreakerConfig, Rejection, registry, resilient};
///
/// #[derive(Debug)]
/// enum PricingError {
///     Unavailable,
///     Rejected(Rejection),
/// }
///
/// // Open breaker, full bulkhead, timeout: `resilient` returns them as your error type.
/// impl From<Rejection> for PricingError {
///     fn from(rejection: Rejection) -> Self {
///         PricingError::Rejected(rejection)
///     }
/// }
///
/// struct Pricing {
///     cache: std::collections::HashMap<String, u64>,
/// }
///
/// impl Pricing {
///     #[resilient(timeout = "2s", retries = 3, breaker = "feature_store", fallback = cached_price)]
///     async fn price(&self, sku: &str) -> Result<u64, PricingError> {
///         let _ = sku; // ask the feature store; here it is down
///         Err(PricingError::Unavailable)
///     }
///
///     /// The fallback gets the same arguments, then the error.
///     fn cached_price(&self, sku: &str, _error: PricingError) -> Result<u64, PricingError> {
///         self.cache.get(sku).copied().ok_or(PricingError::Unavailable)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // At startup: declare each dependency once (an undeclared name gets the defaults and a
/// // warning).
/// registry().declare_breaker("feature_store", BreakerConfig::default()).unwrap();
///
/// let pricing = Pricing { cache: [("apple".to_owned(), 120)].into() };
/// assert_eq!(pricing.price("apple").await.unwrap(), 120); // 4 attempts, then the cache
/// # }
/// ```
///
/// # Keys
///
/// Every key is optional, but the attribute must ask for something.
///
/// | key | value | default | effect |
/// |---|---|---|---|
/// | `timeout` | duration, `"2s"` | none | limit for each attempt; a timed-out attempt counts as a breaker failure and is retried |
/// | `total_timeout` | duration, `"5s"` | none | limit for the whole call: attempts, bulkhead waits and backoff sleeps |
/// | `retries` | integer, `3` (at most 100) | `0` | attempts after the first |
/// | `backoff` | duration, `"100ms"` | `"100ms"` | the first delay; each later one doubles |
/// | `max_backoff` | duration, `"10s"` | `"10s"` | no delay is longer |
/// | `jitter` | `none`, `full`, `equal`, `decorrelated` | `full` | randomises each delay (see [`Jitter`]) |
/// | `retry_if` | path to a `fn(&E) -> bool` | [`Transient`], else every error | which errors are worth retrying |
/// | `breaker` | string, `"feature_store"` | none | records every attempt in this breaker of the global [`registry()`] |
/// | `breaker_key` | expression, `host` (any `Hash + Debug` value; needs `breaker`) | none | evaluated per call: `breaker` names a [per-key family](family) and each key gets its own breaker |
/// | `bulkhead` | string, `"feature_store"` | none | runs every attempt in this bulkhead of the global [`registry()`] |
/// | `fallback` | path to a function | none | called with the arguments and the error when the call still fails |
/// | `name` | string | `"module::function"`, `"module::Type::method"` | the call site's name in logs, metrics, configuration and [`Registry::call_site_metrics`] (see [below](#call-site-names)) |
/// | `crate` | path, or a string holding one | `::resilient` | where the generated code finds this crate: a renamed dependency, or a facade that re-exports it (`crate = platform::resilient`) |
///
/// Durations use the grammar of configuration files (humantime's): `"250ms"`, `"1.5s"`,
/// `"2 seconds"`, `"1m 30s"`; positive and at most [`MAX_DURATION`] (README, "Durations"). Without `backoff`, `max_backoff` and `jitter`,
/// retries use the runtime's default backoff ([`Backoff::default`]).
///
/// These mistakes are compile errors, each at the offending token and all reported at once: an
/// unknown key (with a "did you mean"), a key given twice, a value of the wrong type, a malformed,
/// zero or overflowing duration, `timeout` longer than `total_timeout`, `backoff`,
/// `max_backoff`, `jitter` or `retry_if` without `retries`, `max_backoff` below `backoff`, more
/// than 100 retries, an empty breaker, bulkhead or call-site name. So are these, each at the
/// token it is about and with the way out: `#[resilient]` written twice on one function,
/// `#[tokio::main]` or `#[tokio::test]` written above it (put `#[resilient]` above), an error
/// type that cannot get `From<Rejection>` (`String`; for another crate's type the note names a
/// newtype, `anyhow::Error` or `Box<dyn Error + Send + Sync>`), a generic error type without
/// `'static`, and a success value borrowed from `&mut self` with `retries` or a `fallback`.
/// The function is still emitted as written, so the rest of the crate (and rust-analyzer) keep
/// working.
///
/// # The function
///
/// * An `async fn`: free, a method taking `&self`, `&mut self`, `self`, `self: Arc<Self>`, in
///   an impl, a trait impl, a trait's default body, or under `#[async_trait]`. Generics,
///   lifetimes, where clauses and `impl Trait` arguments are fine; the signature, visibility,
///   docs and other attributes are kept as written.
/// * It returns `Result<T, E>` (aliases such as `std::io::Result<T>` and `anyhow::Result<T>`
///   are fine) where `E: From<`[`Rejection`]`> + 'static`: rejections (open breaker, full
///   bulkhead, timeouts) come back as `Err`. A missing `From` impl is reported at the return
///   type, naming the impl to add.
/// * The body runs once per attempt. `?` and `return` end the attempt, not the retry loop.
/// * References are copied, and `&mut` references (`&mut self` included) re-borrowed, for each
///   attempt. An argument taken by value is cloned for each attempt when the original is still
///   needed after it (`retries`, or a `fallback` to hand it to), and moved into the single
///   attempt otherwise; one the body never names is left alone. A by-value argument that must
///   be cloned and is not `Clone` is a compile error at that argument.
/// * The future stays `Send` whenever the function's own future is.
///
/// ```
/// use resilient::{Rejection, resilient};
/// # #[derive(Debug)] struct Error(Option<Rejection>);
/// # impl From<Rejection> for Error { fn from(r: Rejection) -> Self { Error(Some(r)) } }
///
/// #[derive(Clone)]
/// struct Request { body: Vec<u8> }
///
/// async fn send(request: Request) -> Result<usize, Error> {
///     # let _ = request.body.len();
///     Err(Error(None)) // the network is down
/// }
///
/// #[resilient(retries = 2, backoff = "10ms")]
/// async fn post(request: Request, attempts: &mut u32) -> Result<usize, Error> {
///     *attempts += 1;
///     let sent = send(request).await?; // consumes this attempt's copy of `request`
///     Ok(sent)
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut attempts = 0;
/// assert!(post(Request { body: vec![1, 2] }, &mut attempts).await.is_err());
/// assert_eq!(attempts, 3);
/// # }
/// ```
///
/// # Which errors are retried
///
/// An error type that implements [`Transient`] says itself which errors are worth retrying, and
/// may ask for a least delay ([`Transient::retry_after`]); [`std::io::Error`] implements it by
/// kind. `retry_if = path` overrides that choice (a `retry_after` hint still applies). Otherwise
/// every error is retried. Rejections are not: an open breaker or a full bulkhead ends the call
/// at once, while an attempt that timed out is retried.
///
/// ```
/// use resilient::{Rejection, Transient, resilient};
///
/// #[derive(Debug)]
/// enum ApiError { NotFound, Unavailable, Rejected(Rejection) }
/// impl From<Rejection> for ApiError {
///     fn from(rejection: Rejection) -> Self { ApiError::Rejected(rejection) }
/// }
/// impl Transient for ApiError {
///     fn is_transient(&self) -> bool { !matches!(self, ApiError::NotFound) }
/// }
///
/// #[resilient(retries = 3)]
/// async fn user(id: u32, attempts: &mut u32) -> Result<String, ApiError> {
///     *attempts += 1;
///     if id == 0 { Err(ApiError::NotFound) } else { Err(ApiError::Unavailable) }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut attempts = 0;
/// let _ = user(0, &mut attempts).await;
/// assert_eq!(attempts, 1, "NotFound is not transient");
/// # }
/// ```
///
/// # Fallback
///
/// `fallback = path` names a function, `async` or plain, that takes the annotated function's
/// arguments (receiver first) followed by the error, and returns the same `Result`. It runs when
/// the call still fails after its retries, or was rejected; it sees the final error, whatever
/// produced it. In a method, a bare name is a method of `Self` (`fallback = cached_price` means
/// `Self::cached_price`); write a free function as a path (`fallback = self::cached_price`). A
/// fallback with the wrong arguments or return type is a compile error at the path. Each one
/// served is counted in the call site's metrics. Arguments passed to a fallback must be bound
/// to names (destructure them in the body).
///
/// # Breakers, bulkheads and the call site
///
/// `breaker` and `bulkhead` name entries of the process-wide [`registry()`]: every call site
/// naming `"feature_store"` shares one breaker, so evidence from all of them adds up. Declare
/// them at startup ([`Registry::declare_breaker`], [`Registry::declare_bulkhead`]); a name used
/// without a declaration gets the registry's default configuration and one warning. Each
/// annotated function builds its [`Policy`] once, on its first call, and keeps it in a `static`:
/// later calls do no registry lookup. [`Registry::call_site_metrics`] lists each call site by
/// name with its calls, retries, fallbacks and latency, and [`Registry::bypass_call_site`] turns
/// one off at run time.
///
/// # Call-site names
///
/// Metrics, a configuration file's `[call_sites."…"]` and the kill switch find a call site by
/// its name, so each must have its own. Without a `name` key, a free function is
/// `module::function` and a method (a function with a receiver, or that names `Self`) is
/// `Type::method`, the type's path as [`std::any::type_name`] writes it without generic
/// arguments: `Users::get` and `Orders::get` in `shop` are `shop::Users::get` and
/// `shop::Orders::get`.
///
/// How: the attribute sees the method but not its impl, and the call site's `static` cannot
/// name `Self` (E0401), so the first call names it, from the function body, where `Self` is in
/// scope; its policy, and so its metrics, configuration and kill switch, is built right after
/// under that name (later calls pay one atomic load). Until that first call,
/// [`Registry::call_sites`] shows the name as `shop::{Self}::get`
/// ([`callsite::CallSiteInfo::current_name`], [`callsite::CallSiteInfo::is_name_pending`]). Consequences:
///
/// * one `static` serves every instantiation of a generic type, hence no generic arguments in
///   the name, and every implementor of a trait's default body, which takes the name of the
///   first type to call it: give a default body a `name`;
/// * an associated function that never names `Self` cannot be told from a free function and
///   is `module::function`;
/// * [`Registry::validate`] reports every name two call sites share, with both places, from
///   link time for free functions and `name` keys, and for methods once they have run.
///
/// # Other attributes
///
/// * `#[async_trait]` on the impl: put `#[resilient]` on the method; it recognises the boxed
///   future `#[async_trait]` writes and wraps the async block inside.
/// * `#[tracing::instrument]`: above `#[resilient]`, it opens one span per attempt; below it,
///   one span around all attempts.
///
/// # Testing
///
/// Timeouts and backoff run on tokio's clock, so under paused time
/// (`#[tokio::test(start_paused = true)]`) a test of a 2 s timeout finishes at once and measures
/// time exactly:
///
/// ```
/// use std::time::Duration;
/// use resilient::{Rejection, resilient};
///
/// #[derive(Debug)]
/// struct Error(Rejection);
/// impl From<Rejection> for Error {
///     fn from(rejection: Rejection) -> Self { Error(rejection) }
/// }
///
/// #[resilient(timeout = "2s", retries = 1, backoff = "100ms", jitter = "none")]
/// async fn hangs() -> Result<(), Error> {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let started = tokio::time::Instant::now();
/// let error = hangs().await.unwrap_err();
/// assert!(error.0.is_timeout());
/// assert_eq!(started.elapsed(), Duration::from_millis(4100)); // 2 s, 100 ms, 2 s
/// # }
/// ```
///
/// # What it expands to
///
/// The signature stays; the body becomes a loop over attempts, driven by an [`Execution`]:
///
/// ```text
/// async fn price(&self, sku: &str) -> Result<u64, PricingError> {
///     static SITE: CallSite = CallSite::new(Spec { name: "app::{Self}::price", .. });
///     SITE.name_after(type_name::<Self>); // a method: `app::Pricing::price` from its first call
///     let mut run = start::<Result<u64, PricingError>>(&SITE); // policy built on first use
///     let result = loop {
///         let attempt = run.attempt(async move { /* the body */ }).await;
///         if let Next::Return(result) = run.next(attempt, |error| classify(error)).await {
///             break result;
///         }
///     };
///     match result {
///         Err(error) => Self::cached_price(self, sku, error),
///         ok => ok,
///     }
/// }
/// ```
pub use resilient_macros::resilient;
