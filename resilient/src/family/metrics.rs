//! The families' side of the `metrics` export: totals per family, and one series per listed
//! open key, so a family's label cardinality is bounded by
//! [`MAX_LISTED_OPEN_KEYS`](super::MAX_LISTED_OPEN_KEYS), not by its keys.

use std::sync::{Arc, Mutex, PoisonError};

use ::metrics::{SharedString, counter, describe_counter, describe_gauge, gauge};

use super::{BreakerFamily, FamilySnapshot};

/// The open keys a family last exported as 1, so the next export can set those no longer
/// listed to 0: the `metrics` facade cannot delete a series, and a key that closed must not
/// read as open forever.
#[derive(Default)]
pub(super) struct Exported(Mutex<Vec<Arc<str>>>);

impl BreakerFamily {
    /// Copies a [`snapshot`](Self::snapshot) into the `metrics` recorder in use:
    ///
    /// | metric | kind | labels | meaning |
    /// |---|---|---|---|
    /// | `resilient_breaker_family_keys` | gauge | `family` | keys held |
    /// | `resilient_breaker_family_max_keys` | gauge | `family` | the key limit |
    /// | `resilient_breaker_family_open_keys` | gauge | `family` | keys open, half-open or forced open |
    /// | `resilient_breaker_family_evicted_total` | counter | `family` | keys dropped, idle or for room |
    /// | `resilient_breaker_family_refused_total` | counter | `family` | new keys refused |
    /// | `resilient_breaker_family_key_open` | gauge | `family`, `breaker` | 1 for each listed open key (at most 20), 0 once it is no longer listed |
    ///
    /// A key set to 0 is forgotten, so the recorder keeps its series until the recorder's own
    /// idle timeout drops it (`metrics-exporter-prometheus`'s `idle_timeout`): set one to
    /// bound the series of keys that were open once.
    pub fn export_metrics(&self) {
        export(&self.snapshot(), &self.inner.exported);
    }
}

pub(super) fn export(snapshot: &FamilySnapshot, exported: &Exported) {
    describe();
    let family = SharedString::from(snapshot.name.clone());
    gauge!("resilient_breaker_family_keys", "family" => family.clone()).set(snapshot.keys as f64);
    gauge!("resilient_breaker_family_max_keys", "family" => family.clone())
        .set(snapshot.max_keys as f64);
    gauge!("resilient_breaker_family_open_keys", "family" => family.clone())
        .set(snapshot.open_keys as f64);
    counter!("resilient_breaker_family_evicted_total", "family" => family.clone())
        .absolute(snapshot.evicted);
    counter!("resilient_breaker_family_refused_total", "family" => family.clone())
        .absolute(snapshot.refused);
    let listed: Vec<Arc<str>> = snapshot
        .listed_open
        .iter()
        .map(|key| key.breaker.clone())
        .collect();
    let mut last = exported.0.lock().unwrap_or_else(PoisonError::into_inner);
    for gone in last.iter().filter(|key| !listed.contains(key)) {
        key_open(&family, gone, 0.0);
    }
    for key in &listed {
        key_open(&family, key, 1.0);
    }
    *last = listed;
}

fn key_open(family: &SharedString, breaker: &Arc<str>, value: f64) {
    let breaker = SharedString::from(breaker.clone());
    gauge!("resilient_breaker_family_key_open", "family" => family.clone(), "breaker" => breaker)
        .set(value);
}

fn describe() {
    describe_gauge!(
        "resilient_breaker_family_keys",
        "Keys a per-key breaker family holds."
    );
    describe_gauge!(
        "resilient_breaker_family_max_keys",
        "The most keys a per-key breaker family holds."
    );
    describe_gauge!(
        "resilient_breaker_family_open_keys",
        "Keys of a breaker family whose breaker is open, half-open or forced open."
    );
    describe_counter!(
        "resilient_breaker_family_evicted_total",
        "Keys of a breaker family dropped, idle or to make room."
    );
    describe_counter!(
        "resilient_breaker_family_refused_total",
        "New keys a breaker family refused because no held key could be dropped."
    );
    describe_gauge!(
        "resilient_breaker_family_key_open",
        "1 for each listed open key of a breaker family (at most 20 per family)."
    );
}
