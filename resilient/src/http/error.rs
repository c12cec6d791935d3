//! The error of one HTTP call, classified once, so that the retry loop and every breaker read
//! the same decision.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use ::http::{HeaderMap, StatusCode};

use super::StatusClass;
use crate::error::Rejection;
use crate::retry::Transient;

/// What went wrong with an HTTP call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// The server answered with this error status (400 or above).
    Status(StatusCode),
    /// No connection could be made: the request was never sent.
    Connect,
    /// The request or its answer did not complete in time.
    Timeout,
    /// The connection broke after the request may have been sent (a reset, a truncated answer).
    Interrupted,
    /// A fault on this side: the request could not be built, or the answer could not be read
    /// as this side expected (a redirect loop, a body that does not decode). It says nothing
    /// about the dependency's health and would fail again.
    Local,
    /// `resilient` refused the call or cut it short.
    Rejected(Rejection),
}

impl HttpErrorKind {
    /// Whether another attempt might succeed; `idempotent` says whether the request may be
    /// applied twice.
    pub fn is_transient(&self, idempotent: bool) -> bool {
        match self {
            HttpErrorKind::Status(status) => {
                StatusClass::of(*status).is_transient()
                    || (idempotent && *status == StatusCode::INTERNAL_SERVER_ERROR)
            }
            HttpErrorKind::Connect | HttpErrorKind::Timeout => true,
            HttpErrorKind::Interrupted => idempotent,
            HttpErrorKind::Local => false,
            HttpErrorKind::Rejected(rejection) => Transient::is_transient(rejection),
        }
    }

    /// Whether the outcome counts as a failure of the dependency (whether the request may be
    /// repeated changes nothing about the dependency's health).
    pub fn counts_as_failure(&self) -> bool {
        match self {
            HttpErrorKind::Status(status) => StatusClass::of(*status).counts_as_failure(),
            HttpErrorKind::Local => false,
            HttpErrorKind::Connect
            | HttpErrorKind::Timeout
            | HttpErrorKind::Interrupted
            | HttpErrorKind::Rejected(_) => true,
        }
    }
}

/// The error of an HTTP call, classified by the rule in [the module](crate::http).
///
/// It implements [`Transient`] (retried when transient, after its `Retry-After`), and every
/// circuit breaker counts it as a failure only when the dependency is at fault: a 404 frees the
/// breaker's permit without being recorded. Neither needs configuring. A `Rejection` converts
/// into it, so a function returning `Result<T, HttpError>` can be protected as it is:
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use resilient::http::HttpError;
/// use resilient::resilient;
///
/// # async fn fetch() -> (StatusCode, HeaderMap) { (StatusCode::OK, HeaderMap::new()) }
/// #[resilient(breaker = "inventory", retries = 3)]
/// async fn stock() -> Result<(), HttpError> {
///     let (status, headers) = fetch().await; // any client
///     HttpError::check(status, &headers)
/// }
/// ```
///
/// A function that returns its own error type keeps the behaviour by delegating: an
/// `impl Transient` that forwards to the wrapped `HttpError`, and
/// [`with_failure_predicate`](crate::BreakerConfig::with_failure_predicate)`(|e: &MyError| ...)`
/// calling [`counts_as_failure`](Self::counts_as_failure).
#[derive(Debug)]
pub struct HttpError {
    kind: HttpErrorKind,
    retry_after: Option<Duration>,
    idempotent: bool,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl HttpError {
    /// An error of this kind, without a `Retry-After` hint or a source.
    pub fn new(kind: HttpErrorKind) -> Self {
        HttpError {
            kind,
            retry_after: None,
            idempotent: false,
            source: None,
        }
    }

    /// `Ok` for a status below 400; otherwise the error the status is, with the wait its
    /// `Retry-After` header asks for.
    pub fn check(status: StatusCode, headers: &HeaderMap) -> Result<(), HttpError> {
        if StatusClass::of(status) == StatusClass::Success {
            return Ok(());
        }
        Err(HttpError::new(HttpErrorKind::Status(status))
            .with_retry_after(super::retry_after(headers)))
    }

    /// Sets the least wait before a retry.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Keeps the client's own error as this one's [`source`](StdError::source).
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Marks the request as safe to apply twice (a GET, a PUT of a whole resource, a request
    /// with an `Idempotency-Key`), so that a 500 and a connection broken mid-request are
    /// retried too. Use it in the call, e.g. `.map_err(HttpError::idempotent)`.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &HttpErrorKind {
        &self.kind
    }

    /// The status the server answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self.kind {
            HttpErrorKind::Status(status) => Some(status),
            _ => None,
        }
    }

    /// The `Rejection`, when `resilient` refused the call or cut it short.
    pub fn rejection(&self) -> Option<&Rejection> {
        match &self.kind {
            HttpErrorKind::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// The least wait before a retry: the server's `Retry-After`, or an open breaker's time
    /// left.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            HttpErrorKind::Rejected(rejection) => self.retry_after.or(rejection.retry_after()),
            _ => self.retry_after,
        }
    }

    /// Whether the request was marked [idempotent](Self::idempotent).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Whether another attempt might succeed.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient(self.idempotent)
    }

    /// Whether the outcome counts as a failure of the dependency.
    pub fn counts_as_failure(&self) -> bool {
        self.kind.counts_as_failure()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HttpErrorKind::Status(status) => write!(f, "HTTP status {status}")?,
            HttpErrorKind::Connect => f.write_str("HTTP connection failed")?,
            HttpErrorKind::Timeout => f.write_str("HTTP request timed out")?,
            HttpErrorKind::Interrupted => f.write_str("HTTP connection broke mid-request")?,
            HttpErrorKind::Local => f.write_str("HTTP request failed on this side")?,
            HttpErrorKind::Rejected(rejection) => return rejection.fmt(f),
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for HttpError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            HttpErrorKind::Rejected(rejection) => Some(rejection),
            _ => self.source.as_deref().map(|source| source as _),
        }
    }
}

impl From<Rejection> for HttpError {
    fn from(rejection: Rejection) -> Self {
        HttpError::new(HttpErrorKind::Rejected(rejection))
    }
}

impl Transient for HttpError {
    fn is_transient(&self) -> bool {
        HttpError::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        HttpError::retry_after(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> HttpError {
        HttpError::new(HttpErrorKind::Status(StatusCode::from_u16(code).unwrap()))
    }

    #[test]
    fn it_travels_like_any_error() {
        fn boxable<E: StdError + Send + Sync + 'static>() {}
        boxable::<HttpError>();
    }

    #[test]
    fn a_500_is_retried_only_when_idempotent() {
        assert!(!status(500).is_transient());
        assert!(status(500).idempotent().is_transient());
        assert!(status(500).counts_as_failure());
        assert!(!status(501).idempotent().is_transient());
        assert!(!status(404).idempotent().is_transient());
        assert!(!status(404).counts_as_failure());
    }

    #[test]
    fn transport_errors_classify_by_kind() {
        let of = |kind| HttpError::new(kind);
        assert!(of(HttpErrorKind::Connect).is_transient());
        assert!(of(HttpErrorKind::Timeout).counts_as_failure());
        assert!(!of(HttpErrorKind::Interrupted).is_transient());
        assert!(of(HttpErrorKind::Interrupted).idempotent().is_transient());
        assert!(!of(HttpErrorKind::Local).is_transient());
        assert!(!of(HttpErrorKind::Local).counts_as_failure());
    }

    #[test]
    fn a_rejection_keeps_its_wait() {
        let error = HttpError::from(Rejection::CircuitOpen {
            breaker: "api".into(),
            retry_after: Some(Duration::from_secs(4)),
        });
        assert_eq!(error.retry_after(), Some(Duration::from_secs(4)));
        assert!(error.rejection().is_some());
        assert!(error.to_string().contains("`api`"));
    }

    #[test]
    fn check_passes_success_and_classifies_errors() {
        assert!(HttpError::check(StatusCode::OK, &HeaderMap::new()).is_ok());
        let error = HttpError::check(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new()).unwrap_err();
        assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        assert!(error.is_transient());
    }
}
