//! The error of a service behind a [`PolicyLayer`](super::PolicyLayer).

use std::fmt;

use crate::error::Rejection;

/// Why a call through a [`PolicyService`](super::PolicyService) failed: the inner service's
/// own error, or `resilient`'s refusal. Match on it to answer 503 or 504 for a
/// [`Rejection`], as tower's own layers leave their `Elapsed` or `Overloaded` for the caller
/// to find; it also converts into tower's `BoxError`.
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
            Error::Rejected(rejection) => Some(rejection),
            Error::Service(error) => Some(error),
        }
    }
}
