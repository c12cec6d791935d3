//! Configuration files (feature `serde`): breakers, bulkheads and call-site overrides declared
//! in TOML (or any serde format), overridden field by field from the environment, and applied
//! to a live registry with [`Registry::reload`](crate::Registry::reload) — in place, keeping each breaker's state and,
//! where its shape is unchanged, its window.
//!
//! ```toml
//! # Profiles are partial settings shared by name; `default` is merged into every entry.
//! [breaker_profiles.default]
//! open_wait = "30s"
//! max_half_open = "1m"
//!
//! [breaker_profiles.critical]       # a profile may itself name a `base`
//! failure_rate_threshold = 0.25
//! sliding_window_size = 50
//! minimum_calls = 10
//!
//! [breakers.payments]
//! base = "critical"                 # entry ← critical ← default ← built-in defaults
//! open_wait = "1m30s"
//!
//! [breakers.feature_store]
//! trip = "consecutive_failures"
//! consecutive_failures = 5
//!
//! [bulkheads.payments]
//! max_concurrent = 10
//! max_wait = "250ms"
//!
//! [bulkheads.search]               # an adaptive limit, from 20, within [4, 200]
//! max_concurrent = 20
//! adaptive = "vegas"               # or "aimd", with slow_call = "300ms"
//! min_limit = 4
//! max_limit = 200
//!
//! [call_sites."checkout::charge"]   # stored for the call site to apply
//! timeout = "2s"
//! retries = 2
//! ```
//!
//! Precedence, highest first: an environment variable, the entry, its `base` profile (and that
//! profile's bases), the `default` profile, the built-in defaults. Every table rejects unknown
//! fields; every error names the entry and the field, with the line and column when the text
//! was TOML.
//!
//! # Environment overrides
//!
//! `RESILIENT_BREAKER_<NAME>_<FIELD>`, `RESILIENT_BULKHEAD_<NAME>_<FIELD>` and
//! `RESILIENT_CALL_SITE_<NAME>_<FIELD>` set one field of an entry the file declares. `<NAME>`
//! is the entry's name upper-cased with every character other than a letter or a digit
//! replaced by `_` (`checkout::charge` → `CHECKOUT__CHARGE`); `<FIELD>` is the key
//! upper-cased. Values are written as in TOML, strings without quotes:
//! `RESILIENT_BREAKER_PAYMENTS_FAILURE_RATE_THRESHOLD=0.3`,
//! `RESILIENT_BREAKER_PAYMENTS_OPEN_WAIT=45s`. A variable under these prefixes that names no
//! entry or no field is an error, so a typo cannot go unnoticed; other variables are ignored.

mod env;
mod error;
mod fields;
mod parse;
mod raw;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::Deserializer;

use crate::backoff::Jitter;
use crate::breaker::BreakerConfig;
use crate::bulkhead::BulkheadConfig;

pub use self::error::FileConfigError;
pub use crate::registry::{ChangeAction, EntryChange, EntryKind, ReloadReport};

use self::parse::{deserialize_raw, line_column};
use self::raw::RawConfig;

/// What a configuration file says about one call site: only the settings it sets. The call
/// site applies them over its own (the attribute's) settings.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CallSiteOverrides {
    /// `false` switches the call site's policies off (a kill switch: the plain call runs).
    pub enabled: Option<bool>,
    /// Limit for each attempt.
    pub timeout: Option<Duration>,
    /// Limit for the whole call.
    pub total_timeout: Option<Duration>,
    /// Attempts after the first.
    pub retries: Option<u32>,
    /// The first backoff delay.
    pub backoff: Option<Duration>,
    /// The longest backoff delay.
    pub max_backoff: Option<Duration>,
    /// The jitter.
    pub jitter: Option<Jitter>,
    /// The delay before a hedge starts beside a slow attempt (see [`hedge`](crate::hedge)).
    pub hedge: Option<Duration>,
    /// How many hedges, with `hedge`.
    pub hedges: Option<u32>,
    /// The breaker's name.
    pub breaker: Option<String>,
    /// The bulkhead's name.
    pub bulkhead: Option<String>,
    /// `cache`: `Some(Some(max_age))` serves stale values up to `max_age` old,
    /// `Some(None)` (`cache = "off"`) turns the attribute's cache off (see [`crate::cache`]).
    pub cache: Option<Option<Duration>>,
    /// `cache_capacity`: how many keys the stale cache keeps.
    pub cache_capacity: Option<usize>,
}

/// A validated configuration: profiles merged, every entry checked. Apply it with
/// [`Registry::reload`](crate::Registry::reload).
///
/// ```
/// use resilient::{config::FileConfig, Registry, TripPolicy};
///
/// let config = FileConfig::from_toml(r#"
///     [breakers.payments]
///     failure_rate_threshold = 0.5
///     open_wait = "45s"
/// "#)?
/// .with_env([("RESILIENT_BREAKER_PAYMENTS_FAILURE_RATE_THRESHOLD", "0.3")])?;
///
/// let registry = Registry::new();
/// registry.reload(&config)?;
/// let trip = registry.get_breaker("payments").unwrap().config().trip();
/// assert!(matches!(trip, TripPolicy::FailureRate { threshold, .. } if threshold == 0.3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileConfig {
    raw: RawConfig,
    pub(crate) default_breaker: Option<BreakerConfig>,
    pub(crate) default_bulkhead: Option<BulkheadConfig>,
    pub(crate) breakers: BTreeMap<String, BreakerConfig>,
    pub(crate) bulkheads: BTreeMap<String, BulkheadConfig>,
    pub(crate) call_sites: BTreeMap<String, CallSiteOverrides>,
}

impl FileConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<FileConfig, FileConfigError> {
        let document = toml::Deserializer::parse(text).map_err(|error| {
            let mut located = FileConfigError::new(error.message());
            located.location = error.span().map(|span| line_column(text, span.start));
            located
        })?;
        let raw = deserialize_raw(document, |error: &toml::de::Error| {
            error.span().map(|span| line_column(text, span.start))
        })?;
        Self::resolve(raw).map_err(|failure| failure.locate(text))
    }

    /// Reads, parses and validates a TOML file; errors start with its path.
    pub fn from_toml_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<FileConfig, FileConfigError> {
        let path = path.as_ref();
        let with_origin = |mut error: FileConfigError| {
            error.origin = Some(path.display().to_string());
            error
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| with_origin(FileConfigError::new(format!("cannot read: {error}"))))?;
        Self::from_toml(&text).map_err(with_origin)
    }

    /// Reads a configuration from any serde format (JSON, YAML, ...) with the same tables as
    /// the TOML form. Errors name the entry and the field; the line and column are in the
    /// message when the format reports them.
    pub fn from_deserializer<'de, D>(deserializer: D) -> Result<FileConfig, FileConfigError>
    where
        D: Deserializer<'de>,
        D::Error: fmt::Display,
    {
        let raw = deserialize_raw(deserializer, |_: &D::Error| None)?;
        Self::resolve(raw).map_err(|failure| *failure.error)
    }

    /// The breakers the file declares, by name.
    pub fn breakers(&self) -> impl Iterator<Item = (&str, &BreakerConfig)> {
        self.breakers
            .iter()
            .map(|(name, config)| (name.as_str(), config))
    }

    /// One breaker's resolved configuration.
    pub fn breaker(&self, name: &str) -> Option<&BreakerConfig> {
        self.breakers.get(name)
    }

    /// The bulkheads the file declares, by name.
    pub fn bulkheads(&self) -> impl Iterator<Item = (&str, &BulkheadConfig)> {
        self.bulkheads
            .iter()
            .map(|(name, config)| (name.as_str(), config))
    }

    /// One bulkhead's resolved configuration.
    pub fn bulkhead(&self, name: &str) -> Option<&BulkheadConfig> {
        self.bulkheads.get(name)
    }

    /// The call-site overrides, by call-site name.
    pub fn call_sites(&self) -> impl Iterator<Item = (&str, &CallSiteOverrides)> {
        self.call_sites
            .iter()
            .map(|(name, site)| (name.as_str(), site))
    }

    /// One call site's overrides.
    pub fn call_site(&self, name: &str) -> Option<&CallSiteOverrides> {
        self.call_sites.get(name)
    }

    /// The `default` breaker profile, resolved: what breakers used without a declaration get
    /// once the file is applied.
    pub fn default_breaker(&self) -> Option<&BreakerConfig> {
        self.default_breaker.as_ref()
    }

    /// The `default` bulkhead profile, resolved.
    pub fn default_bulkhead(&self) -> Option<&BulkheadConfig> {
        self.default_bulkhead.as_ref()
    }
}
