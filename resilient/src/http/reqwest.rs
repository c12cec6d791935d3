//! `reqwest` (feature `reqwest`): its errors and responses, classified by the `http` core.

use super::{HttpError, HttpErrorKind};
use crate::retry::Transient;

/// What a `reqwest::Error` is, by the module's rule.
pub(crate) fn kind_of(error: &::reqwest::Error) -> HttpErrorKind {
    if let Some(status) = error.status() {
        HttpErrorKind::Status(status)
    } else if error.is_timeout() {
        // Checked before `is_connect`: a connect that timed out is a timeout.
        HttpErrorKind::Timeout
    } else if error.is_connect() {
        HttpErrorKind::Connect
    } else if error.is_builder() || error.is_redirect() || error.is_decode() {
        HttpErrorKind::Local
    } else {
        // Sending or reading the body failed once connected: the server may have the request.
        HttpErrorKind::Interrupted
    }
}

/// `reqwest::Error` as it is: connection failures and timeouts are transient; an error from
/// `error_for_status` classifies by its status but carries no `Retry-After` (reqwest drops the
/// headers), which is why [`ResponseExt::check_status`] is the better way to check a status.
/// Every breaker also counts a `reqwest::Error` by the same rule, without configuration.
impl Transient for ::reqwest::Error {
    fn is_transient(&self) -> bool {
        kind_of(self).is_transient(false)
    }
}

impl From<::reqwest::Error> for HttpError {
    fn from(error: ::reqwest::Error) -> Self {
        HttpError::new(kind_of(&error)).with_source(error)
    }
}

/// Checks a `reqwest::Response`'s status by the module's rule, keeping its `Retry-After`.
///
/// ```no_run
/// use resilient::http::{HttpError, ResponseExt};
/// use resilient::resilient;
///
/// #[resilient(breaker = "catalog", retries = 3)]
/// async fn product(client: &reqwest::Client, id: u32) -> Result<String, HttpError> {
///     let url = format!("http://catalog.internal/products/{id}");
///     // `?` converts a `reqwest::Error` (connection refused, timeout) into an `HttpError`.
///     let response = client.get(url).send().await?.check_status()?;
///     Ok(response.text().await?)
/// }
/// ```
///
/// A 503 with `Retry-After: 2` is retried no sooner than 2 s later; a 404 is returned at once
/// and leaves the `catalog` breaker as it was; a 500 counts against the breaker and is
/// returned (add `.map_err(HttpError::idempotent)` to retry it on an idempotent call).
pub trait ResponseExt: Sized {
    /// `Ok(self)` for a status below 400; otherwise an [`HttpError`] with the status and the
    /// wait the `Retry-After` header asks for. The response is dropped with its body.
    fn check_status(self) -> Result<Self, HttpError>;
}

impl ResponseExt for ::reqwest::Response {
    fn check_status(self) -> Result<Self, HttpError> {
        HttpError::check(self.status(), self.headers())?;
        Ok(self)
    }
}
