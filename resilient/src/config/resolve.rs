//! Resolution: profiles merged into entries (`default` ← `base` ← entry), each entry converted
//! into its configuration and validated.

use std::collections::{BTreeMap, BTreeSet};

use crate::backoff::{Backoff, Jitter};
use crate::breaker::{BreakerConfig, SlidingWindow, TripPolicy};
use crate::bulkhead::{AdaptiveLimit, BulkheadConfig, LimitAlgorithm};
use crate::hedge::{HedgeConfig, MAX_HEDGES};
use crate::retry::MAX_RETRIES;
use crate::timeout::{TimeoutConfig, check_duration};

use super::error::key_text;
use super::error::{Failure, FileConfigError, Issue};
use super::fields::{LimitKind, TripKind, WindowKind};
use super::raw::{RawBreaker, RawBulkhead, RawCallSite, RawConfig, RawTable};
use super::{CallSiteOverrides, FileConfig};

/// A table: its section and its name.
pub(super) type Level = (&'static str, String);

/// Turns a merged table into a configuration: `(name, merged, own)`, where `own` is what the
/// entry itself sets.
pub(super) type Convert<R, T> = fn(&str, &R, &R) -> Result<T, Issue>;

/// The entries and profiles of one kind.
pub(super) struct Tables<'a, R> {
    pub(super) entries: &'a BTreeMap<String, R>,
    pub(super) profiles: &'a BTreeMap<String, R>,
    pub(super) section: &'static str,
    pub(super) profile_section: &'static str,
}

pub(super) const DEFAULT_PROFILE: &str = "default";

impl<R: RawTable> Tables<'_, R> {
    pub(super) fn names(&self) -> Vec<Level> {
        let entries = self.entries.keys().map(|name| (self.section, name.clone()));
        let profiles = self
            .profiles
            .keys()
            .map(|name| (self.profile_section, name.clone()));
        entries.chain(profiles).collect()
    }

    /// The tables an entry draws from, most specific first: itself, its `base` profile and
    /// that profile's bases, then `default`.
    pub(super) fn chain<'t>(
        &'t self,
        level: Level,
        table: &'t R,
    ) -> Result<Vec<(Level, &'t R)>, Failure> {
        let mut chain = vec![(level, table)];
        let mut seen = BTreeSet::new();
        if chain[0].0.0 == self.profile_section {
            seen.insert(chain[0].0.1.clone());
        }
        loop {
            let (current, table) = chain.last().expect("the chain starts with the entry");
            let (next, explicit) = match table.base() {
                Some(base) => (base.to_owned(), true),
                None if self.profiles.contains_key(DEFAULT_PROFILE) => {
                    (DEFAULT_PROFILE.to_owned(), false)
                }
                None => break,
            };
            if !seen.insert(next.clone()) {
                if !explicit {
                    break; // `default` is already in the chain
                }
                let entry = chain[0].0.clone();
                let error = FileConfigError::new(format!(
                    "`base` = {next:?} makes a cycle of profiles ({} → {next})",
                    chain
                        .iter()
                        .map(|((_, name), _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(" → "),
                ))
                .field("base");
                return Err(Failure {
                    table: Some(current.clone()),
                    ..Failure::at(entry, error)
                });
            }
            let Some(profile) = self.profiles.get(&next) else {
                let known: Vec<_> = self.profiles.keys().map(String::as_str).collect();
                let entry = chain[0].0.clone();
                let error = FileConfigError::new(format!(
                    "`base` = {next:?} names no profile in [{}] (known: {})",
                    self.profile_section,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
                .field("base");
                return Err(Failure {
                    table: Some(current.clone()),
                    ..Failure::at(entry, error)
                });
            };
            chain.push(((self.profile_section, next), profile));
        }
        Ok(chain)
    }

    pub(super) fn resolve_one<T>(
        &self,
        level: Level,
        table: &R,
        convert: Convert<R, T>,
    ) -> Result<T, Failure> {
        let chain = self.chain(level.clone(), table)?;
        let mut merged = table.clone();
        for (_, lower) in &chain[1..] {
            merged.fill_from(lower);
        }
        convert(&level.1, &merged, table).map_err(|issue| {
            // Point at the table that wrote the value: the entry, or the profile it came from.
            let source = chain
                .iter()
                .find(|(_, table)| table.is_set(&issue.field))
                .map(|(level, _)| level.clone());
            let mut message = issue.message;
            if let Some(source) = source.as_ref().filter(|source| **source != level) {
                message.push_str(&format!(" (set in {}.{})", source.0, key_text(&source.1)));
            }
            Failure {
                table: Some(source.unwrap_or_else(|| level.clone())),
                ..Failure::at(level, FileConfigError::new(message).field(issue.field))
            }
        })
    }

    pub(super) fn resolve_default<T>(&self, convert: Convert<R, T>) -> Result<Option<T>, Failure> {
        self.profiles
            .get(DEFAULT_PROFILE)
            .map(|table| {
                let level = (self.profile_section, DEFAULT_PROFILE.to_owned());
                self.resolve_one(level, table, convert)
            })
            .transpose()
    }

    pub(super) fn resolve_all<T>(
        &self,
        convert: Convert<R, T>,
    ) -> Result<BTreeMap<String, T>, Failure> {
        // Profiles other than `default` are partial: they are checked through the entries
        // that use them, but a misspelt `base` in an unused profile is still an error.
        for (name, profile) in self.profiles {
            self.chain((self.profile_section, name.clone()), profile)?;
        }
        self.entries
            .iter()
            .map(|(name, table)| {
                let level = (self.section, name.clone());
                Ok((name.clone(), self.resolve_one(level, table, convert)?))
            })
            .collect()
    }
}

/// The trip policy each trip-specific field belongs to.
pub(super) const TRIP_FIELDS: [(&str, TripKind); 8] = [
    ("failure_rate_threshold", TripKind::FailureRate),
    ("sliding_window_type", TripKind::FailureRate),
    ("sliding_window_size", TripKind::FailureRate),
    ("sliding_window_duration", TripKind::FailureRate),
    ("minimum_calls", TripKind::FailureRate),
    ("consecutive_failures", TripKind::ConsecutiveFailures),
    ("failure_count", TripKind::FailureCount),
    ("failure_count_window", TripKind::FailureCount),
];

pub(super) fn breaker_config(
    name: &str,
    merged: &RawBreaker,
    own: &RawBreaker,
) -> Result<BreakerConfig, Issue> {
    let trip = merged.trip.unwrap_or(TripKind::FailureRate);
    // A field the entry sets for another trip policy would be silently ignored: refuse it.
    for (field, kind) in TRIP_FIELDS {
        if own.is_set(field) && kind != trip {
            return Err(Issue::new(
                field,
                format!(
                    "applies to trip = {:?}, but this breaker's trip is {:?}{}: set trip = {:?} or remove the field",
                    kind.as_str(),
                    trip.as_str(),
                    if merged.trip.is_none() {
                        " (the default)"
                    } else {
                        ""
                    },
                    kind.as_str(),
                ),
            ));
        }
    }
    let required = |field: &str| {
        Issue::new(
            field,
            format!("is required when trip = {:?}", trip.as_str()),
        )
    };
    let policy = match trip {
        TripKind::FailureRate => {
            let TripPolicy::FailureRate {
                threshold,
                window,
                minimum_calls,
            } = BreakerConfig::default().trip()
            else {
                unreachable!("the default trip policy is a failure rate")
            };
            let window = match merged.sliding_window_type.unwrap_or(WindowKind::Count) {
                WindowKind::Count => {
                    if own.sliding_window_duration.is_some() {
                        return Err(Issue::new(
                            "sliding_window_duration",
                            "applies to sliding_window_type = \"time\", but this breaker's window counts calls: set sliding_window_type = \"time\"",
                        ));
                    }
                    let default = match window {
                        SlidingWindow::Calls(calls) => calls,
                        SlidingWindow::Time(_) => 100,
                    };
                    SlidingWindow::Calls(merged.sliding_window_size.unwrap_or(default))
                }
                WindowKind::Time => {
                    if own.sliding_window_size.is_some() {
                        return Err(Issue::new(
                            "sliding_window_size",
                            "applies to sliding_window_type = \"count\", but this breaker's window is a time span: use sliding_window_duration",
                        ));
                    }
                    let span = merged.sliding_window_duration.ok_or_else(|| {
                        Issue::new(
                            "sliding_window_duration",
                            "is required when sliding_window_type = \"time\"",
                        )
                    })?;
                    SlidingWindow::Time(span.0)
                }
            };
            // The built-in minimum (20 calls) shrinks with a smaller count window, so that a
            // window of 10 does not need a minimum of its own to be valid.
            let minimum_calls = merged.minimum_calls.unwrap_or(match window {
                SlidingWindow::Calls(calls) => minimum_calls.min(calls.max(1)),
                SlidingWindow::Time(_) => minimum_calls,
            });
            TripPolicy::FailureRate {
                threshold: merged.failure_rate_threshold.unwrap_or(threshold),
                window,
                minimum_calls,
            }
        }
        TripKind::ConsecutiveFailures => TripPolicy::ConsecutiveFailures(
            merged
                .consecutive_failures
                .ok_or_else(|| required("consecutive_failures"))?,
        ),
        TripKind::FailureCount => TripPolicy::FailureCount {
            failures: merged
                .failure_count
                .ok_or_else(|| required("failure_count"))?,
            within: merged
                .failure_count_window
                .ok_or_else(|| required("failure_count_window"))?
                .0,
        },
    };
    let mut config = BreakerConfig::default().with_trip(policy);
    match (merged.slow_call_duration, merged.slow_call_rate_threshold) {
        (Some(duration), Some(rate)) => config = config.with_slow_calls(duration.0, rate),
        (Some(_), None) => {
            return Err(Issue::new(
                "slow_call_rate_threshold",
                "is required when slow_call_duration is set",
            ));
        }
        (None, Some(_)) => {
            return Err(Issue::new(
                "slow_call_duration",
                "is required when slow_call_rate_threshold is set",
            ));
        }
        (None, None) => {}
    }
    if let Some(slo) = merged.latency_slo {
        config = config.with_latency_slo(slo.quantile, slo.limit);
    }
    if let Some(wait) = merged.open_wait {
        config.settings_mut().open_wait = wait.0;
        // A lone open_wait above the built-in cap raises the cap with it.
        if merged.max_open_wait.is_none() {
            config.settings_mut().max_open_wait = config.settings.max_open_wait.max(wait.0);
        }
    }
    if let Some(multiplier) = merged.open_wait_multiplier {
        config.settings_mut().open_wait_multiplier = multiplier;
    }
    if let Some(max) = merged.max_open_wait {
        config.settings_mut().max_open_wait = max.0;
    }
    if let Some(probes) = merged.half_open_probes {
        config.settings_mut().half_open_probes = probes;
        // Likewise, fewer probes than the built-in success threshold lower the threshold.
        if merged.half_open_successes.is_none() {
            config.settings_mut().half_open_successes =
                config.settings.half_open_successes.min(probes.max(1));
        }
    }
    if let Some(successes) = merged.half_open_successes {
        config.settings_mut().half_open_successes = successes;
    }
    if let Some(limit) = merged.max_half_open {
        config.settings_mut().max_half_open = limit.0;
    }
    config.validate(name)?;
    Ok(config)
}

pub(super) fn bulkhead_config(
    name: &str,
    merged: &RawBulkhead,
    _own: &RawBulkhead,
) -> Result<BulkheadConfig, Issue> {
    let default = BulkheadConfig::default();
    let config = BulkheadConfig {
        max_concurrent: merged.max_concurrent.unwrap_or(default.max_concurrent),
        max_wait: merged.max_wait.map_or(default.max_wait, |wait| wait.0),
        adaptive: adaptive_limit(merged)?,
    };
    config.validate(name)?;
    Ok(config)
}

/// `adaptive = "aimd" | "vegas"` with its bounds (`min_limit`, default 1; `max_limit`,
/// required) and, for AIMD, `slow_call` (required) and `backoff_percent` (default 90).
fn adaptive_limit(merged: &RawBulkhead) -> Result<Option<AdaptiveLimit>, Issue> {
    let Some(kind) = merged.adaptive else {
        let stray = [
            ("min_limit", merged.min_limit.is_some()),
            ("max_limit", merged.max_limit.is_some()),
            ("slow_call", merged.slow_call.is_some()),
            ("backoff_percent", merged.backoff_percent.is_some()),
        ];
        return match stray.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(Issue::new(
                field,
                "applies to an adaptive limit only: set `adaptive = \"aimd\"` or `\"vegas\"`",
            )),
            None => Ok(None),
        };
    };
    let max = merged
        .max_limit
        .ok_or_else(|| Issue::new("max_limit", "is required with `adaptive`"))?;
    let algorithm = match kind {
        LimitKind::Vegas => {
            for (field, set) in [
                ("slow_call", merged.slow_call.is_some()),
                ("backoff_percent", merged.backoff_percent.is_some()),
            ] {
                if set {
                    return Err(Issue::new(field, "applies to `adaptive = \"aimd\"` only"));
                }
            }
            LimitAlgorithm::Vegas
        }
        LimitKind::Aimd => LimitAlgorithm::Aimd {
            slow_call: merged
                .slow_call
                .ok_or_else(|| Issue::new("slow_call", "is required with `adaptive = \"aimd\"`"))?
                .0,
            backoff_percent: merged.backoff_percent.unwrap_or(90),
        },
    };
    Ok(Some(AdaptiveLimit {
        min: merged.min_limit.unwrap_or(1),
        max,
        algorithm,
    }))
}

pub(super) fn call_site_overrides(
    name: &str,
    merged: &RawCallSite,
    _own: &RawCallSite,
) -> Result<CallSiteOverrides, Issue> {
    let subject = format!("call site {name:?}");
    let site = CallSiteOverrides {
        enabled: merged.enabled,
        timeout: merged.timeout.map(|d| d.0),
        total_timeout: merged.total_timeout.map(|d| d.0),
        retries: merged.retries,
        backoff: merged.backoff.map(|d| d.0),
        max_backoff: merged.max_backoff.map(|d| d.0),
        jitter: merged.jitter.map(Jitter::from),
        hedge: merged.hedge.map(|d| d.0),
        hedges: merged.hedges,
        breaker: merged.breaker.clone(),
        bulkhead: merged.bulkhead.clone(),
        cache: merged.cache.map(|d| d.0),
        cache_capacity: merged.cache_capacity,
    };
    TimeoutConfig {
        attempt: site.timeout,
        total: site.total_timeout,
    }
    .validate(&subject)?;
    if let Some(retries) = site.retries
        && retries > MAX_RETRIES
    {
        return Err(Issue::new(
            "retries",
            format!("= {retries} must be at most {MAX_RETRIES}"),
        ));
    }
    for (field, value) in [("backoff", site.backoff), ("max_backoff", site.max_backoff)] {
        if let Some(value) = value {
            check_duration(&subject, field, value)?;
        }
    }
    if site.backoff.is_some_and(|base| base.is_zero()) {
        return Err(Issue::new("backoff", "must be greater than zero"));
    }
    if let (Some(base), Some(max)) = (site.backoff, site.max_backoff) {
        Backoff::exponential(base, 2.0, max).validate(&subject)?;
    }
    check_hedge(&subject, &site)?;
    for (field, name) in [("breaker", &site.breaker), ("bulkhead", &site.bulkhead)] {
        if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
            return Err(Issue::new(field, "must not be empty"));
        }
    }
    if let Some(Some(max_age)) = site.cache {
        crate::cache::check_max_age(&subject, max_age)?;
    }
    if let Some(capacity) = site.cache_capacity {
        crate::cache::check_capacity(&subject, capacity)?;
    }
    Ok(site)
}

/// `hedge` and `hedges` as [`HedgeConfig::validate`] checks them; `hedges` alone is completed
/// by the attribute's `hedge`, so only its range is checked here.
fn check_hedge(subject: &str, site: &CallSiteOverrides) -> Result<(), Issue> {
    if let Some(delay) = site.hedge {
        HedgeConfig::new(delay)
            .with_hedges(site.hedges.unwrap_or(1))
            .validate(subject)?;
    } else if let Some(hedges) = site.hedges
        && !(1..=MAX_HEDGES).contains(&hedges)
    {
        return Err(Issue::new(
            "hedges",
            format!("= {hedges} must be from 1 to {MAX_HEDGES}"),
        ));
    }
    Ok(())
}

impl FileConfig {
    pub(super) fn resolve(raw: RawConfig) -> Result<FileConfig, Failure> {
        let breaker_tables = Tables {
            entries: &raw.breakers,
            profiles: &raw.breaker_profiles,
            section: "breakers",
            profile_section: "breaker_profiles",
        };
        let bulkhead_tables = Tables {
            entries: &raw.bulkheads,
            profiles: &raw.bulkhead_profiles,
            section: "bulkheads",
            profile_section: "bulkhead_profiles",
        };
        let call_site_tables = Tables {
            entries: &raw.call_sites,
            profiles: &raw.call_site_profiles,
            section: "call_sites",
            profile_section: "call_site_profiles",
        };
        for tables in [
            &breaker_tables.names(),
            &bulkhead_tables.names(),
            &call_site_tables.names(),
        ] {
            for (section, name) in tables {
                if name.trim().is_empty() {
                    return Err(Failure::at(
                        (section, name.clone()),
                        FileConfigError::new("an entry's name must not be empty"),
                    ));
                }
            }
        }
        let default_breaker = breaker_tables.resolve_default(breaker_config)?;
        let default_bulkhead = bulkhead_tables.resolve_default(bulkhead_config)?;
        // The default call-site profile is merged into each call site; on its own it applies
        // to nothing, but it must still make sense.
        call_site_tables.resolve_default(call_site_overrides)?;
        let breakers = breaker_tables.resolve_all(breaker_config)?;
        let bulkheads = bulkhead_tables.resolve_all(bulkhead_config)?;
        let call_sites = call_site_tables.resolve_all(call_site_overrides)?;
        Ok(FileConfig {
            raw,
            default_breaker,
            default_bulkhead,
            breakers,
            bulkheads,
            call_sites,
        })
    }
}
