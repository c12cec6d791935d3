//! What the layer shares with its services: how it tells a transient error from a permanent one
//! (a classifier given to the layer for the service's error type, else the policy's
//! `retry_if` predicates), and how it picks a request's breaker in a family, if it does.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::breaker::CircuitBreaker;
use crate::error::Rejection;
use crate::policy::Policy;
use crate::retry::{Classification, Transient};

use super::Error;

/// A classifier for one error type, erased so that the layer keeps a single type parameter.
pub(super) type Classifier = Arc<dyn Fn(&dyn Any) -> Option<Classification> + Send + Sync>;

/// Picks a request's breaker in a family, erased like [`Classifier`]: `None` for a request of
/// another type, else the key's breaker or the rejection of a refused key.
pub(super) type KeyBreaker =
    Arc<dyn Fn(&dyn Any) -> Option<Result<CircuitBreaker, Rejection>> + Send + Sync>;

/// What every service a layer makes shares: its policy, its classifier and its key.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) policy: Policy,
    pub(super) classify: Option<Classifier>,
    pub(super) key: Option<KeyBreaker>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.policy.fmt(f)
    }
}

/// `classify` for errors of type `E`; other types fall through to the policy.
pub(super) fn classifier<E: Any>(
    classify: impl Fn(&E) -> Classification + Send + Sync + 'static,
) -> Classifier {
    Arc::new(move |error: &dyn Any| error.downcast_ref::<E>().map(&classify))
}

/// What the [`Transient`] impl of `E` says.
pub(super) fn by_transient<E: Transient>(error: &E) -> Classification {
    Classification {
        transient: error.is_transient(),
        retry_after: error.retry_after(),
    }
}

impl Shared {
    /// Whether an attempt's error is worth another attempt.
    pub(super) fn classify<E: 'static>(&self, error: &Error<E>) -> Classification {
        match error {
            Error::Service(error) => self
                .classify
                .as_ref()
                .and_then(|classify| classify(error))
                .unwrap_or_else(|| self.policy.classify(error)),
            Error::Rejected(rejection) => self.policy.classify(rejection),
        }
    }
}
