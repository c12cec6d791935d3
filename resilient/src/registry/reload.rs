//! Applying a configuration file to a live registry.

use std::sync::Arc;

use crate::config::{CallSiteOverrides, FileConfig};
use crate::error::ConfigError;

use super::Registry;

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
