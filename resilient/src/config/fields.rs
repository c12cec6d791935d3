//! The field types a configuration file writes as text: durations, trip kinds, window kinds,
//! jitter.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::backoff::Jitter;

/// A duration written as text: `"250ms"`, `"2s"`, `"1m30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HumanDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"2s\" or \"1m30s\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(text.trim())
                    .map(HumanDuration)
                    .map_err(|error| {
                        E::custom(format_args!(
                            "invalid duration {text:?} ({error}): expected a duration such as \"250ms\", \"2s\" or \"1m30s\""
                        ))
                    })
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// `latency_slo = "p99 < 300ms"`: a quantile as a percentile, then the latency it must stay
/// under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SloSpec {
    pub(super) quantile: f64,
    pub(super) limit: Duration,
}

impl<'de> Deserialize<'de> for SloSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = SloSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a latency objective such as \"p99 < 300ms\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<SloSpec, E> {
                SloSpec::parse(text).ok_or_else(|| {
                    E::custom(format_args!(
                        "invalid latency objective {text:?}: expected a percentile above 0 and below 100, `<`, and a duration, such as \"p99 < 300ms\" or \"p99.9 < 1s\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl SloSpec {
    fn parse(text: &str) -> Option<SloSpec> {
        let (quantile, limit) = text.split_once('<')?;
        let percent: f64 = quantile
            .trim()
            .strip_prefix(['p', 'P'])?
            .trim()
            .parse()
            .ok()?;
        let limit = humantime::parse_duration(limit.trim()).ok()?;
        (percent > 0.0 && percent < 100.0).then_some(SloSpec {
            quantile: percent / 100.0,
            limit,
        })
    }
}

/// A duration, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OptionalDuration(pub(super) Option<Duration>);

impl<'de> Deserialize<'de> for OptionalDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = OptionalDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", or \"off\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<OptionalDuration, E> {
                if text.trim() == "off" {
                    return Ok(OptionalDuration(None));
                }
                HumanDuration::visit(text).map(|d| OptionalDuration(Some(d.0)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl HumanDuration {
    pub(super) fn visit<E: de::Error>(text: &str) -> Result<HumanDuration, E> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|error| {
                E::custom(format_args!(
                    "invalid duration {text:?} ({error}): expected a duration such as \"250ms\", \"2s\" or \"1m30s\", or \"off\""
                ))
            })
    }
}

/// `trip = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TripKind {
    FailureRate,
    ConsecutiveFailures,
    FailureCount,
}

impl TripKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TripKind::FailureRate => "failure_rate",
            TripKind::ConsecutiveFailures => "consecutive_failures",
            TripKind::FailureCount => "failure_count",
        }
    }
}

/// `adaptive = "aimd" | "vegas"` (bulkheads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum LimitKind {
    Aimd,
    Vegas,
}

/// `sliding_window_type = "count" | "time"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum WindowKind {
    Count,
    Time,
}

/// `jitter = "none" | "full" | "equal" | "decorrelated"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum JitterKind {
    None,
    Full,
    Equal,
    Decorrelated,
}

impl From<JitterKind> for Jitter {
    fn from(kind: JitterKind) -> Jitter {
        match kind {
            JitterKind::None => Jitter::None,
            JitterKind::Full => Jitter::Full,
            JitterKind::Equal => Jitter::Equal,
            JitterKind::Decorrelated => Jitter::Decorrelated,
        }
    }
}
