//! Configuration files (feature `serde`): breakers, bulkheads and call-site overrides declared
//! in TOML (or any serde format), overridden field by field from the environment, and applied
//! to a live registry with [`Registry::reload`] — in place, keeping each breaker's state and,
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::backoff::{Backoff, Jitter};
use crate::breaker::{BreakerConfig, SlidingWindow, TripPolicy};
use crate::bulkhead::BulkheadConfig;
use crate::error::ConfigError;
use crate::registry::Registry;
use crate::retry::MAX_RETRIES;
use crate::suggest::edit_distance;
use crate::timeout::{TimeoutConfig, check_duration};

// ---------------------------------------------------------------------------------------------
// Errors

/// A configuration file (or environment override) `resilient` will not apply. Its `Display`
/// reads `resilient.toml:7:26: breakers.payments: `failure_rate_threshold` = 1.5 must be in
/// (0, 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfigError {
    origin: Option<String>,
    location: Option<(usize, usize)>,
    entry: Option<String>,
    field: Option<String>,
    message: String,
}

impl FileConfigError {
    fn new(message: impl Into<String>) -> Self {
        FileConfigError {
            origin: None,
            location: None,
            entry: None,
            field: None,
            message: message.into(),
        }
    }

    fn entry(mut self, section: &str, name: &str) -> Self {
        self.entry = Some(format!("{section}.{}", key_text(name)));
        self
    }

    fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Where the configuration came from: the file's path, or the environment variable.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Line and column (from 1) of the offending value, where the format gives them.
    pub fn location(&self) -> Option<(usize, usize)> {
        self.location
    }

    /// The entry, as its table is written: `breakers.payments`, `breaker_profiles.default`.
    pub fn entry_name(&self) -> Option<&str> {
        self.entry.as_deref()
    }

    /// The offending field, e.g. `failure_rate_threshold`.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FileConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}:")?;
        }
        if let Some((line, column)) = self.location {
            write!(f, "{line}:{column}:")?;
        }
        if self.origin.is_some() || self.location.is_some() {
            f.write_str(" ")?;
        }
        if let Some(entry) = &self.entry {
            write!(f, "{entry}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileConfigError {}

/// A key as TOML would need it written in a dotted table name.
fn key_text(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// Field types

/// A duration written as text: `"250ms"`, `"2s"`, `"1m30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HumanDuration(Duration);

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

/// A duration, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OptionalDuration(Option<Duration>);

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
    fn visit<E: de::Error>(text: &str) -> Result<HumanDuration, E> {
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
enum TripKind {
    FailureRate,
    ConsecutiveFailures,
    FailureCount,
}

impl TripKind {
    fn as_str(self) -> &'static str {
        match self {
            TripKind::FailureRate => "failure_rate",
            TripKind::ConsecutiveFailures => "consecutive_failures",
            TripKind::FailureCount => "failure_count",
        }
    }
}

/// `sliding_window_type = "count" | "time"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WindowKind {
    Count,
    Time,
}

/// `jitter = "none" | "full" | "equal" | "decorrelated"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JitterKind {
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

// ---------------------------------------------------------------------------------------------
// Raw tables, as written

/// Defines a table as written: every field optional (so profiles merge field by field), plus
/// `base`, with the field list and the merge the resolution needs.
macro_rules! raw_table {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            base: Option<String>,
            $($field: Option<$ty>,)*
        }

        impl RawTable for $name {
            const FIELDS: &'static [&'static str] = &["base", $(stringify!($field)),*];

            fn base(&self) -> Option<&str> {
                self.base.as_deref()
            }

            fn fill_from(&mut self, lower: &Self) {
                $(if self.$field.is_none() {
                    self.$field = lower.$field.clone();
                })*
            }

            fn overlay(&mut self, higher: &Self) {
                if higher.base.is_some() {
                    self.base = higher.base.clone();
                }
                $(if higher.$field.is_some() {
                    self.$field = higher.$field.clone();
                })*
            }

            fn is_set(&self, field: &str) -> bool {
                match field {
                    "base" => self.base.is_some(),
                    $(stringify!($field) => self.$field.is_some(),)*
                    _ => false,
                }
            }
        }
    };
}

/// What resolution needs of a raw table.
trait RawTable: Clone + Default + for<'de> Deserialize<'de> {
    /// Every key the table accepts.
    const FIELDS: &'static [&'static str];
    fn base(&self) -> Option<&str>;
    /// Takes the fields this table leaves unset from `lower` (`base` excepted).
    fn fill_from(&mut self, lower: &Self);
    /// Takes every field `higher` sets.
    fn overlay(&mut self, higher: &Self);
    fn is_set(&self, field: &str) -> bool;
}

raw_table! {
    /// A `[breakers.<name>]` or `[breaker_profiles.<name>]` table.
    struct RawBreaker {
        trip: TripKind,
        failure_rate_threshold: f64,
        sliding_window_type: WindowKind,
        sliding_window_size: u32,
        sliding_window_duration: HumanDuration,
        minimum_calls: u32,
        consecutive_failures: u32,
        failure_count: u32,
        failure_count_window: HumanDuration,
        slow_call_duration: HumanDuration,
        slow_call_rate_threshold: f64,
        open_wait: HumanDuration,
        open_wait_multiplier: f64,
        max_open_wait: HumanDuration,
        half_open_probes: u32,
        half_open_successes: u32,
        max_half_open: OptionalDuration,
    }
}

raw_table! {
    /// A `[bulkheads.<name>]` or `[bulkhead_profiles.<name>]` table.
    struct RawBulkhead {
        max_concurrent: usize,
        max_wait: HumanDuration,
    }
}

raw_table! {
    /// A `[call_sites.<name>]` or `[call_site_profiles.<name>]` table; its keys are the
    /// attribute's.
    struct RawCallSite {
        enabled: bool,
        timeout: HumanDuration,
        total_timeout: HumanDuration,
        retries: u32,
        backoff: HumanDuration,
        max_backoff: HumanDuration,
        jitter: JitterKind,
        breaker: String,
        bulkhead: String,
    }
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    breaker_profiles: BTreeMap<String, RawBreaker>,
    #[serde(default)]
    breakers: BTreeMap<String, RawBreaker>,
    #[serde(default)]
    bulkhead_profiles: BTreeMap<String, RawBulkhead>,
    #[serde(default)]
    bulkheads: BTreeMap<String, RawBulkhead>,
    #[serde(default)]
    call_site_profiles: BTreeMap<String, RawCallSite>,
    #[serde(default)]
    call_sites: BTreeMap<String, RawCallSite>,
}

// ---------------------------------------------------------------------------------------------
// Resolved configuration

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
    /// The breaker's name.
    pub breaker: Option<String>,
    /// The bulkhead's name.
    pub bulkhead: Option<String>,
}

/// A validated configuration: profiles merged, every entry checked. Apply it with
/// [`Registry::reload`].
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
    default_breaker: Option<BreakerConfig>,
    default_bulkhead: Option<BulkheadConfig>,
    breakers: BTreeMap<String, BreakerConfig>,
    bulkheads: BTreeMap<String, BulkheadConfig>,
    call_sites: BTreeMap<String, CallSiteOverrides>,
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

    /// Applies the `RESILIENT_*` environment overrides found in `vars` (pass
    /// `std::env::vars()` in a service, a list in a test) and validates the result. See the
    /// [module](self) for the naming scheme.
    pub fn with_env<K, V>(
        self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<FileConfig, FileConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut raw = self.raw;
        let mut applied: HashMap<(&'static str, String), Vec<String>> = HashMap::new();
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        // Apply in a fixed order, so the outcome does not depend on the environment's order.
        vars.sort();
        for (var, value) in &vars {
            let env_error = |error: FileConfigError| FileConfigError {
                origin: Some(format!("environment variable {var}")),
                ..error
            };
            let target = if let Some(rest) = var.strip_prefix("RESILIENT_BREAKER_") {
                override_entry(&mut raw.breakers, "breakers", rest, value).map(|t| ("breakers", t))
            } else if let Some(rest) = var.strip_prefix("RESILIENT_BULKHEAD_") {
                override_entry(&mut raw.bulkheads, "bulkheads", rest, value)
                    .map(|t| ("bulkheads", t))
            } else if let Some(rest) = var.strip_prefix("RESILIENT_CALL_SITE_") {
                override_entry(&mut raw.call_sites, "call_sites", rest, value)
                    .map(|t| ("call_sites", t))
            } else {
                continue;
            };
            let (section, entry) = target.map_err(env_error)?;
            applied
                .entry((section, entry))
                .or_default()
                .push(var.clone());
        }
        Self::resolve(raw).map_err(|failure| {
            let mut error = *failure.error;
            let vars = failure
                .entry
                .and_then(|(section, name)| applied.get(&(section, name)));
            if let Some(vars) = vars {
                error.origin = Some(format!("after environment overrides ({})", vars.join(", ")));
            }
            error
        })
    }

    /// Reads `path` and applies the process environment's overrides: the usual startup call.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<FileConfig, FileConfigError> {
        Self::from_toml_file(path)?.with_env(std::env::vars())
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

    fn resolve(raw: RawConfig) -> Result<FileConfig, Failure> {
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

// ---------------------------------------------------------------------------------------------
// Parsing

/// Deserializes the raw tables, turning the path of a failure into the entry and field.
fn deserialize_raw<'de, D>(
    deserializer: D,
    locate: impl Fn(&D::Error) -> Option<(usize, usize)>,
) -> Result<RawConfig, FileConfigError>
where
    D: Deserializer<'de>,
    D::Error: fmt::Display,
{
    serde_path_to_error::deserialize(deserializer).map_err(|failure| {
        use serde_path_to_error::Segment;
        let path: Vec<String> = failure
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(key.clone()),
                Segment::Seq { index } => Some(index.to_string()),
                Segment::Enum { variant } => Some(variant.clone()),
                Segment::Unknown => None,
            })
            .collect();
        let inner = failure.inner();
        let mut error = FileConfigError::new(plain_message(&inner.to_string()));
        error.location = locate(inner);
        // The path of an unknown key ends with the key: its table is the segment before.
        let section = path.first().filter(|_| path.len() >= 2).map(String::as_str);
        if let Some(suggestion) =
            unknown_field(&error.message).and_then(|field| suggest(&field, fields_of(section)))
        {
            error.message = format!("{} (did you mean `{suggestion}`?)", error.message);
        }
        match path.as_slice() {
            [section, name, field, ..] => error.entry(section, name).field(field.clone()),
            [section, name] => {
                let field = unknown_field(&error.message);
                let error = error.entry(section, name);
                match field {
                    Some(field) => error.field(field),
                    None => error,
                }
            }
            [section] => error.field(section.clone()),
            [] => match unknown_field(&error.message) {
                Some(field) => error.field(field),
                None => error,
            },
        }
    })
}

/// The message of a format's error without the format's own location preamble (toml writes
/// "TOML parse error at line …" and a snippet before the message; the location is reported
/// separately).
fn plain_message(text: &str) -> String {
    if text.starts_with("TOML parse error")
        && let Some(last) = text.trim_end().lines().last()
    {
        return last.trim().to_owned();
    }
    text.trim().to_owned()
}

/// The field named by an "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// The keys a table accepts, given its section (`None`: the top level).
fn fields_of(section: Option<&str>) -> &'static [&'static str] {
    match section {
        None => &[
            "breaker_profiles",
            "breakers",
            "bulkhead_profiles",
            "bulkheads",
            "call_site_profiles",
            "call_sites",
        ],
        Some("breakers" | "breaker_profiles") => RawBreaker::FIELDS,
        Some("bulkheads" | "bulkhead_profiles") => RawBulkhead::FIELDS,
        Some("call_sites" | "call_site_profiles") => RawCallSite::FIELDS,
        Some(_) => &[],
    }
}

/// The accepted key closest to a misspelt one, if it is close: at most a third of its letters
/// differ, or it is the start of the key (`failure_rate` for `failure_rate_threshold`).
fn suggest(field: &str, fields: &[&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .filter(|candidate| **candidate != field)
        .filter_map(|candidate| {
            let distance = edit_distance(field, candidate);
            let close = distance <= field.len().div_ceil(3)
                || (field.len() >= 4 && candidate.starts_with(field));
            close.then_some((distance, *candidate))
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// Line and column, from 1, of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

// ---------------------------------------------------------------------------------------------
// Resolution: profiles merged, entries converted and validated

/// A table: its section and its name.
type Level = (&'static str, String);

/// A resolution failure, with the table where the offending value was written so a TOML
/// source can point at it.
struct Failure {
    entry: Option<Level>,
    table: Option<Level>,
    /// Boxed: resolution errors are rare, and results carrying them stay small.
    error: Box<FileConfigError>,
}

impl Failure {
    fn at(entry: Level, error: FileConfigError) -> Failure {
        Failure {
            error: Box::new(error.entry(entry.0, &entry.1)),
            table: Some(entry.clone()),
            entry: Some(entry),
        }
    }

    /// Points the error at the value in `text` (or at its table when the value is not
    /// written anywhere).
    fn locate(self, text: &str) -> FileConfigError {
        let mut error = *self.error;
        let Some((section, name)) = &self.table else {
            return error;
        };
        let Ok(document) = toml::de::DeTable::parse(text) else {
            return error;
        };
        let table = find(document.get_ref(), section)
            .and_then(|value| value.get_ref().as_table())
            .and_then(|table| find(table, name));
        let value = match (&error.field, table) {
            (Some(field), Some(table)) => table
                .get_ref()
                .as_table()
                .and_then(|table| find(table, field))
                .or(Some(table)),
            (None, table) => table,
            (Some(_), None) => None,
        };
        error.location = value.map(|value| line_column(text, value.span().start));
        error
    }
}

fn find<'a, 'i>(
    table: &'a toml::de::DeTable<'i>,
    key: &str,
) -> Option<&'a toml::Spanned<toml::de::DeValue<'i>>> {
    table
        .iter()
        .find(|(name, _)| name.get_ref() == key)
        .map(|(_, value)| value)
}

/// What is wrong with one field of a resolved entry.
struct Issue {
    field: String,
    message: String,
}

impl Issue {
    fn new(field: &str, message: impl Into<String>) -> Issue {
        Issue {
            field: field.to_owned(),
            message: format!("`{field}` {}", message.into()),
        }
    }
}

impl From<ConfigError> for Issue {
    fn from(error: ConfigError) -> Issue {
        Issue {
            field: error.field().to_owned(),
            message: format!("`{}` = {} {}", error.field(), error.value(), error.reason()),
        }
    }
}

/// Turns a merged table into a configuration: `(name, merged, own)`, where `own` is what the
/// entry itself sets.
type Convert<R, T> = fn(&str, &R, &R) -> Result<T, Issue>;

/// The entries and profiles of one kind.
struct Tables<'a, R> {
    entries: &'a BTreeMap<String, R>,
    profiles: &'a BTreeMap<String, R>,
    section: &'static str,
    profile_section: &'static str,
}

const DEFAULT_PROFILE: &str = "default";

impl<R: RawTable> Tables<'_, R> {
    fn names(&self) -> Vec<Level> {
        let entries = self.entries.keys().map(|name| (self.section, name.clone()));
        let profiles = self
            .profiles
            .keys()
            .map(|name| (self.profile_section, name.clone()));
        entries.chain(profiles).collect()
    }

    /// The tables an entry draws from, most specific first: itself, its `base` profile and
    /// that profile's bases, then `default`.
    fn chain<'t>(&'t self, level: Level, table: &'t R) -> Result<Vec<(Level, &'t R)>, Failure> {
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

    fn resolve_one<T>(
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

    fn resolve_default<T>(&self, convert: Convert<R, T>) -> Result<Option<T>, Failure> {
        self.profiles
            .get(DEFAULT_PROFILE)
            .map(|table| {
                let level = (self.profile_section, DEFAULT_PROFILE.to_owned());
                self.resolve_one(level, table, convert)
            })
            .transpose()
    }

    fn resolve_all<T>(&self, convert: Convert<R, T>) -> Result<BTreeMap<String, T>, Failure> {
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
const TRIP_FIELDS: [(&str, TripKind); 8] = [
    ("failure_rate_threshold", TripKind::FailureRate),
    ("sliding_window_type", TripKind::FailureRate),
    ("sliding_window_size", TripKind::FailureRate),
    ("sliding_window_duration", TripKind::FailureRate),
    ("minimum_calls", TripKind::FailureRate),
    ("consecutive_failures", TripKind::ConsecutiveFailures),
    ("failure_count", TripKind::FailureCount),
    ("failure_count_window", TripKind::FailureCount),
];

fn breaker_config(
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
    if let Some(wait) = merged.open_wait {
        config.open_wait = wait.0;
        // A lone open_wait above the built-in cap raises the cap with it.
        if merged.max_open_wait.is_none() {
            config.max_open_wait = config.max_open_wait.max(wait.0);
        }
    }
    if let Some(multiplier) = merged.open_wait_multiplier {
        config.open_wait_multiplier = multiplier;
    }
    if let Some(max) = merged.max_open_wait {
        config.max_open_wait = max.0;
    }
    if let Some(probes) = merged.half_open_probes {
        config.half_open_probes = probes;
        // Likewise, fewer probes than the built-in success threshold lower the threshold.
        if merged.half_open_successes.is_none() {
            config.half_open_successes = config.half_open_successes.min(probes.max(1));
        }
    }
    if let Some(successes) = merged.half_open_successes {
        config.half_open_successes = successes;
    }
    if let Some(limit) = merged.max_half_open {
        config.max_half_open = limit.0;
    }
    config.validate(name)?;
    Ok(config)
}

fn bulkhead_config(
    name: &str,
    merged: &RawBulkhead,
    _own: &RawBulkhead,
) -> Result<BulkheadConfig, Issue> {
    let default = BulkheadConfig::default();
    let config = BulkheadConfig {
        max_concurrent: merged.max_concurrent.unwrap_or(default.max_concurrent),
        max_wait: merged.max_wait.map_or(default.max_wait, |wait| wait.0),
    };
    config.validate(name)?;
    Ok(config)
}

fn call_site_overrides(
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
        breaker: merged.breaker.clone(),
        bulkhead: merged.bulkhead.clone(),
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
    for (field, name) in [("breaker", &site.breaker), ("bulkhead", &site.bulkhead)] {
        if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
            return Err(Issue::new(field, "must not be empty"));
        }
    }
    Ok(site)
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

/// An entry name as it appears in an environment variable.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Applies one variable (`rest` is what follows its kind prefix) to the entry it names;
/// returns the entry's name.
fn override_entry<R: RawTable>(
    entries: &mut BTreeMap<String, R>,
    section: &'static str,
    rest: &str,
    value: &str,
) -> Result<String, FileConfigError> {
    let kind = section.trim_end_matches('s').replace('_', " ");
    let mut matches = Vec::new();
    for name in entries.keys() {
        let field = rest
            .strip_prefix(&env_name(name))
            .and_then(|field| field.strip_prefix('_'))
            .map(str::to_ascii_lowercase);
        if let Some(field) = field.filter(|field| R::FIELDS.contains(&field.as_str())) {
            matches.push((name.clone(), field));
        }
    }
    let (name, field) = match matches.len() {
        1 => matches.remove(0),
        0 => {
            let names: Vec<_> = entries.keys().map(|name| env_name(name)).collect();
            return Err(FileConfigError::new(format!(
                "names no field of a {kind} in the file: <NAME> must be one of [{}] and <FIELD> one of [{}]",
                names.join(", "),
                R::FIELDS
                    .iter()
                    .map(|field| field.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        _ => {
            let names: Vec<_> = matches.iter().map(|(name, _)| name.as_str()).collect();
            return Err(FileConfigError::new(format!(
                "is ambiguous: it could set a field of the {kind}s {}",
                names.join(", ")
            )));
        }
    };
    let parsed: R = parse_value(&field, value).map_err(|message| {
        FileConfigError::new(message)
            .entry(section, &name)
            .field(&field)
    })?;
    entries
        .get_mut(&name)
        .expect("the name was found among the entries")
        .overlay(&parsed);
    Ok(name)
}

/// Reads `value` as the TOML value of `field`: as written (numbers, booleans), else as a
/// string (durations, names).
fn parse_value<R: RawTable>(field: &str, value: &str) -> Result<R, String> {
    let parse = |literal: &str| -> Result<Result<R, toml::de::Error>, toml::de::Error> {
        let text = format!("{field} = {literal}");
        let document = toml::Deserializer::parse(&text)?;
        Ok(R::deserialize(document))
    };
    let quoted = toml::Value::String(value.to_owned()).to_string();
    let parsed = match parse(value) {
        Ok(Ok(parsed)) => parsed,
        // Valid TOML of the wrong type: a string may still be what the field wants.
        Ok(Err(typed)) => match parse(&quoted) {
            Ok(Ok(parsed)) => parsed,
            _ => return Err(typed.message().to_owned()),
        },
        // Not a TOML value: take it as a string.
        Err(_) => match parse(&quoted) {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(error)) | Err(error) => return Err(error.message().to_owned()),
        },
    };
    // A value with a newline could smuggle in other keys: exactly one field may be set.
    let set = R::FIELDS.iter().filter(|name| parsed.is_set(name)).count();
    if set != 1 {
        return Err(format!("{value:?} is not a single value"));
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------------
// Applying to a registry

/// What [`Registry::reload`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Breakers the file declared that did not exist yet.
    pub breakers_created: Vec<String>,
    /// Live breakers reconfigured in place (state kept).
    pub breakers_reconfigured: Vec<String>,
    /// Of those, the ones whose window changed kind or size, so a closed one restarted with
    /// an empty window.
    pub windows_restarted: Vec<String>,
    /// Bulkheads the file declared that did not exist yet.
    pub bulkheads_created: Vec<String>,
    /// Live bulkheads whose limit and wait were changed in place.
    pub bulkheads_reconfigured: Vec<String>,
    /// Live breakers and bulkheads the file does not mention: left as they are.
    pub not_in_file: Vec<String>,
}

impl Registry {
    /// Applies a configuration: declares the breakers and bulkheads it names, reconfigures
    /// the live ones in place, sets the `default` profiles as the configuration of undeclared
    /// names, and stores the call-site overrides for the call sites to pick up.
    ///
    /// A live breaker keeps its state (an open breaker stays open) and its window, unless the
    /// window changes kind or size; its failure predicates, set in code, are kept too. Breakers
    /// and bulkheads the file does not mention are left alone (handles to them stay valid).
    /// The configuration was validated when it was read, so nothing is applied half-way.
    pub fn reload(&self, config: &FileConfig) -> Result<ReloadReport, ConfigError> {
        let mut report = ReloadReport::default();
        if let Some(default) = &config.default_breaker {
            self.set_default_breaker_config(default.clone())?;
        }
        if let Some(default) = &config.default_bulkhead {
            self.set_default_bulkhead_config(*default)?;
        }
        for (name, breaker) in &config.breakers {
            let mut breaker = breaker.clone();
            match self.get_breaker(name) {
                Some(live) => {
                    let current = live.config();
                    // Predicates are code, not configuration: the file cannot express them.
                    breaker.classifiers = current.classifiers.clone();
                    if current.window_shape() != breaker.window_shape() {
                        report.windows_restarted.push(name.clone());
                    }
                    // Declaring a live name reconfigures it in place, and marks it declared.
                    self.declare_breaker(name, breaker)?;
                    report.breakers_reconfigured.push(name.clone());
                }
                None => {
                    self.declare_breaker(name, breaker)?;
                    report.breakers_created.push(name.clone());
                }
            }
        }
        for (name, bulkhead) in &config.bulkheads {
            let existed = self.get_bulkhead(name).is_some();
            self.declare_bulkhead(name, *bulkhead)?;
            if existed {
                report.bulkheads_reconfigured.push(name.clone());
            } else {
                report.bulkheads_created.push(name.clone());
            }
        }
        let overrides = config
            .call_sites
            .iter()
            .map(|(name, site)| (Arc::from(name.as_str()), site.clone()))
            .collect();
        *self
            .call_site_overrides
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = overrides;
        // The kill switch takes effect at once, also for call sites that already run; the
        // other call-site settings are read when a call site builds its policy (first call).
        for (name, site) in &config.call_sites {
            if let Some(enabled) = site.enabled {
                self.call_site_stats(name).set_bypassed(!enabled);
            }
        }
        let snapshot = self.snapshot();
        report.not_in_file = snapshot
            .breakers
            .iter()
            .map(|breaker| &breaker.name)
            .filter(|name| !config.breakers.contains_key(name.as_ref()))
            .chain(
                snapshot
                    .bulkheads
                    .iter()
                    .map(|bulkhead| &bulkhead.name)
                    .filter(|name| !config.bulkheads.contains_key(name.as_ref())),
            )
            .map(|name| name.to_string())
            .collect();
        tracing::info!(
            target: "resilient::registry",
            breakers_created = report.breakers_created.len(),
            breakers_reconfigured = report.breakers_reconfigured.len(),
            windows_restarted = report.windows_restarted.len(),
            bulkheads_created = report.bulkheads_created.len(),
            bulkheads_reconfigured = report.bulkheads_reconfigured.len(),
            call_sites = config.call_sites.len(),
            "configuration applied"
        );
        Ok(report)
    }

    /// The overrides the last applied configuration file gave call site `name`.
    pub fn call_site_overrides(&self, name: &str) -> Option<CallSiteOverrides> {
        self.call_site_overrides
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> FileConfigError {
        FileConfig::from_toml(text).expect_err("the configuration must be refused")
    }

    #[test]
    fn profiles_merge_default_then_base_then_entry() {
        let config = FileConfig::from_toml(
            r#"
            [breaker_profiles.default]
            open_wait = "10s"
            half_open_probes = 5
            half_open_successes = 2

            [breaker_profiles.strict]
            failure_rate_threshold = 0.25
            open_wait = "20s"

            [breakers.payments]
            base = "strict"
            open_wait = "1m30s"

            [breakers.search]
            "#,
        )
        .unwrap();
        let payments = config.breaker("payments").unwrap();
        assert_eq!(payments.open_wait, Duration::from_secs(90));
        assert_eq!(payments.half_open_probes, 5, "from default");
        assert!(matches!(
            payments.trip(),
            TripPolicy::FailureRate { threshold, .. } if threshold == 0.25
        ));
        let search = config.breaker("search").unwrap();
        assert_eq!(search.open_wait, Duration::from_secs(10), "default only");
        assert_eq!(
            config.default_breaker().unwrap().open_wait,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_entry_field_and_position() {
        let err = error("[breakers.payments]\nfailure_rate = 0.5\n");
        assert_eq!(err.entry_name(), Some("breakers.payments"));
        assert_eq!(err.field_name(), Some("failure_rate"));
        assert_eq!(err.location(), Some((2, 1)));
        assert!(
            err.message().contains("unknown field `failure_rate`"),
            "{err}"
        );
        assert!(
            err.message()
                .ends_with("(did you mean `failure_rate_threshold`?)"),
            "{err}"
        );
        let top = error("[breaker.payments]\n");
        assert!(
            top.message().ends_with("(did you mean `breakers`?)"),
            "{top}"
        );
    }

    #[test]
    fn a_bad_duration_names_the_field() {
        let err = error("[bulkheads.db]\nmax_wait = \"soon\"\n");
        assert_eq!(err.entry_name(), Some("bulkheads.db"));
        assert_eq!(err.field_name(), Some("max_wait"));
        assert_eq!(err.location(), Some((2, 12)));
        assert!(err.message().contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn an_invalid_value_points_at_where_it_was_written() {
        let err = error(
            "[breaker_profiles.loose]\nfailure_rate_threshold = 1.5\n\n[breakers.db]\nbase = \"loose\"\n",
        );
        assert_eq!(err.entry_name(), Some("breakers.db"));
        assert_eq!(err.field_name(), Some("failure_rate_threshold"));
        assert_eq!(err.location(), Some((2, 26)));
        assert_eq!(
            err.to_string(),
            "2:26: breakers.db: `failure_rate_threshold` = 1.5 must be in (0, 1] (set in breaker_profiles.loose)"
        );
    }

    #[test]
    fn a_missing_profile_and_a_cycle_are_refused() {
        let missing = error("[breakers.db]\nbase = \"strcit\"\n");
        assert_eq!(missing.field_name(), Some("base"));
        assert_eq!(missing.location(), Some((2, 8)));
        assert!(missing.message().contains("names no profile"), "{missing}");
        let cycle =
            error("[breaker_profiles.a]\nbase = \"b\"\n[breaker_profiles.b]\nbase = \"a\"\n");
        assert!(cycle.message().contains("cycle"), "{cycle}");
    }

    #[test]
    fn a_field_of_another_trip_policy_is_refused() {
        let err = error("[breakers.db]\nconsecutive_failures = 5\n");
        assert_eq!(err.field_name(), Some("consecutive_failures"));
        assert!(
            err.message()
                .contains("set trip = \"consecutive_failures\""),
            "{err}"
        );
        let config = FileConfig::from_toml(
            "[breakers.db]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 5\n",
        )
        .unwrap();
        assert_eq!(
            config.breaker("db").unwrap().trip(),
            TripPolicy::ConsecutiveFailures(5)
        );
    }

    #[test]
    fn the_environment_overrides_one_field() {
        let config = FileConfig::from_toml(
            "[breakers.\"checkout::pay\"]\n[bulkheads.db]\nmax_concurrent = 4\n[call_sites.\"a.b\"]\nretries = 1\n",
        )
        .unwrap()
        .with_env([
            ("RESILIENT_BREAKER_CHECKOUT__PAY_FAILURE_RATE_THRESHOLD", "0.3"),
            ("RESILIENT_BREAKER_CHECKOUT__PAY_OPEN_WAIT", "45s"),
            ("RESILIENT_BULKHEAD_DB_MAX_CONCURRENT", "8"),
            ("RESILIENT_CALL_SITE_A_B_BREAKER", "payments"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        let pay = config.breaker("checkout::pay").unwrap();
        assert_eq!(pay.open_wait, Duration::from_secs(45));
        assert!(
            matches!(pay.trip(), TripPolicy::FailureRate { threshold, .. } if threshold == 0.3)
        );
        assert_eq!(config.bulkhead("db").unwrap().max_concurrent, 8);
        let site = config.call_site("a.b").unwrap();
        assert_eq!(site.breaker.as_deref(), Some("payments"));
        assert_eq!(site.retries, Some(1));
    }

    #[test]
    fn a_bad_environment_override_is_refused() {
        let config = FileConfig::from_toml("[breakers.db]\n").unwrap();
        let typo = config
            .clone()
            .with_env([("RESILIENT_BREAKER_DB_OPEN_WIAT", "1s")])
            .unwrap_err();
        assert_eq!(
            typo.origin(),
            Some("environment variable RESILIENT_BREAKER_DB_OPEN_WIAT")
        );
        assert!(typo.message().contains("names no field"), "{typo}");
        let value = config
            .clone()
            .with_env([("RESILIENT_BREAKER_DB_HALF_OPEN_PROBES", "-1")])
            .unwrap_err();
        assert_eq!(value.field_name(), Some("half_open_probes"));
        assert_eq!(value.entry_name(), Some("breakers.db"));
        let smuggled = config
            .clone()
            .with_env([(
                "RESILIENT_BREAKER_DB_OPEN_WAIT",
                "\"1s\"\nhalf_open_probes = 9",
            )])
            .unwrap_err();
        assert!(
            smuggled.message().contains("not a single value"),
            "{smuggled}"
        );
        let invalid = config
            .with_env([("RESILIENT_BREAKER_DB_FAILURE_RATE_THRESHOLD", "2")])
            .unwrap_err();
        assert_eq!(
            invalid.to_string(),
            "after environment overrides (RESILIENT_BREAKER_DB_FAILURE_RATE_THRESHOLD): breakers.db: `failure_rate_threshold` = 2.0 must be in (0, 1]"
        );
    }

    #[test]
    fn call_site_overrides_are_validated() {
        let err = error("[call_sites.x]\ntimeout = \"3s\"\ntotal_timeout = \"2s\"\n");
        assert_eq!(err.field_name(), Some("timeout"));
        assert_eq!(err.location(), Some((2, 11)));
        let err = error("[call_sites.x]\nretries = 1000\n");
        assert_eq!(err.field_name(), Some("retries"));
        let err = error("[call_sites.x]\nbreaker = \" \"\n");
        assert_eq!(err.field_name(), Some("breaker"));
    }
}
