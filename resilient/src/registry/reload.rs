//! Applying a configuration file to a live registry: everything is checked before anything
//! changes, and the file is the truth for call sites.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::breaker::BreakerConfig;
use crate::bulkhead::BulkheadConfig;
use crate::config::{CallSiteOverrides, FileConfig};
use crate::error::ConfigError;

use super::{Registry, check_name, read, write};

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
    /// Call sites whose file settings changed (new, changed or gone): their next call runs
    /// with the new settings, counters kept.
    pub call_sites_changed: Vec<String>,
    /// Call sites the previous file listed and this one does not: back to their attribute's
    /// settings, and switched back on if the previous file had switched them off.
    pub call_sites_reverted: Vec<String>,
    /// Every entry that changed, with the settings that changed, in the order applied.
    pub changes: Vec<EntryChange>,
}

/// One entry a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryChange {
    /// What kind of entry.
    pub kind: EntryKind,
    /// Its name.
    pub name: String,
    /// What happened to it.
    pub action: ChangeAction,
    /// The settings whose value changed (all the file sets, for a new entry).
    pub fields: Vec<&'static str>,
}

/// The kinds of entries a configuration file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A circuit breaker.
    Breaker,
    /// A bulkhead.
    Bulkhead,
    /// A call site's settings over its attribute's.
    CallSite,
}

/// What a reload did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeAction {
    /// The entry did not exist before.
    Created,
    /// A live entry now runs with the new settings.
    Reconfigured,
    /// A call site the file no longer lists: back to its attribute's settings.
    Reverted,
}

impl Registry {
    /// Applies a configuration: declares the breakers and bulkheads it names, reconfigures
    /// the live ones in place, sets the `default` profiles as the configuration of undeclared
    /// names, and makes its `[call_sites]` the settings every call site runs with from its next
    /// call on.
    ///
    /// A reload applies completely or not at all: every entry is checked against this registry
    /// first, and an error changes nothing. A live breaker keeps its state (an open breaker
    /// stays open) and its window, unless the window changes kind or size; its failure
    /// predicates, set in code, are kept too. Breakers and bulkheads the file does not mention
    /// are left alone (handles to them stay valid). Call sites are declarative: one the file no
    /// longer lists returns to its attribute's settings, and is switched back on if the
    /// previous file had switched it off. A call in flight finishes with the settings it
    /// started with; a call site's counters are kept.
    pub fn reload(&self, config: &FileConfig) -> Result<ReloadReport, ConfigError> {
        self.check_applicable(config)?;
        let mut report = ReloadReport::default();
        // Nothing below can fail for a configuration `check_applicable` accepted; should it
        // still, the error is returned rather than hidden.
        self.apply_defaults(config)?;
        self.apply_breakers(config, &mut report)?;
        self.apply_bulkheads(config, &mut report)?;
        self.apply_call_sites(config, &mut report);
        report.not_in_file = self.not_in_file(config);
        tracing::info!(
            target: "resilient::registry",
            breakers_created = report.breakers_created.len(),
            breakers_reconfigured = report.breakers_reconfigured.len(),
            windows_restarted = report.windows_restarted.len(),
            bulkheads_created = report.bulkheads_created.len(),
            bulkheads_reconfigured = report.bulkheads_reconfigured.len(),
            call_sites_changed = report.call_sites_changed.len(),
            call_sites_reverted = report.call_sites_reverted.len(),
            "configuration applied"
        );
        Ok(report)
    }

    /// The overrides the last applied configuration file gave call site `name`.
    pub fn call_site_overrides(&self, name: &str) -> Option<CallSiteOverrides> {
        read(&self.call_site_overrides).get(name).cloned()
    }

    /// Everything `apply_*` would refuse, checked before anything changes.
    fn check_applicable(&self, config: &FileConfig) -> Result<(), ConfigError> {
        if let Some(default) = &config.default_breaker {
            default.validate("default")?;
        }
        if let Some(default) = &config.default_bulkhead {
            default.validate("default")?;
        }
        for (name, breaker) in &config.breakers {
            check_name("circuit breaker", name)?;
            breaker.validate(name)?;
        }
        for (name, bulkhead) in &config.bulkheads {
            check_name("bulkhead", name)?;
            bulkhead.validate(name)?;
        }
        for (name, site) in &config.call_sites {
            check_name("call site", name)?;
            if let Some(breaker) = &site.breaker {
                check_name("circuit breaker", breaker)?;
            }
            if let Some(bulkhead) = &site.bulkhead {
                check_name("bulkhead", bulkhead)?;
            }
        }
        Ok(())
    }

    fn apply_defaults(&self, config: &FileConfig) -> Result<(), ConfigError> {
        if let Some(default) = &config.default_breaker {
            self.set_default_breaker_config(default.clone())?;
        }
        if let Some(default) = &config.default_bulkhead {
            self.set_default_bulkhead_config(*default)?;
        }
        Ok(())
    }

    fn apply_breakers(
        &self,
        config: &FileConfig,
        report: &mut ReloadReport,
    ) -> Result<(), ConfigError> {
        for (name, breaker) in &config.breakers {
            let mut breaker = breaker.clone();
            let Some(live) = self.get_breaker(name) else {
                self.declare_breaker(name, breaker)?;
                report.breakers_created.push(name.clone());
                report.record(EntryKind::Breaker, name, ChangeAction::Created, Vec::new());
                continue;
            };
            let current = live.config();
            // Predicates are code, not configuration: the file cannot express them.
            breaker.settings_mut().classifiers = current.settings.classifiers.clone();
            if current.window_shape() != breaker.window_shape() {
                report.windows_restarted.push(name.clone());
            }
            let fields = breaker_fields_changed(&current, &breaker);
            // Declaring a live name reconfigures it in place, and marks it declared.
            self.declare_breaker(name, breaker)?;
            report.breakers_reconfigured.push(name.clone());
            if !fields.is_empty() {
                report.record(EntryKind::Breaker, name, ChangeAction::Reconfigured, fields);
            }
        }
        Ok(())
    }

    fn apply_bulkheads(
        &self,
        config: &FileConfig,
        report: &mut ReloadReport,
    ) -> Result<(), ConfigError> {
        for (name, bulkhead) in &config.bulkheads {
            let live = self.get_bulkhead(name).map(|live| live.config());
            self.declare_bulkhead(name, *bulkhead)?;
            match live {
                Some(live) => {
                    report.bulkheads_reconfigured.push(name.clone());
                    let fields = bulkhead_fields_changed(&live, bulkhead);
                    if !fields.is_empty() {
                        let action = ChangeAction::Reconfigured;
                        report.record(EntryKind::Bulkhead, name, action, fields);
                    }
                }
                None => {
                    report.bulkheads_created.push(name.clone());
                    report.record(EntryKind::Bulkhead, name, ChangeAction::Created, Vec::new());
                }
            }
        }
        Ok(())
    }

    /// Replaces the call-site settings as a whole, then tells call sites to pick them up.
    fn apply_call_sites(&self, config: &FileConfig, report: &mut ReloadReport) {
        let new: BTreeMap<&str, &CallSiteOverrides> = config
            .call_sites
            .iter()
            .map(|(name, site)| (name.as_str(), site))
            .collect();
        let old = std::mem::replace(
            &mut *write(&self.call_site_overrides),
            config
                .call_sites
                .iter()
                .map(|(name, site)| (Arc::from(name.as_str()), site.clone()))
                .collect(),
        );
        for (name, before) in &old {
            if new.contains_key(name.as_ref()) {
                continue;
            }
            // The file is the truth: a kill switch it no longer sets is off again.
            if before.enabled == Some(false) {
                self.file_call_site_stats(name).set_bypassed(false);
            }
            report.call_sites_changed.push(name.to_string());
            report.call_sites_reverted.push(name.to_string());
            let fields = call_site_fields_changed(before, &CallSiteOverrides::default());
            report.record(EntryKind::CallSite, name, ChangeAction::Reverted, fields);
        }
        for (name, site) in new {
            // The kill switch takes effect at once, also for calls that already started.
            if let Some(enabled) = site.enabled {
                self.file_call_site_stats(name).set_bypassed(!enabled);
            }
            let (action, before) = match old.get(name) {
                Some(before) => (ChangeAction::Reconfigured, before.clone()),
                None => (ChangeAction::Created, CallSiteOverrides::default()),
            };
            let fields = call_site_fields_changed(&before, site);
            if !fields.is_empty() {
                report.call_sites_changed.push(name.to_owned());
                report.record(EntryKind::CallSite, name, action, fields);
            }
        }
        report.call_sites_changed.sort();
        report.call_sites_reverted.sort();
        // Published after the settings, so a call site that sees the new generation reads
        // the new settings.
        self.call_site_generation.fetch_add(1, Ordering::Release);
    }

    fn not_in_file(&self, config: &FileConfig) -> Vec<String> {
        let breakers = self
            .breaker_names()
            .into_iter()
            .filter(|name| !config.breakers.contains_key(name.as_ref()));
        let bulkheads = self
            .bulkhead_names()
            .into_iter()
            .filter(|name| !config.bulkheads.contains_key(name.as_ref()));
        breakers
            .chain(bulkheads)
            .map(|name| name.to_string())
            .collect()
    }
}

impl ReloadReport {
    fn record(
        &mut self,
        kind: EntryKind,
        name: &str,
        action: ChangeAction,
        fields: Vec<&'static str>,
    ) {
        self.changes.push(EntryChange {
            kind,
            name: name.to_owned(),
            action,
            fields,
        });
    }
}

fn breaker_fields_changed(old: &BreakerConfig, new: &BreakerConfig) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut compare = |field, changed: bool| {
        if changed {
            fields.push(field);
        }
    };
    compare("trip", old.settings.trip != new.settings.trip);
    compare(
        "slow_calls",
        old.settings.slow_calls != new.settings.slow_calls,
    );
    compare(
        "latency_slo",
        old.settings.latency_slo != new.settings.latency_slo,
    );
    compare(
        "open_wait",
        old.settings.open_wait != new.settings.open_wait,
    );
    compare(
        "open_wait_multiplier",
        old.settings.open_wait_multiplier != new.settings.open_wait_multiplier,
    );
    compare(
        "max_open_wait",
        old.settings.max_open_wait != new.settings.max_open_wait,
    );
    compare(
        "half_open_probes",
        old.settings.half_open_probes != new.settings.half_open_probes,
    );
    compare(
        "half_open_successes",
        old.settings.half_open_successes != new.settings.half_open_successes,
    );
    compare(
        "max_half_open",
        old.settings.max_half_open != new.settings.max_half_open,
    );
    fields
}

fn bulkhead_fields_changed(old: &BulkheadConfig, new: &BulkheadConfig) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if old.max_concurrent != new.max_concurrent {
        fields.push("max_concurrent");
    }
    if old.max_wait != new.max_wait {
        fields.push("max_wait");
    }
    if old.adaptive != new.adaptive {
        fields.push("adaptive");
    }
    fields
}

fn call_site_fields_changed(old: &CallSiteOverrides, new: &CallSiteOverrides) -> Vec<&'static str> {
    let changed = [
        ("enabled", old.enabled != new.enabled),
        ("timeout", old.timeout != new.timeout),
        ("total_timeout", old.total_timeout != new.total_timeout),
        ("retries", old.retries != new.retries),
        ("backoff", old.backoff != new.backoff),
        ("max_backoff", old.max_backoff != new.max_backoff),
        ("jitter", old.jitter != new.jitter),
        ("hedge", old.hedge != new.hedge),
        ("hedges", old.hedges != new.hedges),
        ("breaker", old.breaker != new.breaker),
        ("bulkhead", old.bulkhead != new.bulkhead),
        ("cache", old.cache != new.cache),
        ("cache_capacity", old.cache_capacity != new.cache_capacity),
    ];
    changed
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect()
}
