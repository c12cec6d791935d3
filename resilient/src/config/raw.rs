//! The tables as written: every field optional, so profiles and entries merge field by field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::fields::{
    HumanDuration, JitterKind, LimitKind, OptionalDuration, SloSpec, TripKind, WindowKind,
};

/// Defines a table as written: every field optional (so profiles merge field by field), plus
/// `base`, with the field list and the merge the resolution needs.
macro_rules! raw_table {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            pub(super) base: Option<String>,
            $(pub(super) $field: Option<$ty>,)*
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
pub(super) trait RawTable: Clone + Default + for<'de> Deserialize<'de> {
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
        latency_slo: SloSpec,
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
        adaptive: LimitKind,
        min_limit: usize,
        max_limit: usize,
        slow_call: HumanDuration,
        backoff_percent: u8,
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
        hedge: HumanDuration,
        hedges: u32,
        breaker: String,
        bulkhead: String,
        cache: OptionalDuration,
        cache_capacity: usize,
    }
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) breaker_profiles: BTreeMap<String, RawBreaker>,
    #[serde(default)]
    pub(super) breakers: BTreeMap<String, RawBreaker>,
    #[serde(default)]
    pub(super) bulkhead_profiles: BTreeMap<String, RawBulkhead>,
    #[serde(default)]
    pub(super) bulkheads: BTreeMap<String, RawBulkhead>,
    #[serde(default)]
    pub(super) call_site_profiles: BTreeMap<String, RawCallSite>,
    #[serde(default)]
    pub(super) call_sites: BTreeMap<String, RawCallSite>,
}
