//! Retries: how many, which errors, and a budget so retries cannot multiply the load on a
//! dependency that is already struggling.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::counter::StripedCounter;
use crate::error::{ConfigError, Rejection};
use crate::timeout::check_duration;

/// Lets an error type say whether retrying can help, and when.
///
/// Both methods have defaults (every error transient, no hint), so an empty impl opts a type in:
///
/// ```
/// use std::time::Duration;
/// use resilient::Transient;
///
/// enum ApiError { RateLimited { retry_in: Duration }, NotFound, Unavailable }
///
/// impl Transient for ApiError {
///     fn is_transient(&self) -> bool {
///         !matches!(self, ApiError::NotFound)
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             ApiError::RateLimited { retry_in } => Some(*retry_in),
///             _ => None,
///         }
///     }
/// }
/// ```
///
/// The `#[resilient]` attribute uses the impl when there is one; the programmatic API takes a
/// predicate ([`PolicyBuilder::retry_if`](crate::PolicyBuilder::retry_if)).
pub trait Transient {
    /// Whether another attempt might succeed. Default: yes.
    fn is_transient(&self) -> bool {
        true
    }

    /// How long the dependency asked us to wait (a `Retry-After` header, a rate-limit reset).
    /// The retry waits at least this long, up to the policy's
    /// [`max_retry_after`](RetryConfig::max_retry_after) (60 s unless set): a dependency may
    /// slow our retries down, not hold a call for as long as it likes. Default: no hint.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Transient for Rejection {
    fn is_transient(&self) -> bool {
        true
    }

    fn retry_after(&self) -> Option<Duration> {
        Rejection::retry_after(self)
    }
}

impl Transient for std::io::Error {
    fn is_transient(&self) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            self.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | TimedOut
                | Interrupted
                | WouldBlock
                | UnexpectedEof
        )
    }
}

/// What the retry loop knows about one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Classification {
    /// Whether another attempt might succeed.
    pub transient: bool,
    /// The least time to wait before it.
    pub retry_after: Option<Duration>,
}

impl Classification {
    /// Transient, without a hint.
    pub const RETRY: Classification = Classification {
        transient: true,
        retry_after: None,
    };

    /// Not worth retrying.
    pub const STOP: Classification = Classification {
        transient: false,
        retry_after: None,
    };

    /// What a [`Transient`] impl says of `error`.
    pub fn of<E: Transient + ?Sized>(error: &E) -> Self {
        Classification {
            transient: error.is_transient(),
            retry_after: error.retry_after(),
        }
    }
}

/// How retries are allowed.
///
/// | field | default |
/// |---|---|
/// | `max_retries` | 0 (one attempt, no retry) |
/// | `backoff` | exponential 100 ms × 2 up to 10 s, full jitter |
/// | `budget` | 20 % of the calls in flight, at least 3 retries at once |
/// | `retry_on_rejection` | false: an open breaker or a full bulkhead ends the call at once |
/// | `max_retry_after` | 60 s ([`DEFAULT_MAX_RETRY_AFTER`]) |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// The share of traffic retries may add; `None` for no budget.
    pub budget: Option<BudgetConfig>,
    /// Whether to back off and try again when the breaker or bulkhead rejects an attempt.
    pub retry_on_rejection: bool,
    /// The longest wait a dependency's hint ([`Transient::retry_after`], a `Retry-After`
    /// header, an open breaker's time to its probe) can ask for before a retry. A longer hint
    /// is cut to this: a server answering `Retry-After: 99999999` slows the retry down by this
    /// much, it does not hold the call for three years. The backoff's own delays are not cut.
    pub max_retry_after: Duration,
}

/// The default [`RetryConfig::max_retry_after`]: a minute, the longest a caller waiting on a
/// retry is likely still waiting.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 0,
            backoff: Backoff::default(),
            budget: Some(BudgetConfig::default()),
            retry_on_rejection: false,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

/// Most retries one policy may make.
pub const MAX_RETRIES: u32 = 100;

impl RetryConfig {
    /// Checks every field.
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        if self.max_retries > MAX_RETRIES {
            return Err(ConfigError::new(
                subject,
                "retries",
                self.max_retries,
                "must be at most 100",
            ));
        }
        self.backoff.validate(subject)?;
        check_duration(subject, "max_retry_after", self.max_retry_after)?;
        if let Some(budget) = self.budget {
            budget.validate(subject)?;
        }
        Ok(())
    }
}

/// A retry budget: retries in flight may be at most `ratio` of the calls in flight, or
/// `min_retries`, whichever is larger (the floor keeps low-traffic callers able to retry).
///
/// With the default 20 %, a total outage turns 100 concurrent callers into at most 120
/// attempts in flight, not 400.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries in flight per call in flight, in (0, 1].
    pub ratio: f64,
    /// Retries allowed in flight whatever the traffic.
    pub min_retries: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_retries: 3,
        }
    }
}

impl BudgetConfig {
    /// Checks every field.
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        if !(self.ratio > 0.0 && self.ratio <= 1.0) {
            return Err(ConfigError::new(
                subject,
                "retry_budget_ratio",
                self.ratio,
                "must be in (0, 1]",
            ));
        }
        Ok(())
    }
}

/// A retry budget shared by every call to one dependency.
pub struct RetryBudget {
    name: Arc<str>,
    config: BudgetConfig,
    /// Calls entered and calls ended; their difference is the calls in flight. Striped, since
    /// every call of the dependency counts in them, from every thread: entering and leaving
    /// are then a store to the calling thread's own cell, not two read-modify-writes of one
    /// shared line. Only a retry reads them.
    started: StripedCounter,
    ended: StripedCounter,
    retries: AtomicUsize,
}

impl RetryBudget {
    /// A budget for the dependency `name`.
    pub fn new(name: &str, config: BudgetConfig) -> Result<Self, ConfigError> {
        config.validate(&format!("retry budget {name:?}"))?;
        Ok(RetryBudget {
            name: name.into(),
            config,
            started: StripedCounter::default(),
            ended: StripedCounter::default(),
            retries: AtomicUsize::new(0),
        })
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts a call in flight until the guard drops.
    #[inline]
    pub fn enter(&self) -> CallGuard<'_> {
        self.started.increment();
        CallGuard(Held::Call(&self.ended))
    }

    fn calls_in_flight(&self) -> usize {
        calls_in_flight(&self.started, &self.ended)
    }

    /// Asks for one retry. `None` means the budget is spent: stop retrying.
    pub fn try_retry(&self) -> Option<CallGuard<'_>> {
        let calls = self.calls_in_flight();
        let allowed = ((calls as f64 * self.config.ratio) as usize).max(self.config.min_retries);
        self.retries
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |retries| {
                (retries < allowed).then_some(retries + 1)
            })
            .ok()
            .map(|_| CallGuard(Held::Retry(&self.retries)))
    }

    /// Calls and retries in flight right now.
    pub fn in_flight(&self) -> (usize, usize) {
        (self.calls_in_flight(), self.retries.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (calls, retries) = self.in_flight();
        f.debug_struct("RetryBudget")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("calls", &calls)
            .field("retries", &retries)
            .finish()
    }
}

/// Calls in flight, from the counts of calls started and ended. `ended` is read first: a call
/// that ends meanwhile was started before, so on a machine that orders loads the difference
/// stays ≥ 0; where relaxed loads may see an older `started`, it saturates at 0 rather than
/// wrapping (a budget that briefly undercounts by the calls ending right then).
pub(crate) fn calls_in_flight(started: &StripedCounter, ended: &StripedCounter) -> usize {
    let ended = ended.get();
    let started = started.get();
    usize::try_from(started.saturating_sub(ended)).unwrap_or(usize::MAX)
}

/// Holds one call or one retry in a budget's count until dropped.
#[derive(Debug)]
pub struct CallGuard<'a>(Held<'a>);

/// What a [`CallGuard`] counts in.
#[derive(Debug)]
enum Held<'a> {
    /// A call: counted as ended when the guard drops.
    Call(&'a StripedCounter),
    /// A retry in flight.
    Retry(&'a AtomicUsize),
}

impl Drop for CallGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.0 {
            Held::Call(ended) => ended.increment(),
            Held::Retry(retries) => {
                retries.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_the_floor_then_the_ratio() {
        let budget = RetryBudget::new(
            "db",
            BudgetConfig {
                ratio: 0.2,
                min_retries: 1,
            },
        )
        .unwrap();
        let calls: Vec<_> = (0..10).map(|_| budget.enter()).collect();
        let first = budget.try_retry().expect("20% of 10 calls is 2 retries");
        let second = budget.try_retry().expect("second retry fits");
        assert!(budget.try_retry().is_none(), "a third would exceed 20%");
        drop(first);
        assert!(budget.try_retry().is_some(), "a finished retry frees room");
        drop((second, calls));
        assert_eq!(budget.in_flight(), (0, 0));
    }

    #[test]
    fn a_call_that_ends_on_another_thread_leaves_the_count() {
        let budget = Arc::new(RetryBudget::new("db", BudgetConfig::default()).unwrap());
        let guards: Vec<_> = (0..4).map(|_| budget.enter()).collect();
        assert_eq!(budget.in_flight(), (4, 0));
        // Ended on threads other than the one that entered them, as a call moved by a
        // multi-thread runtime is.
        std::thread::scope(|scope| {
            for guard in guards {
                scope.spawn(move || drop(guard));
            }
        });
        assert_eq!(budget.in_flight(), (0, 0));
        let again = std::thread::scope(|scope| scope.spawn(|| budget.enter()).join().unwrap());
        assert_eq!(budget.in_flight(), (1, 0));
        drop(again);
        assert_eq!(budget.in_flight(), (0, 0));
    }

    #[test]
    fn io_errors_classify_by_kind() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(Classification::of(&refused).transient);
        assert!(!Classification::of(&denied).transient);
    }

    #[test]
    fn a_hint_cap_beyond_the_clock_limit_is_refused() {
        let config = RetryConfig {
            max_retry_after: crate::MAX_DURATION + Duration::from_secs(1),
            ..RetryConfig::default()
        };
        assert_eq!(config.validate("p").unwrap_err().field(), "max_retry_after");
        let capped = RetryConfig {
            max_retry_after: Duration::ZERO,
            ..RetryConfig::default()
        };
        assert_eq!(capped.validate("p"), Ok(()));
    }

    #[test]
    fn too_many_retries_are_refused() {
        let config = RetryConfig {
            max_retries: 1000,
            ..RetryConfig::default()
        };
        assert_eq!(config.validate("p").unwrap_err().field(), "retries");
    }
}
