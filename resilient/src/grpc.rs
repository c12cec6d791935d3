//! gRPC through tonic (feature `tonic`): a [`Rejection`] becomes a [`tonic::Status`] a client
//! can act on, and a [`tonic::Status`] tells the retry loop whether another attempt may help.
//!
//! | `Rejection` | `Status` code | metadata |
//! |---|---|---|
//! | open breaker, half-open breaker with every probe slot taken, full bulkhead | `UNAVAILABLE` | `grpc-retry-pushback-ms` when the wait is known; `resilient-dependency` |
//! | attempt or total timeout | `DEADLINE_EXCEEDED` | `resilient-dependency` when the limit belongs to one |
//!
//! In the other direction, [`Transient`] for [`tonic::Status`] retries the codes gRPC's own
//! retry policies name as worth another attempt: `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//! `RESOURCE_EXHAUSTED` and `ABORTED`. A server's `grpc-retry-pushback-ms` trailer is honoured
//! as the retry's least delay, and a negative or malformed one means "do not retry", as the gRPC
//! retry design (A6) specifies. Every other code (`NOT_FOUND`, `INVALID_ARGUMENT`,
//! `PERMISSION_DENIED`, ...) is returned at once.
//!
//! Every breaker knows the status, without configuration: the codes that say the server or the
//! connection failed (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`,
//! `INTERNAL`, `UNKNOWN`, `DATA_LOSS`) count against it; the codes that say the request was
//! wrong or refused (`NOT_FOUND`, `INVALID_ARGUMENT`, `ALREADY_EXISTS`, `PERMISSION_DENIED`,
//! `UNAUTHENTICATED`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `UNIMPLEMENTED`, `CANCELLED`) do not:
//! a dependency that answers them is healthy. A failure predicate set on the breaker still
//! decides first.
//!
//! ```
//! use resilient::{Rejection, Transient};
//! use std::time::Duration;
//! use tonic::{Code, Status};
//!
//! let rejection = Rejection::CircuitOpen {
//!     breaker: "ledger".into(),
//!     retry_after: Some(Duration::from_millis(1500)),
//! };
//! let status = Status::from(rejection);
//! assert_eq!(status.code(), Code::Unavailable);
//! assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "1500");
//!
//! // A client of that server retries after the pushback.
//! assert!(status.is_transient());
//! assert_eq!(status.retry_after(), Some(Duration::from_millis(1500)));
//! ```

use std::any::Any;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::error::Rejection;
use crate::retry::{Classification, Transient};
use crate::timeout::MAX_DURATION;

/// The trailer a gRPC server pushes a client back with: milliseconds to wait before retrying.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// The metadata key naming the protected dependency (the breaker or bulkhead) in a status
/// made from a [`Rejection`].
pub const DEPENDENCY: &str = "resilient-dependency";

impl From<Rejection> for Status {
    fn from(rejection: Rejection) -> Status {
        status_of(&rejection)
    }
}

/// The status a server answers with when `resilient` refused or cut short its call to a
/// dependency: `UNAVAILABLE` with a pushback when it knows the wait, `DEADLINE_EXCEEDED` for a
/// timeout.
pub fn status_of(rejection: &Rejection) -> Status {
    let code = if rejection.is_timeout() {
        Code::DeadlineExceeded
    } else {
        Code::Unavailable
    };
    let mut status = Status::new(code, rejection.to_string());
    let metadata = status.metadata_mut();
    if let Some(wait) = rejection.retry_after() {
        let millis = wait.as_millis().min(u128::from(u64::MAX)).to_string();
        // Digits only: always a valid ASCII value.
        if let Ok(value) = MetadataValue::try_from(millis) {
            metadata.insert(RETRY_PUSHBACK, value);
        }
    }
    // gRPC's ASCII metadata is printable ASCII; a name with other characters is left out,
    // not mangled.
    if let Some(name) = dependency(rejection)
        && name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() || byte == b' ')
        && let Ok(value) = MetadataValue::try_from(name)
    {
        metadata.insert(DEPENDENCY, value);
    }
    status
}

fn dependency(rejection: &Rejection) -> Option<&str> {
    match rejection {
        Rejection::CircuitOpen { breaker, .. } | Rejection::HalfOpenFull { breaker } => {
            Some(breaker)
        }
        Rejection::BulkheadFull { bulkhead, .. } => Some(bulkhead),
        _ => None,
    }
}

/// What a `grpc-retry-pushback-ms` trailer says.
#[derive(Debug, PartialEq, Eq)]
enum Pushback {
    /// No trailer.
    Absent,
    /// Wait this long, then retry.
    Wait(Duration),
    /// Negative or malformed: the server asks for no retry.
    Stop,
}

fn pushback(status: &Status) -> Pushback {
    let Some(value) = status.metadata().get(RETRY_PUSHBACK) else {
        return Pushback::Absent;
    };
    match value.to_str().ok().map(str::trim).map(str::parse::<u64>) {
        Some(Ok(millis)) => Pushback::Wait(Duration::from_millis(millis).min(MAX_DURATION)),
        _ => Pushback::Stop,
    }
}

impl Transient for Status {
    fn is_transient(&self) -> bool {
        let retryable = matches!(
            self.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
        );
        retryable && pushback(self) != Pushback::Stop
    }

    fn retry_after(&self) -> Option<Duration> {
        match pushback(self) {
            Pushback::Wait(wait) => Some(wait),
            Pushback::Absent | Pushback::Stop => None,
        }
    }
}

/// Whether `status` says the dependency failed, as opposed to refusing a wrong request.
pub fn counts_as_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::DataLoss
    )
}

/// The breaker's view of a [`Status`] (see [`crate::known`]).
pub(crate) fn known_failure(error: &dyn Any) -> Option<bool> {
    error.downcast_ref::<Status>().map(counts_as_failure)
}

/// The retry loop's view of a [`Status`], for a plain `Policy` (the attribute asks the
/// [`Transient`] impl itself).
pub(crate) fn known_classification(error: &dyn Any) -> Option<Classification> {
    error.downcast_ref::<Status>().map(Classification::of)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::TimeoutKind;

    fn with_pushback(code: Code, value: &str) -> Status {
        let mut status = Status::new(code, "from the server");
        status
            .metadata_mut()
            .insert(RETRY_PUSHBACK, value.parse().unwrap());
        status
    }

    #[test]
    fn rejections_become_unavailable_or_deadline_exceeded() {
        let open = Status::from(Rejection::CircuitOpen {
            breaker: Arc::from("ledger"),
            retry_after: Some(Duration::from_millis(2500)),
        });
        assert_eq!(open.code(), Code::Unavailable);
        assert_eq!(open.metadata().get(RETRY_PUSHBACK).unwrap(), "2500");
        assert_eq!(open.metadata().get(DEPENDENCY).unwrap(), "ledger");
        assert!(open.message().contains("`ledger` is open"));

        let full = Status::from(Rejection::BulkheadFull {
            bulkhead: Arc::from("ledger_pool"),
            max_concurrent: 8,
        });
        assert_eq!(full.code(), Code::Unavailable);
        assert!(full.metadata().get(RETRY_PUSHBACK).is_none());
        assert_eq!(full.metadata().get(DEPENDENCY).unwrap(), "ledger_pool");

        let probing = Status::from(Rejection::HalfOpenFull {
            breaker: Arc::from("ledger"),
        });
        assert_eq!(probing.code(), Code::Unavailable);

        let late = Status::from(Rejection::Timeout {
            kind: TimeoutKind::Total,
            limit: Duration::from_secs(2),
        });
        assert_eq!(late.code(), Code::DeadlineExceeded);
        assert!(late.metadata().get(DEPENDENCY).is_none());
    }

    #[test]
    fn a_name_metadata_cannot_carry_is_left_out() {
        let status = Status::from(Rejection::HalfOpenFull {
            breaker: Arc::from("café"),
        });
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.metadata().get(DEPENDENCY).is_none());
    }

    #[test]
    fn only_the_retryable_codes_are_transient() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            assert!(Status::new(code, "").is_transient(), "{code:?}");
        }
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::AlreadyExists,
            Code::Unimplemented,
            Code::Internal,
            Code::Cancelled,
            Code::Unknown,
            Code::DataLoss,
            Code::OutOfRange,
        ] {
            assert!(!Status::new(code, "").is_transient(), "{code:?}");
        }
    }

    #[test]
    fn breakers_count_the_servers_failures_not_refused_requests() {
        let config = crate::BreakerConfig::default();
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::DeadlineExceeded,
            Code::Unknown,
        ] {
            assert!(config.counts_as_failure(&Status::new(code, "")), "{code:?}");
        }
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::PermissionDenied,
        ] {
            assert!(
                !config.counts_as_failure(&Status::new(code, "")),
                "{code:?}"
            );
        }
        let counts_everything =
            crate::BreakerConfig::default().with_failure_predicate(|_: &Status| true);
        assert!(counts_everything.counts_as_failure(&Status::not_found("")));
    }

    #[test]
    fn the_servers_pushback_sets_the_delay_or_stops_retrying() {
        let wait = with_pushback(Code::Unavailable, "750");
        assert!(wait.is_transient());
        assert_eq!(wait.retry_after(), Some(Duration::from_millis(750)));

        for refusal in ["-1", "soon", "1.5", ""] {
            let stop = with_pushback(Code::Unavailable, refusal);
            assert!(!stop.is_transient(), "{refusal:?} means do not retry");
            assert_eq!(stop.retry_after(), None);
        }

        let huge = with_pushback(Code::ResourceExhausted, "18446744073709551615");
        assert_eq!(huge.retry_after(), Some(MAX_DURATION));
        assert_eq!(Status::unavailable("").retry_after(), None);
    }
}
