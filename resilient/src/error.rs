//! The errors `resilient` itself produces: [`Rejection`] for calls it refused or cut short, and
//! [`ConfigError`] for a configuration it will not run.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A call that `resilient` refused to run or stopped before it finished.
///
/// Every variant means "the dependency is protected right now", so an HTTP service maps all of
/// them to `503 Service Unavailable`, with [`Rejection::retry_after`] as the `Retry-After` header
/// where it is known:
///
/// ```
/// use resilient::Rejection;
///
/// fn status_and_retry_after(rejection: &Rejection) -> (u16, Option<u64>) {
///     (503, rejection.retry_after().map(|d| d.as_secs().max(1)))
/// }
/// ```
///
/// Your own error type absorbs it with a `From` impl (`thiserror`'s `#[from]` writes it for you;
/// `anyhow::Error` and `std::io::Error` accept it as they are), which is all `?` and the
/// `#[resilient]` attribute need.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The circuit breaker is open (or was forced open): the dependency is failing and calls
    /// fail fast instead of piling up.
    CircuitOpen {
        /// The breaker's name.
        breaker: Arc<str>,
        /// How long until the breaker lets a probe through; `None` when an operator forced it
        /// open and no time is known.
        retry_after: Option<Duration>,
    },
    /// The circuit breaker is half-open and all its probe slots are taken.
    HalfOpenFull {
        /// The breaker's name.
        breaker: Arc<str>,
    },
    /// The bulkhead has no free slot and none freed up within its `max_wait`.
    BulkheadFull {
        /// The bulkhead's name.
        bulkhead: Arc<str>,
        /// Its concurrency limit.
        max_concurrent: usize,
    },
    /// The call ran out of time.
    Timeout {
        /// Which limit ran out.
        kind: TimeoutKind,
        /// The limit that was exceeded.
        limit: Duration,
    },
}

/// Which of the two time limits a [`Rejection::Timeout`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// One attempt ran longer than the per-attempt `timeout`.
    Attempt,
    /// The whole call, attempts and backoff sleeps together, ran past `total_timeout`.
    Total,
}

impl Rejection {
    /// How long a client should wait before trying again, where `resilient` knows it: the time
    /// left until an open breaker admits a probe.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::CircuitOpen { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the call was refused without running (open breaker, no probe slot, full
    /// bulkhead), as opposed to cut short by a timeout.
    pub fn is_rejected_before_running(&self) -> bool {
        !matches!(self, Rejection::Timeout { .. })
    }

    /// Whether this is a timeout of either kind.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Rejection::Timeout { .. })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::CircuitOpen {
                breaker,
                retry_after: Some(wait),
            } => write!(
                f,
                "circuit breaker `{breaker}` is open: calls fail fast; it lets a probe through in {wait:?}"
            ),
            Rejection::CircuitOpen {
                breaker,
                retry_after: None,
            } => write!(
                f,
                "circuit breaker `{breaker}` is forced open by an operator: calls fail fast until it is reset"
            ),
            Rejection::HalfOpenFull { breaker } => write!(
                f,
                "circuit breaker `{breaker}` is half-open and all its probe slots are in use: try again shortly"
            ),
            Rejection::BulkheadFull {
                bulkhead,
                max_concurrent,
            } => write!(
                f,
                "bulkhead `{bulkhead}` is full ({max_concurrent} calls in flight): try again shortly or raise `max_concurrent`"
            ),
            Rejection::Timeout {
                kind: TimeoutKind::Attempt,
                limit,
            } => write!(f, "attempt timed out after {limit:?}"),
            Rejection::Timeout {
                kind: TimeoutKind::Total,
                limit,
            } => write!(
                f,
                "call timed out after {limit:?} in total (attempts and backoff together)"
            ),
        }
    }
}

impl Error for Rejection {}

impl From<Rejection> for std::io::Error {
    fn from(rejection: Rejection) -> Self {
        let kind = if rejection.is_timeout() {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::WouldBlock
        };
        std::io::Error::new(kind, rejection)
    }
}

/// A configuration `resilient` refuses to run, naming what was configured, the field and the
/// value, so the message alone says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    subject: String,
    field: &'static str,
    value: String,
    reason: &'static str,
}

impl ConfigError {
    pub(crate) fn new(
        subject: impl Into<String>,
        field: &'static str,
        value: impl fmt::Debug,
        reason: &'static str,
    ) -> Self {
        ConfigError {
            subject: subject.into(),
            field,
            value: format!("{value:?}"),
            reason,
        }
    }

    /// What was being configured, e.g. `circuit breaker "payments"` or `retry policy`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The offending field, e.g. `failure_rate_threshold`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rejected value, as written by `Debug`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration for {}: `{}` = {} {}",
            self.subject, self.field, self.value, self.reason
        )
    }
}

impl Error for ConfigError {}

/// An operator command named a breaker (or bulkhead) the registry does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    kind: &'static str,
    name: String,
    known: Vec<String>,
}

impl UnknownName {
    pub(crate) fn new(kind: &'static str, name: &str, known: Vec<String>) -> Self {
        UnknownName {
            kind,
            name: name.to_owned(),
            known,
        }
    }

    /// What was looked for: `circuit breaker` or `bulkhead`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The name that matched nothing.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names the registry does hold, sorted.
    pub fn known(&self) -> &[String] {
        &self.known
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no {} named `{}` in this registry", self.kind, self.name)?;
        if self.known.is_empty() {
            write!(f, " (it holds none)")
        } else {
            write!(f, " (known: {})", self.known.join(", "))
        }
    }
}

impl Error for UnknownName {}

/// Why [`Registry::breaker`](crate::Registry::breaker) or
/// [`Registry::bulkhead`](crate::Registry::bulkhead) gave no entry (and, as a [`ConfigError`],
/// why [`PolicyBuilder::build_in`](crate::PolicyBuilder::build_in) refused a new name).
///
/// Both create an undeclared name on first use, and names may come from request data, so the
/// registry bounds what such lookups can create: past the limit a name must be declared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name breaks the naming rule (see [`MAX_NAME_LEN`](crate::MAX_NAME_LEN)).
    InvalidName(ConfigError),
    /// The name is not in the registry and the registry already holds as many entries of this
    /// kind created on first use as
    /// [`Registry::set_implicit_limit`](crate::Registry::set_implicit_limit) allows. Nothing
    /// was created.
    LimitReached {
        /// `circuit breaker`, `bulkhead` or `call site`.
        kind: &'static str,
        /// The refused name.
        name: String,
        /// The limit in force.
        limit: usize,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::InvalidName(error) => error.fmt(f),
            RegistryError::LimitReached { kind, name, limit } => write!(
                f,
                "{kind} `{name}` refused: the registry already holds {limit} {kind}s created on first use, its implicit limit (declare the name, remove unused ones, or raise the limit)"
            ),
        }
    }
}

impl Error for RegistryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RegistryError::InvalidName(error) => Some(error),
            RegistryError::LimitReached { .. } => None,
        }
    }
}

impl From<ConfigError> for RegistryError {
    fn from(error: ConfigError) -> Self {
        RegistryError::InvalidName(error)
    }
}

impl From<RegistryError> for ConfigError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidName(error) => error,
            RegistryError::LimitReached { kind, name, limit } => ConfigError::new(
                format!("{kind} {name:?} (registry's implicit limit: {limit})"),
                "name",
                name,
                "is new and the registry holds as many entries created on first use as its implicit limit allows: declare it, remove unused ones, or raise the limit",
            ),
        }
    }
}

/// Call sites that name breakers or bulkheads nobody declared, from
/// [`Registry::validate`](crate::Registry::validate): one line per offender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    problems: Vec<String>,
}

impl ValidationError {
    pub(crate) fn new(problems: Vec<String>) -> Self {
        ValidationError { problems }
    }

    /// One sentence per offending use.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} problem(s) with the names #[resilient] call sites use:",
            self.problems.len()
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl Error for ValidationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejection_says_when_to_come_back() {
        let rejection = Rejection::CircuitOpen {
            breaker: "payments".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(rejection.retry_after(), Some(Duration::from_secs(3)));
        assert!(rejection.is_rejected_before_running());
        assert_eq!(
            rejection.to_string(),
            "circuit breaker `payments` is open: calls fail fast; it lets a probe through in 3s"
        );
    }

    #[test]
    fn timeouts_map_to_io_timed_out() {
        let rejection = Rejection::Timeout {
            kind: TimeoutKind::Attempt,
            limit: Duration::from_millis(250),
        };
        assert!(!rejection.is_rejected_before_running());
        let io: std::io::Error = rejection.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(io.to_string(), "attempt timed out after 250ms");
    }

    #[test]
    fn config_error_names_subject_field_and_value() {
        let err = ConfigError::new(
            "circuit breaker \"db\"",
            "failure_rate_threshold",
            1.5,
            "must be in (0, 1]",
        );
        assert_eq!(err.field(), "failure_rate_threshold");
        assert_eq!(err.value(), "1.5");
        assert_eq!(
            err.to_string(),
            "invalid configuration for circuit breaker \"db\": `failure_rate_threshold` = 1.5 must be in (0, 1]"
        );
    }
}
