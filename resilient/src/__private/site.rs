//! The `static` behind each annotated function: its name, and its policy in the current
//! registry, rebuilt when a reload changes its settings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwapOption;

use crate::error::ConfigError;
use crate::name::MAX_NAME_LEN;
use crate::policy::Policy;
use crate::registry::Registry;

use super::Spec;

/// What a call site's settings from a configuration file are, where the crate reads files.
#[cfg(feature = "serde")]
type FileSettings = Option<crate::config::CallSiteOverrides>;
#[cfg(not(feature = "serde"))]
type FileSettings = NoFiles;

/// Without the `serde` feature no file gives a call site settings.
#[cfg(not(feature = "serde"))]
#[derive(Debug, PartialEq)]
struct NoFiles;

/// The placeholder a method's default name holds until its first call names its type.
pub const SELF_PLACEHOLDER: &str = "{Self}";

/// The `static` behind one annotated function.
///
/// Its policy is built on the first call and rebuilt when the registry's call-site settings
/// change (a reload): each call starts with one atomic load of the current policy and one of
/// the registry's generation. Policies are `&'static` because a call in flight borrows its
/// policy across every attempt, so each one a call site builds is kept for the life of the
/// process, one per distinct set of settings (a few hundred bytes each): switching between
/// two files builds two policies, not one per reload.
#[derive(Debug)]
pub struct CallSite {
    spec: Spec,
    /// The global registry's policy, the one nearly every call uses: `(generation << 8) |
    /// (slot + 1)` of [`fast`](Self::fast), 0 while there is none. Two plain loads, where the
    /// `ArcSwap` below costs a hundred instructions a call.
    fast_stamp: AtomicU64,
    /// The first policies built for the global registry; a slot, once set, never changes.
    fast: [OnceLock<&'static Policy>; FAST_SLOTS],
    /// Every other case: a scoped registry, or more distinct settings than there are slots.
    current: ArcSwapOption<Installed>,
    built: Mutex<Vec<Built>>,
    /// A method's name with its type, set by its first call (see [`CallSite::name_after`]).
    named: OnceLock<&'static str>,
}

/// How many of a call site's policies take the fast path: a process that switches between more
/// distinct settings for one call site than this runs the others through the `ArcSwap`.
const FAST_SLOTS: usize = 4;

/// The policy calls use now, and the registry state it was built for.
#[derive(Debug)]
struct Installed {
    registry: u64,
    generation: u64,
    policy: &'static Policy,
}

/// A policy this call site built, and what for.
#[derive(Debug)]
struct Built {
    registry: u64,
    settings: FileSettings,
    policy: &'static Policy,
}

impl CallSite {
    /// A call site whose policy is built on first use.
    pub const fn new(spec: Spec) -> Self {
        CallSite {
            spec,
            fast_stamp: AtomicU64::new(0),
            fast: [const { OnceLock::new() }; FAST_SLOTS],
            current: ArcSwapOption::const_empty(),
            built: Mutex::new(Vec::new()),
            named: OnceLock::new(),
        }
    }

    /// Where a method's name with its type lands, for its [`CallSiteInfo`] to read.
    pub const fn named(&'static self) -> &'static OnceLock<&'static str> {
        &self.named
    }

    /// Names a method's call site after `Self` on its first call, before its policy (and so its
    /// metrics, configuration and kill switch) is looked up by name.
    ///
    /// The attribute cannot see the impl's type, and the `static` cannot name `Self` (E0401),
    /// so the type comes from the function body, where `Self` is in scope: the spec's name is
    /// `module::{Self}::method`, and this replaces the placeholder with the type's path as
    /// [`std::any::type_name`] writes it, without generic arguments (one `static` serves every
    /// instantiation, so the name must not depend on them). Later calls cost one atomic load.
    #[inline]
    pub fn name_after(&'static self, self_type: fn() -> &'static str) {
        if self.named.get().is_none() {
            self.named
                .get_or_init(|| method_name(self.spec.name, self_type()));
        }
    }

    /// The call site's name: the spec's, or a method's once [`name_after`](Self::name_after)
    /// gave it its type.
    pub fn name(&self) -> &'static str {
        if let Some(named) = self.named.get() {
            return named;
        }
        if self.spec.name.len() <= MAX_NAME_LEN {
            return self.spec.name;
        }
        // A default name (`module_path!()` and the function) the macro could not measure.
        self.named
            .get_or_init(|| leak_within_limit(self.spec.name.to_owned()))
    }

    /// The call site's policy in the current registry: the global one, or the one a test put
    /// in [`scope`](crate::Registry::scope). Built the first time, and after each change of
    /// the registry's call-site settings (that is also when an undeclared breaker or bulkhead
    /// gets its default configuration and its warning).
    #[inline]
    pub fn policy(&'static self) -> &'static Policy {
        match crate::registry::scoped() {
            Some(registry) => self.policy_in(&registry),
            None => {
                let registry = crate::registry();
                let generation = registry.call_site_generation();
                // Acquire: a stamp seen pairs with the slot set before it.
                let stamp = self.fast_stamp.load(Ordering::Acquire);
                if stamp >> 8 == generation
                    && let Some(slot) = (stamp as u8 as usize).checked_sub(1)
                    && let Some(Some(policy)) = self.fast.get(slot).map(OnceLock::get)
                {
                    return policy;
                }
                self.policy_in(registry)
            }
        }
    }

    #[inline(never)]
    fn policy_in(&'static self, registry: &Registry) -> &'static Policy {
        let generation = registry.call_site_generation();
        if let Some(installed) = &*self.current.load()
            && installed.registry == registry.id()
            && installed.generation == generation
        {
            return installed.policy;
        }
        self.install(registry, generation)
    }

    /// Finds or builds the policy for the registry's current settings and makes it current.
    #[cold]
    fn install(&'static self, registry: &Registry, generation: u64) -> &'static Policy {
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        let policy = self.policy_for(&mut built, registry, self.file_settings(registry));
        if std::ptr::eq(registry, crate::registry()) {
            self.install_fast(&built, policy, generation);
        }
        self.current.store(Some(Arc::new(Installed {
            registry: registry.id(),
            generation,
            policy,
        })));
        policy
    }

    /// Puts `policy` in a fast slot for calls in the global registry at `generation`, when
    /// it is among the first [`FAST_SLOTS`] this call site built there. Called under the
    /// `built` lock, so installs do not race each other.
    fn install_fast(&self, built: &[Built], policy: &'static Policy, generation: u64) {
        let global = crate::registry().id();
        let slot = built
            .iter()
            .filter(|known| known.registry == global)
            .position(|known| std::ptr::eq(known.policy, policy));
        match slot {
            Some(slot) if slot < FAST_SLOTS && generation < (1 << 56) => {
                let _ = self.fast[slot].set(policy);
                // Release: a call that sees this stamp sees the slot set.
                self.fast_stamp
                    .store((generation << 8) | (slot as u64 + 1), Ordering::Release);
            }
            _ => self.fast_stamp.store(0, Ordering::Release),
        }
    }

    fn policy_for(
        &self,
        built: &mut Vec<Built>,
        registry: &Registry,
        settings: FileSettings,
    ) -> &'static Policy {
        let known = built
            .iter()
            .find(|known| known.registry == registry.id() && known.settings == settings);
        if let Some(known) = known {
            return known.policy;
        }
        let policy = match self.build(registry, &settings) {
            Ok(policy) => policy,
            Err(error) => {
                #[cfg(feature = "serde")]
                if settings.is_some() {
                    tracing::error!(
                        target: "resilient::registry",
                        call_site = self.name(),
                        %error,
                        "the configuration's settings for this call site do not fit its attribute's; it runs with the attribute's"
                    );
                    return self.policy_for(built, registry, None);
                }
                // The macro refuses, at compile time, every setting `build` could refuse:
                // empty names, zero or inverted timeouts, too many retries, an inverted
                // backoff.
                panic!("#[resilient] checked this call site at compile time, yet: {error}")
            }
        };
        let policy: &'static Policy = Box::leak(Box::new(policy));
        built.push(Built {
            registry: registry.id(),
            settings,
            policy,
        });
        policy
    }

    #[cfg(feature = "serde")]
    fn file_settings(&self, registry: &Registry) -> FileSettings {
        registry.call_site_overrides(self.name())
    }

    #[cfg(not(feature = "serde"))]
    fn file_settings(&self, _registry: &Registry) -> FileSettings {
        NoFiles
    }

    fn build(&self, registry: &Registry, settings: &FileSettings) -> Result<Policy, ConfigError> {
        #[cfg(feature = "serde")]
        if let Some(overrides) = settings {
            return self
                .spec
                .with_overrides(self.name(), overrides)
                .build_in(registry);
        }
        let _ = settings;
        self.spec.builder(self.name()).build_in(registry)
    }
}

/// `module::{Self}::method` with the placeholder replaced: the type's path without generic
/// arguments, `shop::Users` for `shop::Users<u8>` (the module is the type's own, so it goes).
/// Leaked: once per call site, for a name every later lookup borrows.
pub(super) fn method_name(template: &'static str, self_type: &str) -> &'static str {
    let Some((_, method)) = template.rsplit_once("::") else {
        return template;
    };
    let type_path = self_type.split('<').next().unwrap_or(self_type);
    leak_within_limit(format!("{type_path}::{method}"))
}

/// `name`, or, past [`MAX_NAME_LEN`], `…` and its end (the function and its innermost modules,
/// the part that tells call sites apart): every name must pass the registry's rule, or the call
/// site could not build its policy. Leaked: once per call site.
fn leak_within_limit(mut name: String) -> &'static str {
    if name.len() > MAX_NAME_LEN {
        let ellipsis = "…";
        let mut start = name.len() - (MAX_NAME_LEN - ellipsis.len());
        while !name.is_char_boundary(start) {
            start += 1;
        }
        name = format!("{ellipsis}{}", &name[start..]);
    }
    Box::leak(name.into_boxed_str())
}
