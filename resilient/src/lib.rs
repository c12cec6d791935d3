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
//! See [`policy`] for the programmatic API and the README for the `#[resilient]` attribute.

#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod backoff;
pub mod breaker;
pub mod bulkhead;
pub mod callsite;
#[cfg(feature = "serde")]
pub mod config;
mod counter;
pub mod error;
pub mod event;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod retry;
pub mod snapshot;
mod sync;
pub mod timeout;
mod window;

#[cfg(all(test, resilient_loom))]
mod loom_tests;

#[doc(hidden)]
pub mod __private;

pub use backoff::{Backoff, Jitter};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, SlidingWindow, TripPolicy};
pub use bulkhead::{Bulkhead, BulkheadConfig};
pub use error::{ConfigError, Rejection, TimeoutKind, UnknownName};
pub use event::{Event, Listeners};
pub use policy::{Execution, Policy, PolicyBuilder};
pub use registry::{Registry, registry};
pub use retry::{Classification, RetryConfig, Transient};
pub use snapshot::Snapshot;
pub use timeout::TimeoutConfig;

/// Wraps an async function in timeouts, retries, a circuit breaker, a bulkhead and a fallback.
pub use resilient_macros::resilient;
