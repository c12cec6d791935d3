//! Breakers, bulkheads and retry budgets shared by name across the process.
//!
//! Every call site that names the breaker `"feature_store"` gets the same breaker, so evidence
//! from all of them adds up and an outage opens it for all of them at once. Declare each
//! dependency at startup with its configuration; a name used without a declaration gets the
//! registry's default configuration and one warning naming it.
//!
//! Names may come from request data, so what lookups can create is bounded: at most
//! [`DEFAULT_IMPLICIT_LIMIT`] undeclared breakers, as many undeclared bulkheads and as many
//! call sites unless [`Registry::set_implicit_limit`] says otherwise; past it a new name is
//! refused with [`RegistryError::LimitReached`] and leaves nothing behind.
//! [`Registry::remove_breaker`], [`Registry::remove_bulkhead`] and
//! [`Registry::remove_call_site`] free a name.

mod events;
mod families;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "serde")]
mod reload;
mod scope;
mod snapshot;
mod table;

#[cfg(feature = "serde")]
pub use self::reload::{ChangeAction, EntryChange, EntryKind, ReloadReport};
pub use self::scope::Scoped;
pub(crate) use self::scope::scoped;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::cache::CacheSlot;
use crate::callsite::{CallSiteDescription, CallSiteStats, annotated_call_sites};
use crate::error::{ConfigError, RegistryError, UnknownName, ValidationError};
use crate::event::Listeners;
use crate::name::check_name;
use crate::retry::{BudgetConfig, RetryBudget};
use crate::suggest::closest;
use table::{Lookup, Table};

/// How many undeclared breakers, how many undeclared bulkheads and how many call sites a
/// registry creates on first use before it refuses new names (see
/// [`Registry::set_implicit_limit`]).
pub const DEFAULT_IMPLICIT_LIMIT: usize = 1_000;

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The next registry's [`id`](Registry::id).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The process-wide registry, which the `#[resilient]` attribute and
/// [`PolicyBuilder::build`](crate::PolicyBuilder::build) use.
pub fn registry() -> &'static Registry {
    &GLOBAL
}

/// A set of named breakers, bulkheads and retry budgets. Use [`registry()`] for the
/// process-wide one and [`Registry::new`] for an independent one (tests, embedding).
pub struct Registry {
    breakers: Table<CircuitBreaker>,
    bulkheads: Table<Bulkhead>,
    /// Per-key breaker families (see [`crate::family`]).
    families: Table<crate::family::BreakerFamily>,
    budgets: RwLock<HashMap<Arc<str>, Arc<RetryBudget>>>,
    pub(super) call_sites: RwLock<HashMap<Arc<str>, Arc<CallSiteStats>>>,
    /// The stale caches of the call sites whose policy has one, next to their counters and
    /// bounded by them (a cache is made only for a name `call_sites` accepted).
    stale_caches: RwLock<HashMap<Arc<str>, Arc<CacheSlot>>>,
    /// How many breakers, bulkheads and call sites may be created on first use (each kind
    /// counted apart).
    implicit_limit: AtomicUsize,
    default_breaker: RwLock<BreakerConfig>,
    default_bulkhead: RwLock<BulkheadConfig>,
    /// Where every breaker and bulkhead of this registry reports its events.
    listeners: Arc<Listeners>,
    /// Call-site settings from the last configuration file applied, for the call sites to
    /// pick up.
    #[cfg(feature = "serde")]
    call_site_overrides: RwLock<HashMap<Arc<str>, crate::config::CallSiteOverrides>>,
    /// Bumped whenever the call-site settings change, so call sites rebuild their policy.
    call_site_generation: AtomicU64,
    /// Tells this registry's policies from another's in a call site (see
    /// [`scope`](Registry::scope)).
    id: u64,
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

pub(super) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// An empty registry with the documented default configurations.
    pub fn new() -> Self {
        Registry {
            breakers: Table::default(),
            bulkheads: Table::default(),
            families: Table::default(),
            budgets: RwLock::default(),
            call_sites: RwLock::default(),
            stale_caches: RwLock::default(),
            implicit_limit: AtomicUsize::new(DEFAULT_IMPLICIT_LIMIT),
            default_breaker: RwLock::new(BreakerConfig::default()),
            default_bulkhead: RwLock::new(BulkheadConfig::default()),
            listeners: Arc::new(Listeners::new()),
            #[cfg(feature = "serde")]
            call_site_overrides: RwLock::default(),
            call_site_generation: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Changes whenever the call-site settings do.
    pub(crate) fn call_site_generation(&self) -> u64 {
        self.call_site_generation.load(Ordering::Acquire)
    }

    /// Unique among the registries of this process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Where this registry's breakers and bulkheads report their events: subscribe with
    /// [`on_event`](Self::on_event) or [`subscribe`](Self::subscribe), or hand it to a
    /// breaker made outside the registry.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// Declares the breaker `name` with `config`. Declaring a name again reconfigures the live
    /// breaker in place: its state is kept and every handle follows. Declared breakers do not
    /// count toward the [implicit limit](Self::set_implicit_limit).
    pub fn declare_breaker(
        &self,
        name: &str,
        config: BreakerConfig,
    ) -> Result<CircuitBreaker, ConfigError> {
        check_name("circuit breaker", name)?;
        config.validate(name)?;
        self.breakers.declare(
            name,
            |live| live.reconfigure(config.clone()),
            || CircuitBreaker::with_listeners(name, config.clone(), self.listeners.clone()),
        )
    }

    /// The breaker `name`; created with the default configuration, and a warning, if it was
    /// never declared and the registry holds fewer undeclared breakers than its
    /// [implicit limit](Self::set_implicit_limit). Looking up an existing name allocates
    /// nothing.
    pub fn breaker(&self, name: &str) -> Result<CircuitBreaker, RegistryError> {
        if let Some(existing) = self.breakers.get(name) {
            return Ok(existing);
        }
        check_name("circuit breaker", name)?;
        let lookup = self.breakers.get_or_create(
            name,
            self.implicit_limit(),
            crate::callsite::names_breaker,
            || {
                let config = read(&self.default_breaker).clone();
                CircuitBreaker::with_listeners(name, config, self.listeners.clone())
                    .expect("the default breaker configuration is validated when it is set")
            },
        );
        self.looked_up("circuit breaker", name, lookup)
    }

    /// The breaker `name`, if it exists.
    pub fn get_breaker(&self, name: &str) -> Option<CircuitBreaker> {
        self.breakers.get(name)
    }

    /// Removes the breaker `name` from the registry; whether it was there. Handles already
    /// given out (policies, call sites) keep working with the removed breaker, but the name is
    /// free: the next lookup or declaration creates a new breaker.
    pub fn remove_breaker(&self, name: &str) -> bool {
        self.breakers.remove(name)
    }

    /// Declares the bulkhead `name`; declaring again reconfigures it in place. Declared
    /// bulkheads do not count toward the [implicit limit](Self::set_implicit_limit).
    pub fn declare_bulkhead(
        &self,
        name: &str,
        config: BulkheadConfig,
    ) -> Result<Bulkhead, ConfigError> {
        check_name("bulkhead", name)?;
        config.validate(name)?;
        self.bulkheads.declare(
            name,
            |live| live.reconfigure(config),
            || Bulkhead::with_listeners(name, config, self.listeners.clone()),
        )
    }

    /// The bulkhead `name`; created with the default configuration, and a warning, if it was
    /// never declared and the registry holds fewer undeclared bulkheads than its
    /// [implicit limit](Self::set_implicit_limit). Looking up an existing name allocates
    /// nothing.
    pub fn bulkhead(&self, name: &str) -> Result<Bulkhead, RegistryError> {
        if let Some(existing) = self.bulkheads.get(name) {
            return Ok(existing);
        }
        check_name("bulkhead", name)?;
        let lookup = self.bulkheads.get_or_create(
            name,
            self.implicit_limit(),
            crate::callsite::names_bulkhead,
            || {
                let config = *read(&self.default_bulkhead);
                Bulkhead::with_listeners(name, config, self.listeners.clone())
                    .expect("the default bulkhead configuration is validated when it is set")
            },
        );
        self.looked_up("bulkhead", name, lookup)
    }

    /// The bulkhead `name`, if it exists.
    pub fn get_bulkhead(&self, name: &str) -> Option<Bulkhead> {
        self.bulkheads.get(name)
    }

    /// Removes the bulkhead `name` from the registry; whether it was there. Handles already
    /// given out keep working (and keep their slots), but the name is free.
    pub fn remove_bulkhead(&self, name: &str) -> bool {
        self.bulkheads.remove(name)
    }

    /// Sets how many undeclared breakers, and separately how many undeclared bulkheads,
    /// [`breaker`](Self::breaker) and [`bulkhead`](Self::bulkhead) may create, and how many
    /// call sites (policy names) [`PolicyBuilder::build_in`](crate::PolicyBuilder::build_in)
    /// may add; the default is [`DEFAULT_IMPLICIT_LIMIT`]. Past it a new name gets
    /// [`RegistryError::LimitReached`] (a [`ConfigError`] from the builder). Declared names
    /// never count, and names an `#[resilient]` attribute uses are never refused (the program's
    /// code bounds those). Lowering the limit below what exists removes nothing; it stops
    /// further creation.
    pub fn set_implicit_limit(&self, limit: usize) {
        self.implicit_limit.store(limit, Ordering::Relaxed);
    }

    /// The limit [`set_implicit_limit`](Self::set_implicit_limit) set.
    pub fn implicit_limit(&self) -> usize {
        self.implicit_limit.load(Ordering::Relaxed)
    }

    /// Turns what a table lookup did into the caller's answer, warning about what it created
    /// and, once per filling, about what it refused.
    fn looked_up<T>(
        &self,
        kind: &'static str,
        name: &str,
        lookup: Lookup<T>,
    ) -> Result<T, RegistryError> {
        match lookup {
            Lookup::Found(handle) => Ok(handle),
            Lookup::Created(handle) => {
                warn_created(kind, name);
                Ok(handle)
            }
            Lookup::Full { first } => {
                let limit = self.implicit_limit();
                if first {
                    tracing::warn!(
                        target: "resilient::registry",
                        kind,
                        name,
                        limit,
                        "{kind} `{name}` refused: the registry already holds {limit} undeclared {kind}s; further undeclared names are refused without another warning until one is removed"
                    );
                }
                Err(RegistryError::LimitReached {
                    kind,
                    name: name.to_owned(),
                    limit,
                })
            }
        }
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
        check_name("retry budget", name)?;
        let mut budgets = write(&self.budgets);
        if let Some(existing) = budgets.get(name) {
            return Ok(existing.clone());
        }
        let budget = Arc::new(RetryBudget::new(name, config)?);
        budgets.insert(name.into(), budget.clone());
        Ok(budget)
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
        let breakers = self.breakers.declared_names();
        let bulkheads = self.bulkheads.declared_names();
        let families = self.families.declared_names();
        let mut problems = Vec::new();
        for site in annotated_call_sites() {
            let uses = [
                ("breaker", site.breaker, &breakers),
                ("bulkhead", site.bulkhead, &bulkheads),
                ("breaker family", site.breaker_family, &families),
            ];
            for (kind, name, declared) in uses {
                let Some(name) = name else { continue };
                if declared.iter().any(|known| &**known == name) {
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

    /// The counters of call site `name`, if it has run or a configuration file named it.
    pub fn call_site_stats(&self, name: &str) -> Option<Arc<CallSiteStats>> {
        read(&self.call_sites).get(name).cloned()
    }

    /// The counters of call site `name`, created on first use: for the names a configuration
    /// file lists, which the file bounds (request data reaches only
    /// [`policy_stats`](Self::policy_stats), which is bounded).
    #[cfg(feature = "serde")]
    pub(crate) fn file_call_site_stats(&self, name: &str) -> Arc<CallSiteStats> {
        if let Some(existing) = read(&self.call_sites).get(name) {
            return existing.clone();
        }
        write(&self.call_sites)
            .entry(name.into())
            .or_default()
            .clone()
    }

    /// The counters of the policy named `name`, for [`PolicyBuilder::build_in`]: created on
    /// first use while the registry holds fewer call sites than its
    /// [implicit limit](Self::set_implicit_limit) (names of `#[resilient]` functions are never
    /// refused: the program's code bounds them).
    ///
    /// [`PolicyBuilder::build_in`]: crate::PolicyBuilder::build_in
    pub(crate) fn policy_stats(&self, name: &str) -> Result<Arc<CallSiteStats>, RegistryError> {
        if let Some(existing) = read(&self.call_sites).get(name) {
            return Ok(existing.clone());
        }
        let mut sites = write(&self.call_sites);
        if let Some(existing) = sites.get(name) {
            return Ok(existing.clone());
        }
        let limit = self.implicit_limit();
        if sites.len() >= limit && !crate::callsite::is_annotated(name) {
            return Err(RegistryError::LimitReached {
                kind: "call site",
                name: name.to_owned(),
                limit,
            });
        }
        Ok(sites.entry(name.into()).or_default().clone())
    }

    /// Forgets the counters of call site `name`; whether there were any. Policies already built
    /// keep counting into theirs, unseen; a policy built under the name afterwards starts from
    /// zero. Frees room under the [implicit limit](Self::set_implicit_limit).
    pub fn remove_call_site(&self, name: &str) -> bool {
        write(&self.stale_caches).remove(name);
        write(&self.call_sites).remove(name).is_some()
    }

    /// The stale cache of call site `name`, whose counters are `stats`: one per name, kept
    /// across rebuilds of its policy, dropped with its counters by
    /// [`remove_call_site`](Self::remove_call_site).
    pub(crate) fn cache_slot(&self, name: &str, stats: &Arc<CallSiteStats>) -> Arc<CacheSlot> {
        if let Some(existing) = read(&self.stale_caches).get(name) {
            return existing.clone();
        }
        write(&self.stale_caches)
            .entry(name.into())
            .or_insert_with_key(|name| {
                Arc::new(CacheSlot::new(
                    name.clone(),
                    stats.clone(),
                    self.listeners.clone(),
                ))
            })
            .clone()
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
        self.breakers.handles()
    }

    /// Handles to every bulkhead, in no particular order.
    pub(crate) fn bulkhead_handles(&self) -> Vec<Bulkhead> {
        self.bulkheads.handles()
    }

    fn breaker_names(&self) -> Vec<Arc<str>> {
        self.breakers.names()
    }

    fn bulkhead_names(&self) -> Vec<Arc<str>> {
        self.bulkheads.names()
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

/// The one warning an implicitly created entry gets, with the field (`breaker` or `bulkhead`)
/// log queries select on.
fn warn_created(kind: &str, name: &str) {
    if kind == "bulkhead" {
        tracing::warn!(
            target: "resilient::registry",
            bulkhead = name,
            "bulkhead `{name}` was used without being declared: it gets the default configuration (declare it at startup to choose one)"
        );
    } else {
        tracing::warn!(
            target: "resilient::registry",
            breaker = name,
            "{kind} `{name}` was used without being declared: it gets the default configuration (declare it at startup to choose one)"
        );
    }
}
