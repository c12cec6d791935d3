//! Per-key breaker families by name: declared like breakers, created on first use with the
//! registry's default breaker configuration, and bounded by the same implicit limit.

use std::sync::Arc;

use crate::error::{ConfigError, RegistryError};
use crate::family::{BreakerFamily, FamilyConfig, FamilySnapshot};
use crate::name::check_name;

use super::Registry;
use super::table::Handle;

impl Handle for BreakerFamily {
    fn key(&self) -> Arc<str> {
        self.shared_name().clone()
    }
}

impl Registry {
    /// Declares the breaker family `name`: each key gets a breaker configured as `config`
    /// says. Declaring again reconfigures the live family in place. Family names are their own
    /// namespace: a family and a breaker may share a name.
    pub fn declare_breaker_family(
        &self,
        name: &str,
        config: FamilyConfig,
    ) -> Result<BreakerFamily, ConfigError> {
        check_name("breaker family", name)?;
        config.validate(name)?;
        let listeners = self.listeners.clone();
        self.families.declare(
            name,
            |live| live.reconfigure(config.clone()),
            || BreakerFamily::build(name, config.clone(), Some(listeners)),
        )
    }

    /// The breaker family `name`; created with the registry's default breaker configuration
    /// and the default key limits (and a warning) if it was never declared, within the
    /// [implicit limit](Self::set_implicit_limit) (which families an attribute names are
    /// exempt from: the program bounds them). [`validate`](Self::validate) reports the
    /// families attributes name that were never declared. Looking up an existing name allocates
    /// nothing.
    pub fn breaker_family(&self, name: &str) -> Result<BreakerFamily, RegistryError> {
        if let Some(existing) = self.families.get(name) {
            return Ok(existing);
        }
        check_name("breaker family", name)?;
        let lookup = self.families.get_or_create(
            name,
            self.implicit_limit(),
            crate::callsite::names_breaker_family,
            || {
                let config = FamilyConfig::new(super::read(&self.default_breaker).clone());
                BreakerFamily::build(name, config, Some(self.listeners.clone()))
                    .expect("the default breaker configuration is validated when it is set")
            },
        );
        self.looked_up("breaker family", name, lookup)
    }

    /// The breaker family `name`, if it exists.
    pub fn get_breaker_family(&self, name: &str) -> Option<BreakerFamily> {
        self.families.get(name)
    }

    /// Removes the breaker family `name`; whether it was there. Handles already given out keep
    /// working.
    pub fn remove_breaker_family(&self, name: &str) -> bool {
        self.families.remove(name)
    }

    /// Every family's [snapshot](BreakerFamily::snapshot), sorted by name: totals and at most
    /// [`MAX_LISTED_OPEN_KEYS`](crate::family::MAX_LISTED_OPEN_KEYS) open keys each.
    pub fn breaker_family_snapshots(&self) -> Vec<FamilySnapshot> {
        let mut all: Vec<_> = self
            .families
            .handles()
            .iter()
            .map(BreakerFamily::snapshot)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
