//! The error of a service behind a [`PolicyLayer`](super::PolicyLayer).

use std::fmt;

use crate::error::Rejection;

/// tower's boxed error type (`tower::BoxError`), spelled out to need no dependency on `tower`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call through a [`PolicyService`](super::PolicyService) failed: the inner service's
/// own error, or `resilient`'s refusal. Match on it to answer 503 or 504 for a
/// [`Rejection`]. Where a stack wants tower's `BoxError`,
/// [`into_box_error`](Self::into_box_error) boxes the rejection itself, so that
/// `downcast_ref::<Rejection>()` finds it as it finds tower's own `Elapsed` or `Overloaded`.
///
/// It is transparent, as `thiserror`'s `#[error(transparent)]`: its message and its source are
/// those of what it holds, so an error report does not print the same message twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error<E> {
    /// An open or full breaker, a full bulkhead, or a timeout refused or cut short the call.
    Rejected(Rejection),
    /// The inner service failed (its last attempt, after any retries).
    Service(E),
}

impl<E> Error<E> {
    /// The rejection, if `resilient` refused or cut short the call.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected(rejection) => Some(rejection),
            Error::Service(_) => None,
        }
    }

    /// The inner service's error, if it failed by itself.
    pub fn into_service_error(self) -> Option<E> {
        match self {
            Error::Service(error) => Some(error),
            Error::Rejected(_) => None,
        }
    }
}

impl<E: Into<BoxError>> Error<E> {
    /// Boxes what it holds, for stacks typed with tower's `BoxError`: the rejection itself or
    /// the service's own error, each downcastable to its type.
    pub fn into_box_error(self) -> BoxError {
        match self {
            Error::Rejected(rejection) => Box::new(rejection),
            Error::Service(error) => error.into(),
        }
    }
}

impl<E> From<Rejection> for Error<E> {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(rejection) => rejection.fmt(f),
            Error::Service(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rejected(rejection) => rejection.source(),
            Error::Service(error) => error.source(),
        }
    }
}
