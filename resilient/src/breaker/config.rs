//! What a circuit breaker trips on, how long it stays open and how it probes for recovery.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use super::slo::LatencySlo;
use crate::error::ConfigError;
use crate::timeout::check_duration;

/// Most half-open probes a breaker may allow (and successes it may require): they share the
/// breaker's 64-bit state word.
pub const MAX_PROBES: u32 = 4095;

/// When a closed breaker opens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TripPolicy {
    /// Open after this many failures in a row; any success starts the count over.
    ConsecutiveFailures(u32),
    /// Open once this many failures happened within the last `within`, whatever the successes
    /// ("5 failures in the last 10 s").
    FailureCount {
        /// Failures that open the breaker.
        failures: u32,
        /// How far back failures count.
        within: Duration,
    },
    /// Open once the failure rate over a sliding window reaches `threshold` (and, when slow
    /// calls are configured, once the slow-call rate reaches its own threshold).
    FailureRate {
        /// Rate in (0, 1] at or above which the breaker opens.
        threshold: f64,
        /// The calls the rate is taken over.
        window: SlidingWindow,
        /// Calls the window must hold before a rate is judged.
        minimum_calls: u32,
    },
}

/// The calls a rate is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `N` calls.
    Calls(u32),
    /// The calls of the last `D`, kept in 20 buckets of `D / 20` (so a call leaves the window
    /// between `0.95 D` and `D` after it finished).
    Time(Duration),
}

/// Latency "gray failures": calls slower than `duration` count as slow even when they succeed,
/// and a slow-call rate at or above `rate_threshold` opens the breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCalls {
    /// A call taking at least this long is slow.
    pub duration: Duration,
    /// Slow-call rate in (0, 1] at or above which the breaker opens.
    pub rate_threshold: f64,
}

/// A rule deciding whether an error counts against the dependency.
type Classifier = Arc<dyn Fn(&dyn Any) -> Option<bool> + Send + Sync>;

/// A circuit breaker's settings. Build one with [`BreakerConfig::default`] and the `with_*`
/// methods; the registry validates it when the breaker is declared, naming the breaker in any
/// [`ConfigError`].
///
/// | field | default |
/// |---|---|
/// | trip policy | failure rate ≥ 50 % over the last 100 calls, judged from 20 calls on |
/// | slow calls | off |
/// | latency objective | off |
/// | open wait | 30 s, growing ×1 (constant), at most 5 min |
/// | half-open | 3 probes in flight, 3 successes close, reopen after 60 s without closing |
/// | failures | every error counts |
#[derive(Clone)]
pub struct BreakerConfig {
    /// Shared by clones until one of them is changed: breakers made from one configuration
    /// (a family's keys, a registry's defaults) hold one copy of it, not one each.
    pub(crate) settings: Arc<Settings>,
}

/// The fields of a [`BreakerConfig`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) trip: TripPolicy,
    pub(crate) slow_calls: Option<SlowCalls>,
    pub(crate) latency_slo: Option<LatencySlo>,
    pub(crate) open_wait: Duration,
    pub(crate) open_wait_multiplier: f64,
    pub(crate) max_open_wait: Duration,
    pub(crate) half_open_probes: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) max_half_open: Option<Duration>,
    pub(crate) classifiers: Vec<Classifier>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::from_settings(Settings {
            trip: TripPolicy::FailureRate {
                threshold: 0.5,
                window: SlidingWindow::Calls(100),
                minimum_calls: 20,
            },
            slow_calls: None,
            latency_slo: None,
            open_wait: Duration::from_secs(30),
            open_wait_multiplier: 1.0,
            max_open_wait: Duration::from_secs(300),
            half_open_probes: 3,
            half_open_successes: 3,
            max_half_open: Some(Duration::from_secs(60)),
            classifiers: Vec::new(),
        })
    }
}

impl fmt::Debug for BreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("trip", &self.settings.trip)
            .field("slow_calls", &self.settings.slow_calls)
            .field("latency_slo", &self.settings.latency_slo)
            .field("open_wait", &self.settings.open_wait)
            .field("open_wait_multiplier", &self.settings.open_wait_multiplier)
            .field("max_open_wait", &self.settings.max_open_wait)
            .field("half_open_probes", &self.settings.half_open_probes)
            .field("half_open_successes", &self.settings.half_open_successes)
            .field("max_half_open", &self.settings.max_half_open)
            .field("classifiers", &self.settings.classifiers.len())
            .finish()
    }
}

impl BreakerConfig {
    fn from_settings(settings: Settings) -> Self {
        BreakerConfig {
            settings: Arc::new(settings),
        }
    }

    /// The settings to change, copied first if another configuration shares them.
    pub(crate) fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Opens after `failures` failures in a row.
    pub fn consecutive_failures(failures: u32) -> Self {
        Self::default().with_trip(TripPolicy::ConsecutiveFailures(failures))
    }

    /// Opens once `failures` failures happened within the last `within`.
    pub fn failure_count(failures: u32, within: Duration) -> Self {
        Self::default().with_trip(TripPolicy::FailureCount { failures, within })
    }

    /// Opens once the failure rate over `window` reaches `threshold`, judged from
    /// `minimum_calls` calls on.
    pub fn failure_rate(threshold: f64, window: SlidingWindow, minimum_calls: u32) -> Self {
        Self::default().with_trip(TripPolicy::FailureRate {
            threshold,
            window,
            minimum_calls,
        })
    }

    /// Sets the trip policy.
    pub fn with_trip(mut self, trip: TripPolicy) -> Self {
        self.settings_mut().trip = trip;
        self
    }

    /// Counts calls slower than `duration` as slow, and opens once the slow-call rate reaches
    /// `rate_threshold`. Needs a [`TripPolicy::FailureRate`] window.
    pub fn with_slow_calls(mut self, duration: Duration, rate_threshold: f64) -> Self {
        self.settings_mut().slow_calls = Some(SlowCalls {
            duration,
            rate_threshold,
        });
        self
    }

    /// Opens once the `quantile` latency (0.99 for p99) over the sliding window reaches
    /// `limit`, judged from `minimum_calls` calls on: "p99 under 300 ms". Needs a
    /// [`TripPolicy::FailureRate`] window; shares the slow-call timing, so with
    /// [`with_slow_calls`](Self::with_slow_calls) too, both must use the same duration. See
    /// [`LatencySlo`] for how the quantile is judged.
    pub fn with_latency_slo(mut self, quantile: f64, limit: Duration) -> Self {
        self.settings_mut().latency_slo = Some(LatencySlo { quantile, limit });
        self
    }

    /// How long the breaker stays open before letting probes through.
    pub fn with_open_wait(mut self, wait: Duration) -> Self {
        self.settings_mut().open_wait = wait;
        self
    }

    /// Grows the open wait by `multiplier` on each re-opening in a row (a failed recovery),
    /// up to `max`. A multiplier of 1 keeps it constant.
    pub fn with_open_wait_growth(mut self, multiplier: f64, max: Duration) -> Self {
        self.settings_mut().open_wait_multiplier = multiplier;
        self.settings_mut().max_open_wait = max;
        self
    }

    /// At most `probes` calls in flight while half-open; `successes` successful probes close
    /// the breaker.
    pub fn with_half_open(mut self, probes: u32, successes: u32) -> Self {
        self.settings_mut().half_open_probes = probes;
        self.settings_mut().half_open_successes = successes;
        self
    }

    /// Re-opens a breaker that stayed half-open this long without closing; `None` waits for
    /// the probes forever (they are still released when cancelled).
    pub fn with_max_half_open(mut self, limit: Option<Duration>) -> Self {
        self.settings_mut().max_half_open = limit;
        self
    }

    /// Decides, for errors of type `E`, which count as failures of the dependency. An error for
    /// which `counts` returns false (a 404, a validation error) releases its permit without
    /// being recorded. Rules apply in the order added; errors of other types count.
    pub fn with_failure_predicate<E: Any>(
        mut self,
        counts: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings_mut()
            .classifiers
            .push(Arc::new(move |error: &dyn Any| {
                error.downcast_ref::<E>().map(&counts)
            }));
        self
    }

    /// The trip policy.
    pub fn trip(&self) -> TripPolicy {
        self.settings.trip
    }

    /// The slow-call settings, if any.
    pub fn slow_calls(&self) -> Option<SlowCalls> {
        self.settings.slow_calls
    }

    /// The latency objective, if any.
    pub fn latency_slo(&self) -> Option<LatencySlo> {
        self.settings.latency_slo
    }

    /// The duration at or above which a call counts as slow: the slow-call duration or the
    /// latency objective's limit (they are the same when both are set).
    pub(crate) fn slow_duration(&self) -> Option<Duration> {
        self.settings
            .slow_calls
            .map(|slow| slow.duration)
            .or(self.settings.latency_slo.map(|slo| slo.limit))
    }

    /// Whether `error` counts as a failure under this breaker's predicates. Errors no predicate
    /// speaks for count, except the types the crate classifies itself (with the `http` feature,
    /// `http::HttpError` and `reqwest::Error`: a 404 does not count).
    pub fn counts_as_failure(&self, error: &dyn Any) -> bool {
        self.settings
            .classifiers
            .iter()
            .find_map(|classify| classify(error))
            .or_else(|| crate::known::failure(error))
            .unwrap_or(true)
    }

    /// The open wait after `reopenings` failed recoveries in a row.
    pub(crate) fn open_wait_after(&self, reopenings: u32) -> Duration {
        if self.settings.open_wait_multiplier <= 1.0 || reopenings == 0 {
            return self
                .settings
                .open_wait
                .min(self.settings.max_open_wait.max(self.settings.open_wait));
        }
        let grown = self.settings.open_wait.as_secs_f64()
            * self.settings.open_wait_multiplier.powi(reopenings as i32);
        if grown.is_finite() && grown < self.settings.max_open_wait.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.settings.max_open_wait
        }
    }

    /// The shape of the window this configuration needs; breakers keep their window across a
    /// reconfiguration only while this stays the same.
    pub(crate) fn window_shape(&self) -> WindowShape {
        match self.settings.trip {
            TripPolicy::ConsecutiveFailures(_) => WindowShape::None,
            TripPolicy::FailureCount { within, .. } => WindowShape::Time {
                span: within,
                failures_only: true,
            },
            TripPolicy::FailureRate {
                window: SlidingWindow::Calls(n),
                ..
            } => WindowShape::Count(n),
            TripPolicy::FailureRate {
                window: SlidingWindow::Time(span),
                ..
            } => WindowShape::Time {
                span,
                failures_only: false,
            },
        }
    }

    /// Checks every field, naming the breaker, the field and the value in the error.
    pub fn validate(&self, breaker: &str) -> Result<(), ConfigError> {
        let subject = format!("circuit breaker {breaker:?}");
        let err = |field, value: &dyn fmt::Debug, reason| {
            Err(ConfigError::new(subject.clone(), field, value, reason))
        };
        match self.settings.trip {
            TripPolicy::ConsecutiveFailures(0) => {
                return err("consecutive_failures", &0, "must be at least 1");
            }
            TripPolicy::ConsecutiveFailures(_) => {}
            TripPolicy::FailureCount { failures, within } => {
                if failures == 0 {
                    return err("failure_count", &failures, "must be at least 1");
                }
                check_window_span(within).map_err(|reason| {
                    ConfigError::new(subject.clone(), "failure_count_window", within, reason)
                })?;
            }
            TripPolicy::FailureRate {
                threshold,
                window,
                minimum_calls,
            } => {
                if !is_rate(threshold) {
                    return err("failure_rate_threshold", &threshold, "must be in (0, 1]");
                }
                match window {
                    SlidingWindow::Calls(0) => {
                        return err("sliding_window_size", &0, "must be at least 1 call");
                    }
                    SlidingWindow::Calls(n) if n > 1_000_000 => {
                        return err("sliding_window_size", &n, "must be at most 1000000 calls");
                    }
                    SlidingWindow::Calls(n) if minimum_calls > n => {
                        return err(
                            "minimum_calls",
                            &minimum_calls,
                            "must not exceed sliding_window_size, or the breaker could never open",
                        );
                    }
                    SlidingWindow::Calls(_) => {}
                    SlidingWindow::Time(span) => {
                        check_window_span(span).map_err(|reason| {
                            ConfigError::new(
                                subject.clone(),
                                "sliding_window_duration",
                                span,
                                reason,
                            )
                        })?;
                    }
                }
                if minimum_calls == 0 {
                    return err("minimum_calls", &0, "must be at least 1");
                }
            }
        }
        if let Some(slow) = self.settings.slow_calls {
            if !matches!(self.settings.trip, TripPolicy::FailureRate { .. }) {
                return err(
                    "slow_call_duration",
                    &slow.duration,
                    "needs a failure-rate trip policy: a slow-call rate is taken over its sliding window",
                );
            }
            if slow.duration.is_zero() {
                return err(
                    "slow_call_duration",
                    &slow.duration,
                    "must be greater than zero",
                );
            }
            if !is_rate(slow.rate_threshold) {
                return err(
                    "slow_call_rate_threshold",
                    &slow.rate_threshold,
                    "must be in (0, 1]",
                );
            }
        }
        if let Some(slo) = self.settings.latency_slo {
            self.validate_slo(&subject, slo)?;
        }
        check_duration(&subject, "open_wait", self.settings.open_wait)?;
        check_duration(&subject, "max_open_wait", self.settings.max_open_wait)?;
        if let Some(slow) = self.settings.slow_calls {
            check_duration(&subject, "slow_call_duration", slow.duration)?;
        }
        if self.settings.open_wait.is_zero() {
            return err(
                "open_wait",
                &self.settings.open_wait,
                "must be greater than zero",
            );
        }
        if !(self.settings.open_wait_multiplier.is_finite()
            && self.settings.open_wait_multiplier >= 1.0)
        {
            return err(
                "open_wait_multiplier",
                &self.settings.open_wait_multiplier,
                "must be a finite number of at least 1",
            );
        }
        if self.settings.max_open_wait < self.settings.open_wait {
            return err(
                "max_open_wait",
                &self.settings.max_open_wait,
                "must be at least open_wait",
            );
        }
        if self.settings.half_open_probes == 0 || self.settings.half_open_probes > MAX_PROBES {
            return err(
                "half_open_probes",
                &self.settings.half_open_probes,
                "must be between 1 and 4095",
            );
        }
        if self.settings.half_open_successes == 0 {
            return err("half_open_successes", &0, "must be at least 1");
        }
        if self.settings.half_open_successes > self.settings.half_open_probes {
            return err(
                "half_open_successes",
                &self.settings.half_open_successes,
                "must not exceed half_open_probes",
            );
        }
        if let Some(limit) = self.settings.max_half_open
            && limit.is_zero()
        {
            return err("max_half_open", &limit, "must be greater than zero");
        }
        Ok(())
    }
}

impl BreakerConfig {
    fn validate_slo(&self, subject: &str, slo: LatencySlo) -> Result<(), ConfigError> {
        let err = |field, value: &dyn fmt::Debug, reason| {
            Err(ConfigError::new(subject.to_owned(), field, value, reason))
        };
        if !matches!(self.settings.trip, TripPolicy::FailureRate { .. }) {
            return err(
                "latency_slo",
                &slo,
                "needs a failure-rate trip policy: the quantile is taken over its sliding window",
            );
        }
        if !(slo.quantile > 0.0 && slo.quantile < 1.0) {
            return err("latency_slo", &slo.quantile, "quantile must be in (0, 1)");
        }
        if slo.limit.is_zero() {
            return err("latency_slo", &slo.limit, "limit must be greater than zero");
        }
        if let Some(slow) = self.settings.slow_calls
            && slow.duration != slo.limit
        {
            return err(
                "latency_slo",
                &slo.limit,
                "must use the slow_call_duration's limit: both count calls of at least one duration as slow",
            );
        }
        check_duration(subject, "latency_slo", slo.limit)
    }
}

fn is_rate(value: f64) -> bool {
    value > 0.0 && value <= 1.0
}

fn check_window_span(span: Duration) -> Result<(), &'static str> {
    if span < Duration::from_millis(20) {
        Err("must be at least 20ms (20 buckets of at least 1ms)")
    } else if span > Duration::from_secs(24 * 3600) {
        Err("must be at most 24h")
    } else {
        Ok(())
    }
}

/// What kind of window a configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowShape {
    None,
    Count(u32),
    Time { span: Duration, failures_only: bool },
}

/// Buckets in a time window.
pub(crate) const TIME_BUCKETS: u32 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert_eq!(BreakerConfig::default().validate("x"), Ok(()));
    }

    #[test]
    fn open_wait_grows_to_its_cap() {
        let config = BreakerConfig::default()
            .with_open_wait(Duration::from_secs(10))
            .with_open_wait_growth(2.0, Duration::from_secs(60));
        let waits: Vec<u64> = (0..5)
            .map(|n| config.open_wait_after(n).as_secs())
            .collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
    }

    #[test]
    fn predicates_decide_by_type() {
        #[derive(Debug)]
        struct NotFound;
        let config = BreakerConfig::default().with_failure_predicate(|_: &NotFound| false);
        assert!(!config.counts_as_failure(&NotFound));
        assert!(config.counts_as_failure(&"other error type"));
    }
}
