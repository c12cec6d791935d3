//! tower integration (the `tower` feature): a [`PolicyLayer`] runs every call of a tower
//! [`Service`](tower_service::Service) through a [`Policy`](crate::Policy), in the attribute's
//! order:
//!
//! ```text
//! total timeout → retry → circuit breaker → bulkhead → attempt timeout → the inner service
//! ```
//!
//! (The fallback stays the caller's: it matches on the [`Error`].)
//!
//! * **Names are shared.** The policy's breaker and bulkhead come from a registry by name, the
//!   global one with [`PolicyBuilder::build`](crate::PolicyBuilder::build) or any other with
//!   [`build_in`](crate::PolicyBuilder::build_in): a breaker named `payments` is one breaker for
//!   every annotated function and every layer that names it.
//! * **Readiness.** With a bulkhead, `poll_ready` reserves a slot (as tower's
//!   `ConcurrencyLimit` does) and is pending while the bulkhead is full; `call` runs its first
//!   attempt in that slot. The wait is the caller's to bound (tower's `load_shed` or `timeout`
//!   in front), since a readiness wait has no call to reject yet. Retries give the slot back
//!   during their backoff and ask the bulkhead again, honouring its `max_wait`. While the
//!   breaker is open, `poll_ready` is ready at once, without a slot and without asking the
//!   inner service: the call will be refused, and waiting for capacity first would turn
//!   failing fast into queueing.
//! * **Admission.** `call` asks the breaker: while it is open (its wait not over) or forced
//!   open, the response future is [`Rejection::CircuitOpen`](crate::Rejection::CircuitOpen),
//!   ready at once, and the inner service is not called. Otherwise the breaker admits each
//!   attempt as it starts (a half-open probe slot is taken only by an attempt that runs).
//! * **Retries** need a second copy of the request, as in tower's own
//!   `retry::Policy::clone_request`: requests that are `Clone` are cloned by default
//!   ([`CloneRequests`]); [`PolicyLayer::clone_requests_with`] takes a function that may decline
//!   (a streaming body), and [`PolicyLayer::send_once`] sends every request once. A request
//!   that cannot be copied is sent once, whatever the policy's retries.
//! * **Errors** are [`Error<E>`]: the inner service's own error, or the
//!   [`Rejection`](crate::Rejection) that refused or cut the call short, so a caller can answer
//!   503 or 504 for the latter. [`Error::into_box_error`] gives tower's `BoxError` with the
//!   rejection itself inside, found by `downcast_ref::<Rejection>()` as tower's `Elapsed` is.
//! * **Cost.** A call that runs: one allocation, the boxed future of the call (its type cannot
//!   be named on stable Rust otherwise), a clone of the inner service (tower's convention for
//!   handing the ready instance to the call) and an `Arc` count for the policy; a clone of the
//!   request per attempt when the policy retries. A call refused by an open breaker: none of
//!   these. Readiness: nothing, except one boxed wait when the bulkhead is full.
//!
//! Errors are classified (worth a retry or not, and how long to wait) by
//! [`PolicyLayer::transient`] (the error type's [`Transient`](crate::Transient) impl, as the
//! attribute uses it) or [`PolicyLayer::classify_with`], else by the policy's `retry_if`
//! predicates; those and the breaker's failure predicate see the inner service's error type,
//! as they see a function's error under the attribute.
//!
//! ```
//! use std::time::Duration;
//! use resilient::tower::{Error, PolicyLayer};
//! use resilient::{Policy, Registry};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new();
//! let policy = Policy::builder("payments_client")
//!     .timeout(Duration::from_secs(2))
//!     .retries(2)
//!     .breaker("payments")
//!     .bulkhead("payments")
//!     .build_in(&registry)?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(PolicyLayer::new(policy))
//!     .service_fn(|amount: u32| async move { Ok::<_, std::io::Error>(amount * 100) });
//!
//! match service.oneshot(42).await {
//!     Ok(cents) => assert_eq!(cents, 4200),
//!     // An open breaker, a full bulkhead or a timeout: answer 503 or 504.
//!     Err(Error::Rejected(rejection)) => println!("unavailable: {rejection}"),
//!     Err(Error::Service(e)) => println!("the payments service failed: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

mod call;
mod classify;
mod clone;
mod error;
mod future;
mod layer;
mod service;

pub use self::clone::{CloneRequest, CloneRequests, SendOnce};
pub use self::error::{BoxError, Error};
pub use self::future::ResponseFuture;
pub use self::layer::PolicyLayer;
pub use self::service::PolicyService;
