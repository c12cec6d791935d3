//! Breakers, bulkheads and retry budgets shared by name across the process.
//!
//! Every call site that names the breaker `"feature_store"` gets the same breaker, so evidence
//! from all of them adds up and an outage opens it for all of them at once. Declare each
//! dependency at startup with its configuration; a name used without a declaration gets the
//! registry's default configuration and one warning naming it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use crate::breaker::{BreakerConfig, BreakerMetrics, CircuitBreaker};
use crate::bulkhead::{Bulkhead, BulkheadConfig, BulkheadMetrics};
use crate::callsite::{CallSiteDescription, CallSiteMetrics, CallSiteStats, annotated_call_sites};
use crate::error::{ConfigError, UnknownName, ValidationError};
use crate::event::Listeners;
use crate::retry::{BudgetConfig, RetryBudget};
use crate::suggest::closest;

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry, which the `#[resilient]` attribute and
/// [`PolicyBuilder::build`](crate::PolicyBuilder::build) use.
pub fn registry() -> &'static Registry {
    &GLOBAL
}

/// A set of named breakers, bulkheads and retry budgets. Use [`registry()`] for the
/// process-wide one and [`Registry::new`] for an independent one (tests, embedding).
pub struct Registry {
    breakers: RwLock<HashMap<Arc<str>, CircuitBreaker>>,
    bulkheads: RwLock<HashMap<Arc<str>, Bulkhead>>,
    budgets: RwLock<HashMap<Arc<str>, Arc<RetryBudget>>>,
    call_sites: RwLock<HashMap<Arc<str>, Arc<CallSiteStats>>>,
    /// Names declared on purpose (in code or a configuration file), as opposed to created
    /// with the default configuration on first use: `validate` reports the latter.
    declared_breakers: RwLock<HashSet<Arc<str>>>,
    declared_bulkheads: RwLock<HashSet<Arc<str>>>,
    default_breaker: RwLock<BreakerConfig>,
    default_bulkhead: RwLock<BulkheadConfig>,
    /// Where every breaker and bulkhead of this registry reports its events.
    listeners: Arc<Listeners>,
    /// Call-site settings from the last configuration file applied, for the call sites to
    /// pick up.
    #[cfg(feature = "serde")]
    pub(crate) call_site_overrides: RwLock<HashMap<Arc<str>, crate::config::CallSiteOverrides>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("breakers", &self.breaker_names())
            .field("bulkheads", &self.bulkhead_names())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// An empty registry with the documented default configurations.
    pub fn new() -> Self {
        Registry {
            breakers: RwLock::default(),
            bulkheads: RwLock::default(),
            budgets: RwLock::default(),
            call_sites: RwLock::default(),
            declared_breakers: RwLock::default(),
            declared_bulkheads: RwLock::default(),
            default_breaker: RwLock::new(BreakerConfig::default()),
            default_bulkhead: RwLock::new(BulkheadConfig::default()),
            listeners: Arc::new(Listeners::new()),
            #[cfg(feature = "serde")]
            call_site_overrides: RwLock::default(),
        }
    }

    /// Where this registry's breakers and bulkheads report their events: subscribe with
    /// [`on_event`](Self::on_event) or [`subscribe`](Self::subscribe), or hand it to a
    /// breaker made outside the registry.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// Declares the breaker `name` with `config`. Declaring a name again reconfigures the live
    /// breaker in place: its state is kept and every handle follows.
    pub fn declare_breaker(
        &self,
        name: &str,
        config: BreakerConfig,
    ) -> Result<CircuitBreaker, ConfigError> {
        check_name("circuit breaker", name)?;
        config.validate(name)?;
        self.mark_breaker_declared(name);
        if let Some(existing) = self.get_breaker(name) {
            existing.reconfigure(config)?;
            return Ok(existing);
        }
        let mut breakers = write(&self.breakers);
        if let Some(existing) = breakers.get(name) {
            existing.reconfigure(config)?;
            return Ok(existing.clone());
        }
        let breaker = CircuitBreaker::with_listeners(name, config, self.listeners.clone())?;
        breakers.insert(breaker.shared_name().clone(), breaker.clone());
        Ok(breaker)
    }

    /// The breaker `name`; created with the default configuration, and a warning, if it was
    /// never declared.
    pub fn breaker(&self, name: &str) -> CircuitBreaker {
        if let Some(existing) = self.get_breaker(name) {
            return existing;
        }
        let mut breakers = write(&self.breakers);
        if let Some(existing) = breakers.get(name) {
            return existing.clone();
        }
        tracing::warn!(
            target: "resilient::registry",
            breaker = name,
            "circuit breaker `{name}` was used without being declared: it gets the default configuration (declare it at startup to choose one)"
        );
        let config = read(&self.default_breaker).clone();
        let breaker = CircuitBreaker::with_listeners(name, config, self.listeners.clone())
            .expect("the default breaker configuration is validated when it is set");
        breakers.insert(breaker.shared_name().clone(), breaker.clone());
        breaker
    }

    /// The breaker `name`, if it exists.
    pub fn get_breaker(&self, name: &str) -> Option<CircuitBreaker> {
        read(&self.breakers).get(name).cloned()
    }

    /// Declares the bulkhead `name`; declaring again reconfigures it in place.
    pub fn declare_bulkhead(
        &self,
        name: &str,
        config: BulkheadConfig,
    ) -> Result<Bulkhead, ConfigError> {
        check_name("bulkhead", name)?;
        config.validate(name)?;
        write(&self.declared_bulkheads).insert(name.into());
        let mut bulkheads = write(&self.bulkheads);
        if let Some(existing) = bulkheads.get(name) {
            existing.reconfigure(config)?;
            return Ok(existing.clone());
        }
        let bulkhead = Bulkhead::with_listeners(name, config, self.listeners.clone())?;
        bulkheads.insert(name.into(), bulkhead.clone());
        Ok(bulkhead)
    }

    /// The bulkhead `name`; created with the default configuration, and a warning, if it was
    /// never declared.
    pub fn bulkhead(&self, name: &str) -> Bulkhead {
        if let Some(existing) = self.get_bulkhead(name) {
            return existing;
        }
        let mut bulkheads = write(&self.bulkheads);
        if let Some(existing) = bulkheads.get(name) {
            return existing.clone();
        }
        tracing::warn!(
            target: "resilient::registry",
            bulkhead = name,
            "bulkhead `{name}` was used without being declared: it gets the default configuration (declare it at startup to choose one)"
        );
        let config = *read(&self.default_bulkhead);
        let bulkhead = Bulkhead::with_listeners(name, config, self.listeners.clone())
            .expect("the default bulkhead configuration is validated when it is set");
        bulkheads.insert(name.into(), bulkhead.clone());
        bulkhead
    }

    /// The bulkhead `name`, if it exists.
    pub fn get_bulkhead(&self, name: &str) -> Option<Bulkhead> {
        read(&self.bulkheads).get(name).cloned()
    }

    /// The retry budget of dependency `name`, created with `config` on first use.
    pub fn retry_budget(
        &self,
        name: &str,
        config: BudgetConfig,
    ) -> Result<Arc<RetryBudget>, ConfigError> {
        if let Some(existing) = read(&self.budgets).get(name) {
            return Ok(existing.clone());
        }
        let mut budgets = write(&self.budgets);
        if let Some(existing) = budgets.get(name) {
            return Ok(existing.clone());
        }
        let budget = Arc::new(RetryBudget::new(name, config)?);
        budgets.insert(name.into(), budget.clone());
        Ok(budget)
    }

    /// Notes that breaker `name` was configured on purpose (see [`validate`](Self::validate)).
    fn mark_breaker_declared(&self, name: &str) {
        if !read(&self.declared_breakers).contains(name) {
            write(&self.declared_breakers).insert(name.into());
        }
    }

    /// Every function annotated with `#[resilient]` in this program, with what it declared
    /// and its counters in this registry once it has run.
    pub fn call_sites(&self) -> Vec<CallSiteDescription> {
        let stats = read(&self.call_sites);
        annotated_call_sites()
            .into_iter()
            .map(|info| CallSiteDescription {
                info: *info,
                metrics: stats
                    .get(info.current_name())
                    .map(|stats| stats.metrics(info.current_name().into())),
            })
            .collect()
    }

    /// Checks that every breaker and bulkhead an annotated function names was declared (in
    /// code or by a configuration file), and that no two annotated functions share a call-site
    /// name (they would share metrics, configuration and kill switch), listing every offender.
    /// Call it at startup, after declaring, so a misspelled name fails the deploy instead of
    /// silently getting a default breaker of its own.
    ///
    /// A method without a `name` key is named after its type on its first call
    /// ([`CallSiteInfo::current_name`](crate::callsite::CallSiteInfo::current_name)); until then it is
    /// left out of the shared-name check, since its name is not known yet.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut problems = self.undeclared_names();
        problems.extend(shared_call_site_names());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationError::new(problems))
        }
    }

    /// A sentence per breaker or bulkhead an annotated function uses without a declaration.
    fn undeclared_names(&self) -> Vec<String> {
        let breakers = read(&self.declared_breakers);
        let bulkheads = read(&self.declared_bulkheads);
        let mut problems = Vec::new();
        for site in annotated_call_sites() {
            let uses = [
                ("breaker", site.breaker, &*breakers),
                ("bulkhead", site.bulkhead, &*bulkheads),
            ];
            for (kind, name, declared) in uses {
                let Some(name) = name else { continue };
                if declared.contains(name) {
                    continue;
                }
                let suggestion = closest(name, declared.iter().map(|n| &**n))
                    .map(|close| format!(" (did you mean `{close}`?)"))
                    .unwrap_or_default();
                problems.push(format!(
                    "`{}` ({}:{}) uses {kind} `{name}`, which was never declared{suggestion}",
                    site.current_name(),
                    site.file,
                    site.line
                ));
            }
        }
        problems
    }

    /// The counters of call site `name`, created on first use.
    pub fn call_site_stats(&self, name: &str) -> Arc<CallSiteStats> {
        if let Some(existing) = read(&self.call_sites).get(name) {
            return existing.clone();
        }
        write(&self.call_sites)
            .entry(name.into())
            .or_default()
            .clone()
    }

    /// Every call site that has run (or been built), sorted by name, with its counters.
    pub fn call_site_metrics(&self) -> Vec<CallSiteMetrics> {
        let mut all: Vec<_> = read(&self.call_sites)
            .iter()
            .map(|(name, stats)| stats.metrics(name.clone()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Switches the policies of call site `name` off (`true`: calls run once, plain) or back
    /// on. Returns false if no such call site has been built yet.
    pub fn bypass_call_site(&self, name: &str, bypassed: bool) -> bool {
        match read(&self.call_sites).get(name) {
            Some(stats) => {
                stats.set_bypassed(bypassed);
                true
            }
            None => false,
        }
    }

    /// Sets the configuration undeclared breakers get from now on.
    pub fn set_default_breaker_config(&self, config: BreakerConfig) -> Result<(), ConfigError> {
        config.validate("default")?;
        *write(&self.default_breaker) = config;
        Ok(())
    }

    /// Sets the configuration undeclared bulkheads get from now on.
    pub fn set_default_bulkhead_config(&self, config: BulkheadConfig) -> Result<(), ConfigError> {
        config.validate("default")?;
        *write(&self.default_bulkhead) = config;
        Ok(())
    }

    /// Every breaker, sorted by name, with its state and counters.
    pub fn breakers(&self) -> Vec<BreakerMetrics> {
        let mut all: Vec<_> = read(&self.breakers)
            .values()
            .map(CircuitBreaker::metrics)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every bulkhead, sorted by name, with its occupancy.
    pub fn bulkheads(&self) -> Vec<BulkheadMetrics> {
        let mut all: Vec<_> = read(&self.bulkheads)
            .values()
            .map(Bulkhead::metrics)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Forces the breaker `name` open: every call is rejected until [`reset`](Self::reset).
    pub fn force_open(&self, name: &str) -> Result<(), UnknownName> {
        self.existing_breaker(name)?.force_open();
        Ok(())
    }

    /// Disables the breaker `name`: every call goes through and nothing is recorded until
    /// [`reset`](Self::reset).
    pub fn disable(&self, name: &str) -> Result<(), UnknownName> {
        self.existing_breaker(name)?.disable();
        Ok(())
    }

    /// Closes the breaker `name` with an empty window, whatever its state.
    pub fn reset(&self, name: &str) -> Result<(), UnknownName> {
        self.existing_breaker(name)?.reset();
        Ok(())
    }

    /// The breaker `name`, or an error listing the names there are. Operator commands use it:
    /// a mistyped name must fail loudly, not create a breaker.
    fn existing_breaker(&self, name: &str) -> Result<CircuitBreaker, UnknownName> {
        self.get_breaker(name).ok_or_else(|| {
            let known = self.breaker_names().iter().map(|n| n.to_string()).collect();
            UnknownName::new("circuit breaker", name, known)
        })
    }

    /// Handles to every breaker, in no particular order.
    pub(crate) fn breaker_handles(&self) -> Vec<CircuitBreaker> {
        read(&self.breakers).values().cloned().collect()
    }

    fn breaker_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = read(&self.breakers).keys().cloned().collect();
        names.sort();
        names
    }

    fn bulkhead_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = read(&self.bulkheads).keys().cloned().collect();
        names.sort();
        names
    }
}

/// A sentence per call-site name that more than one annotated function has, with where each is.
fn shared_call_site_names() -> Vec<String> {
    let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for site in annotated_call_sites() {
        if !site.is_name_pending() {
            by_name
                .entry(site.current_name())
                .or_default()
                .push(format!("{}:{}", site.file, site.line));
        }
    }
    by_name
        .into_iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(name, places)| {
            format!(
                "{} call sites share the name `{name}` ({}), and with it their metrics, configuration and kill switch: give each a `name = \"...\"` of its own",
                places.len(),
                places.join(", ")
            )
        })
        .collect()
}

fn check_name(kind: &str, name: &str) -> Result<(), ConfigError> {
    if name.trim().is_empty() {
        return Err(ConfigError::new(kind, "name", name, "must not be empty"));
    }
    Ok(())
}
