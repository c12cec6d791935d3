//! `axum` (feature `axum`): a [`Rejection`] is a response a client knows how to wait on.

use std::fmt::Write as _;
use std::time::Duration;

use ::axum::body::Body;
use ::axum::response::{IntoResponse, Response};
use ::http::header::{CONTENT_TYPE, RETRY_AFTER};
use ::http::{HeaderValue, StatusCode};

use crate::error::Rejection;

/// The media type of an RFC 9457 problem details body.
const PROBLEM_JSON: &str = "application/problem+json";

/// `503 Service Unavailable` with `Retry-After` for an open breaker, a half-open breaker with
/// no probe slot and a full bulkhead; `504 Gateway Timeout` for a timeout. The body is RFC 9457
/// problem details naming the dependency; see [`problem_response`].
///
/// A handler returning `Result<_, Rejection>` needs nothing more; an error type of your own
/// that wraps a `Rejection` forwards in one line:
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use resilient::Rejection;
///
/// enum AppError { Upstream(Rejection), NotFound }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         match self {
///             AppError::Upstream(rejection) => rejection.into_response(),
///             AppError::NotFound => axum::http::StatusCode::NOT_FOUND.into_response(),
///         }
///     }
/// }
/// ```
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        problem_response(&self)
    }
}

/// The response for `rejection`, from a borrow (the [`IntoResponse`] impl calls this).
///
/// The body has the RFC 9457 members `type` (a stable `urn:resilient:` identifier per kind,
/// not a link), `title`, `status` and `detail`, and the extension member `dependency`: the
/// breaker's or bulkhead's name (absent for a timeout, which names none). `Retry-After` is in
/// whole seconds, rounded up, at least 1: an open breaker's time left, or 1 s where no time is
/// known (no probe slot, a full bulkhead, a breaker forced open).
///
/// ```
/// use std::time::Duration;
/// use resilient::{Rejection, http::problem_response};
///
/// let response = problem_response(&Rejection::CircuitOpen {
///     breaker: "payments".into(),
///     retry_after: Some(Duration::from_millis(2_100)),
/// });
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "3");
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
pub fn problem_response(rejection: &Rejection) -> Response {
    let problem = Problem::of(rejection);
    let mut response = (problem.status, Body::from(problem.to_json())).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(wait) = problem.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(whole_seconds(wait)));
    }
    response
}

/// Seconds for `Retry-After`: rounded up, since a client retrying early is refused again, and
/// at least 1, since `0` invites an immediate retry storm.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// An RFC 9457 problem.
struct Problem<'a> {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    dependency: Option<&'a str>,
    retry_after: Option<Duration>,
}

impl<'a> Problem<'a> {
    fn of(rejection: &'a Rejection) -> Self {
        let unavailable = |kind, title, detail, name: &'a str, wait: Option<Duration>| Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind,
            title,
            detail,
            dependency: Some(name),
            retry_after: Some(wait.unwrap_or(Duration::ZERO)),
        };
        match rejection {
            Rejection::CircuitOpen {
                breaker,
                retry_after,
            } => unavailable(
                "circuit-open",
                "Dependency unavailable",
                format!("Calls to `{breaker}` are failing; they are refused until it recovers."),
                breaker,
                *retry_after,
            ),
            Rejection::HalfOpenFull { breaker } => unavailable(
                "half-open-full",
                "Dependency recovering",
                format!("`{breaker}` is being probed after failing; try again shortly."),
                breaker,
                None,
            ),
            Rejection::BulkheadFull { bulkhead, .. } => unavailable(
                "bulkhead-full",
                "Dependency busy",
                format!("Too many calls to `{bulkhead}` are in flight; try again shortly."),
                bulkhead,
                None,
            ),
            Rejection::Timeout { .. } => Problem {
                status: StatusCode::GATEWAY_TIMEOUT,
                kind: "timeout",
                title: "Dependency timed out",
                detail: "A dependency did not answer in time.".to_owned(),
                dependency: None,
                retry_after: None,
            },
        }
    }

    fn to_json(&self) -> String {
        let mut json = String::with_capacity(192);
        json.push_str("{\"type\":");
        push_string(&mut json, &format!("urn:resilient:{}", self.kind));
        json.push_str(",\"title\":");
        push_string(&mut json, self.title);
        let _ = write!(json, ",\"status\":{}", self.status.as_u16());
        json.push_str(",\"detail\":");
        push_string(&mut json, &self.detail);
        if let Some(name) = self.dependency {
            json.push_str(",\"dependency\":");
            push_string(&mut json, name);
        }
        json.push('}');
        json
    }
}

/// Appends `text` as a JSON string. Written here rather than pulling in a JSON crate for five
/// members; dependency names are restricted already, but the escaping does not rely on it.
fn push_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2_001)), 3);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut json = String::new();
        push_string(&mut json, "a\"b\\c\nd");
        assert_eq!(json, r#""a\"b\\c\u000ad""#);
    }

    #[test]
    fn a_timeout_is_a_504_without_retry_after() {
        let response = problem_response(&Rejection::Timeout {
            kind: crate::TimeoutKind::Total,
            limit: Duration::from_secs(1),
        });
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }
}
