//! Method-resolution ("autoref") specialisation, which a blanket impl cannot do (coherence):
//! an error's [`Transient`] impl when it has one, an `async` fallback and a plain one alike,
//! and the per-attempt copy of an argument.

use std::future::{Future, Ready};

use crate::retry::{Classification, Transient};

/// An error to classify: [`ClassifyTransient`] applies when it implements [`Transient`],
/// [`ClassifyAny`] otherwise (every error worth retrying).
#[derive(Debug)]
pub struct Classify<'a, E>(pub &'a E);

/// Picked by method resolution when the error implements [`Transient`].
pub trait ClassifyTransient {
    /// What the error's [`Transient`] impl says.
    fn __resilient_classify(&self) -> Classification;
}

impl<E: Transient> ClassifyTransient for Classify<'_, E> {
    fn __resilient_classify(&self) -> Classification {
        Classification::of(self.0)
    }
}

/// Picked by method resolution (one auto-reference later) for every other error.
pub trait ClassifyAny {
    /// Every error is worth retrying.
    fn __resilient_classify(&self) -> Classification;
}

impl<E> ClassifyAny for &Classify<'_, E> {
    fn __resilient_classify(&self) -> Classification {
        Classification::RETRY
    }
}

/// Applies a `retry_if` predicate: it decides whether to retry, while a `Retry-After` hint
/// from a [`Transient`] impl still sets the least delay. The error comes first, so that a
/// predicate of the wrong type is what the compiler reports.
pub fn retry_if<E, P>(error: &E, base: Classification, predicate: P) -> Classification
where
    P: FnOnce(&E) -> bool,
{
    Classification {
        transient: predicate(error),
        ..base
    }
}

/// What an `async` fallback returns: a future to await.
#[derive(Debug, Clone, Copy)]
pub struct AsyncFallback;

/// What a plain fallback returns: the result itself.
#[derive(Debug, Clone, Copy)]
pub struct PlainFallback;

impl AsyncFallback {
    /// The fallback's future, to await.
    pub fn resolve<F: Future>(self, future: F) -> F {
        future
    }
}

impl PlainFallback {
    /// The fallback's result, as a future that is ready at once.
    pub fn resolve<T>(self, value: T) -> Ready<T> {
        std::future::ready(value)
    }
}

/// Picked by method resolution when the fallback returned a future.
pub trait FallbackIsFuture {
    /// The fallback is `async`.
    fn __resilient_fallback_kind(&self) -> AsyncFallback {
        AsyncFallback
    }
}

impl<F: Future> FallbackIsFuture for F {}

/// Picked by method resolution (one auto-reference later) for a plain value.
pub trait FallbackIsValue {
    /// The fallback is a plain function.
    fn __resilient_fallback_kind(&self) -> PlainFallback {
        PlainFallback
    }
}

impl<T> FallbackIsValue for &T {}

/// Says, at the argument, that an attempt needs its own copy of it.
#[diagnostic::on_unimplemented(
    message = "`#[resilient]` clones this argument for each attempt, but `{Self}` is not `Clone`",
    label = "cloned before each attempt, so that a retry or the fallback still has it",
    note = "implement or derive `Clone`, or take the argument by reference; without `retries` and `fallback` it is moved, not cloned"
)]
pub trait CloneArg: Clone {}

impl<T: Clone> CloneArg for T {}

/// A copy of a by-value argument for one attempt.
pub fn clone_arg<T: CloneArg>(argument: &T) -> T {
    argument.clone()
}
