//! HTTP classification (feature `http`): which statuses are worth a retry, which count against
//! a circuit breaker, and what a `Retry-After` header asks for.
//!
//! The rule careful HTTP clients follow, over the [`http`] crate's types so that any
//! client can use it:
//!
//! | outcome | retried | counts against the breaker |
//! |---|---|---|
//! | connection refused or reset before sending, timeout | yes | yes |
//! | 408, 429, 502, 503, 504 | yes, after `Retry-After` if given | yes |
//! | 500 | only when the call is marked [idempotent](HttpError::idempotent) | yes |
//! | other 5xx (501, 505, ...) | no | yes |
//! | other 4xx (400, 401, 403, 404, 409, 422, ...) | no | no |
//!
//! A 500 is not retried by default because the server may have applied the request before
//! failing: retrying a payment or an order could apply it twice. Mark a call idempotent (a GET,
//! a PUT of a whole resource, a request carrying an `Idempotency-Key`) to retry its 500s too.
//! Other 4xx say the request itself is wrong: the same request fails again, and a caller's
//! mistake says nothing about the dependency's health, so it must not open the breaker.
//!
//! [`HttpError`] carries that decision: it implements [`Transient`](crate::Transient), so the
//! `#[resilient]` attribute retries it by the rule, and every breaker and [`Policy`] in the
//! crate recognises it without configuration (a breaker's own
//! [`with_failure_predicate`](crate::BreakerConfig::with_failure_predicate) and a policy's
//! [`retry_if`](crate::PolicyBuilder::retry_if) still come first).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
//! use resilient::http::HttpError;
//! use std::time::Duration;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
//! let error = HttpError::check(StatusCode::SERVICE_UNAVAILABLE, &headers).unwrap_err();
//! assert!(error.is_transient() && error.counts_as_failure());
//! assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
//!
//! let not_found = HttpError::check(StatusCode::NOT_FOUND, &HeaderMap::new()).unwrap_err();
//! assert!(!not_found.is_transient() && !not_found.counts_as_failure());
//! ```
//!
//! With the `reqwest` feature, `ResponseExt::check_status` turns a `reqwest::Response` into an
//! [`HttpError`] and `reqwest::Error` converts (and classifies) by itself; with the `axum`
//! feature a [`Rejection`](crate::Rejection) is a 503 or 504 response (see
//! `problem_response`).
//!
//! [`Policy`]: crate::Policy

use std::any::Any;
use std::time::{Duration, SystemTime};

use ::http::header::RETRY_AFTER;
use ::http::{HeaderMap, HeaderValue, StatusCode};

use crate::retry::Classification;
use crate::timeout::MAX_DURATION;

#[cfg(feature = "axum")]
mod axum;
mod error;
#[cfg(feature = "reqwest")]
mod reqwest;

#[cfg(feature = "axum")]
pub use self::axum::problem_response;
#[cfg(feature = "reqwest")]
pub use self::reqwest::ResponseExt;
pub use error::{HttpError, HttpErrorKind};

/// What a response status says about the call and the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusClass {
    /// Below 400: not an error.
    Success,
    /// 408, 429, 502, 503, 504: the dependency is overloaded or briefly away; retry, and count
    /// it against the breaker.
    Transient,
    /// 500 and every other 5xx: the dependency failed. Counts against the breaker; not retried,
    /// since the request may have been applied (see [`HttpError::idempotent`] for 500).
    ServerError,
    /// Every other 4xx: the request is wrong. Returned at once, never retried, and not counted
    /// against the breaker.
    ClientError,
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            408 | 429 | 502 | 503 | 504 => StatusClass::Transient,
            500..=599 => StatusClass::ServerError,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::Success,
        }
    }

    /// Whether another attempt might succeed (for a non-idempotent call).
    pub fn is_transient(self) -> bool {
        self == StatusClass::Transient
    }

    /// Whether the status counts as a failure of the dependency.
    pub fn counts_as_failure(self) -> bool {
        matches!(self, StatusClass::Transient | StatusClass::ServerError)
    }
}

/// The wait a response's `Retry-After` header asks for, from now. See [`parse_retry_after`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// The wait a response's `Retry-After` header asks for, as seen at `now` (the first header
/// when there are several).
pub fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| parse_retry_after(value, now))
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3) as seen at `now`: delay-seconds (`120`) or an
/// HTTP-date (`Fri, 04 Dec 2026 16:00:00 GMT`).
///
/// A date in the past means "now" (`Some(ZERO)`). Whatever the server asks is capped at
/// [`MAX_DURATION`], the longest duration `resilient` accepts anywhere; a
/// `total_timeout` bounds the wait further, since a retry that would start past it is not made.
/// A value that is neither form gives `None`: a malformed hint is ignored, not an error.
///
/// ```
/// use http::HeaderValue;
/// use resilient::http::parse_retry_after;
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("7"), now), Some(Duration::from_secs(7)));
/// let past = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("soon"), now), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still a (hostile) number of seconds: cap it.
        let seconds = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_DURATION));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(
        date.duration_since(now)
            .map_or(Duration::ZERO, |wait| wait.min(MAX_DURATION)),
    )
}

/// Whether a breaker should count `error`, for the error types this module knows.
pub(crate) fn known_failure(error: &dyn Any) -> Option<bool> {
    if let Some(error) = error.downcast_ref::<HttpError>() {
        return Some(error.counts_as_failure());
    }
    #[cfg(feature = "reqwest")]
    if let Some(error) = error.downcast_ref::<::reqwest::Error>() {
        return Some(self::reqwest::kind_of(error).counts_as_failure());
    }
    None
}

/// What the retry loop should do with `error`, for the error types this module knows.
pub(crate) fn known_classification(error: &dyn Any) -> Option<Classification> {
    if let Some(error) = error.downcast_ref::<HttpError>() {
        return Some(Classification::of(error));
    }
    #[cfg(feature = "reqwest")]
    if let Some(error) = error.downcast_ref::<::reqwest::Error>() {
        return Some(Classification::of(error));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: u16) -> StatusClass {
        StatusClass::of(StatusCode::from_u16(code).unwrap())
    }

    #[test]
    fn statuses_classify_by_the_careful_rule() {
        for code in [408, 429, 502, 503, 504] {
            assert_eq!(class(code), StatusClass::Transient, "{code}");
        }
        for code in [500, 501, 505, 507, 599] {
            assert_eq!(class(code), StatusClass::ServerError, "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 499] {
            assert_eq!(class(code), StatusClass::ClientError, "{code}");
        }
        for code in [200, 204, 304] {
            assert_eq!(class(code), StatusClass::Success, "{code}");
        }
        assert!(class(500).counts_as_failure() && !class(500).is_transient());
        assert!(!class(404).counts_as_failure() && !class(404).is_transient());
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_caps() {
        let now = httpdate::parse_http_date("Fri, 04 Dec 2026 16:00:00 GMT").unwrap();
        let parse = |text: &'static str| parse_retry_after(&HeaderValue::from_static(text), now);
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse("Fri, 04 Dec 2026 16:01:30 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse("Fri, 04 Dec 2026 15:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("99999999999999999999999"), Some(MAX_DURATION));
        assert_eq!(parse("Sat, 04 Dec 9999 16:00:00 GMT"), Some(MAX_DURATION));
        assert_eq!(parse("-5"), None);
        assert_eq!(parse("1.5"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("tomorrow"), None);
    }

    #[test]
    fn retry_after_takes_the_header_from_a_map() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }
}
