//! Error types the runtime classifies by itself, so that the breaker and the retry loop treat
//! them right without per-breaker configuration. Only error outcomes reach these functions.

use std::any::Any;

use crate::retry::Classification;

/// Whether a breaker should count `error`, when its type is one the crate knows.
#[inline]
pub(crate) fn failure(error: &dyn Any) -> Option<bool> {
    #[cfg(feature = "http")]
    if let Some(counts) = crate::http::known_failure(error) {
        return Some(counts);
    }
    #[cfg(feature = "tonic")]
    if let Some(counts) = crate::grpc::known_failure(error) {
        return Some(counts);
    }
    let _ = error;
    None
}

/// What the retry loop should do with `error`, when its type is one the crate knows.
#[inline]
pub(crate) fn classification(error: &dyn Any) -> Option<Classification> {
    #[cfg(feature = "http")]
    if let Some(classification) = crate::http::known_classification(error) {
        return Some(classification);
    }
    #[cfg(feature = "tonic")]
    if let Some(classification) = crate::grpc::known_classification(error) {
        return Some(classification);
    }
    let _ = error;
    None
}
