//! Per-key circuit breakers: one breaker per host, tenant or shard of a dependency, all from
//! one configuration, in bounded memory.
//!
//! One breaker for "the upstream" opens for every host when one host fails. A
//! [`BreakerFamily`] gives each key its own breaker instead:
//!
//! ```
//! use resilient::{BreakerConfig, Registry};
//! use resilient::family::FamilyConfig;
//!
//! let registry = Registry::new();
//! let config = FamilyConfig::new(BreakerConfig::consecutive_failures(5)).with_max_keys(1_000);
//! registry.declare_breaker_family("upstream", config).unwrap();
//!
//! let family = registry.breaker_family("upstream").unwrap();
//! let breaker = family.breaker("db-3.internal").unwrap();
//! assert_eq!(breaker.name(), "upstream[\"db-3.internal\"]");
//! ```
//!
//! The attribute takes the key as an expression, evaluated per call before the body runs;
//! `breaker` then names the family:
//!
//! ```
//! use resilient::{Rejection, resilient};
//!
//! #[derive(Debug)]
//! enum FetchError {
//!     Down,
//!     Rejected(Rejection),
//! }
//!
//! impl From<Rejection> for FetchError {
//!     fn from(rejection: Rejection) -> Self {
//!         FetchError::Rejected(rejection)
//!     }
//! }
//!
//! // One breaker per host: a failing host opens its own breaker, not the others'.
//! #[resilient(breaker = "upstream", breaker_key = host, retries = 2)]
//! async fn fetch(host: &str, path: &str) -> Result<String, FetchError> {
//!     let _ = (host, path); // call the host here
//!     Err(FetchError::Down)
//! }
//! ```
//!
//! A [`Policy`](crate::Policy) driven step by step takes the key's breaker with
//! [`Execution::use_breaker`](crate::Execution::use_breaker), and the tower layer (feature
//! `tower`) with `PolicyLayer::breaker_key`.
//!
//! Keys come from request data, so what they can cost is bounded:
//!
//! - **Key limit.** A family holds at most [`FamilyConfig::max_keys`] keys
//!   ([`DEFAULT_MAX_KEYS`] by default). A new key past it evicts the idlest keys whose
//!   breakers may go (see below), 1/64 of the limit at once so that the scan for them is
//!   paid once per batch; only when no held key may go is the new key refused, with
//!   [`KeyRefused`] (a typed error, never a panic, never growth past the limit).
//! - **Idle eviction.** A key unused for [`FamilyConfig::idle_after`] ([`DEFAULT_IDLE_AFTER`])
//!   is dropped by the sweep of its shard that new keys landing there run (at most once per
//!   quarter of the idle time, so within 1.25 × `idle_after` while new keys arrive), by
//!   [`BreakerFamily::evict_idle`], or first when room is needed.
//! - **What may go.** A closed breaker; an open one only once its open wait has ended; a
//!   half-open one only with no probe in flight. An open breaker is never dropped while it
//!   waits, so neither idleness nor a flood of new keys can reset a failing key early. A key
//!   used again after it was dropped starts with a new, closed breaker, which lets its calls
//!   through where the old one, its wait over, would have admitted probes first: the price of
//!   bounded memory, paid only by a key whose open wait has already ended. Forced open and
//!   disabled breakers are an operator's decision and are never dropped.
//! - **Keys are hashed, not stored**, with a hasher seeded per family: 8 bytes per key
//!   whatever its type, and the key type needs only `Hash + Debug` (no `Clone`, `Send` or
//!   `'static`). Two keys share one breaker only if their 64-bit hashes collide, a chance of
//!   about `n² / 2⁶⁵` with `n` keys held, which request data cannot raise without the seed.
//!   The breaker's name, `family["key"]`, is the key's `Debug` text cut to [`MAX_LABEL_LEN`]
//!   bytes, made once when the key is created.
//!
//! In the attribute, a refused key (or a family name the registry's implicit limit refuses)
//! rejects the call as [`Rejection::CircuitOpen`](crate::Rejection::CircuitOpen) naming the
//! family, with no `retry_after`.
//!
//! A lookup of a held key takes one of 64 shards' read locks and allocates nothing; the
//! breaker's own closed success path is unchanged. [`BreakerFamily::snapshot`] reports totals
//! and at most [`MAX_LISTED_OPEN_KEYS`] open keys, so metrics labels stay bounded.

mod config;
mod map;
#[cfg(feature = "metrics")]
mod metrics;
mod snapshot;

use std::fmt::{self, Debug, Write as _};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::time::Instant;

pub use config::{DEFAULT_IDLE_AFTER, DEFAULT_MAX_KEYS, FamilyConfig};
pub use snapshot::{FamilySnapshot, MAX_LISTED_OPEN_KEYS, OpenKey};

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::error::ConfigError;
use crate::event::Listeners;
use map::{Bounds, KeyMap};

/// The longest key text a per-key breaker's name carries, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// A named set of per-key circuit breakers sharing one configuration. Clones share the family.
#[derive(Clone)]
pub struct BreakerFamily {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    config: ArcSwap<FamilyConfig>,
    /// Seeded per family, so request data cannot aim at collisions or at one shard.
    seed: RandomState,
    /// The idle clock's zero; tokio's clock, so tests can pause and advance it.
    epoch: Instant,
    keys: KeyMap,
    refused: AtomicU64,
    listeners: Option<Arc<Listeners>>,
    #[cfg(feature = "metrics")]
    exported: metrics::Exported,
}

/// A new key was refused: the family holds its maximum of keys and none of them may be
/// dropped (every one is open and waiting, probing, forced open or disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRefused {
    /// The family's name.
    pub family: Arc<str>,
    /// Its key limit.
    pub max_keys: usize,
}

impl fmt::Display for KeyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "breaker family `{}` holds its maximum of {} keys and none may be dropped: new key refused",
            self.family, self.max_keys
        )
    }
}

impl std::error::Error for KeyRefused {}

/// A refused key rejects its call as an open breaker named after the family, with no
/// `retry_after`: room comes back when one of the family's open breakers ends its open wait,
/// which no single key's breaker can say.
impl From<KeyRefused> for crate::error::Rejection {
    fn from(refused: KeyRefused) -> Self {
        crate::error::Rejection::CircuitOpen {
            breaker: refused.family,
            retry_after: None,
        }
    }
}

impl fmt::Debug for BreakerFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFamily")
            .field("name", &self.inner.name)
            .field("keys", &self.len())
            .finish()
    }
}

impl BreakerFamily {
    /// A family outside any registry, reporting no events.
    pub fn new(name: &str, config: FamilyConfig) -> Result<Self, ConfigError> {
        Self::build(name, config, None)
    }

    pub(crate) fn build(
        name: &str,
        config: FamilyConfig,
        listeners: Option<Arc<Listeners>>,
    ) -> Result<Self, ConfigError> {
        config.validate(name)?;
        Ok(BreakerFamily {
            inner: Arc::new(Inner {
                name: name.into(),
                config: ArcSwap::from_pointee(config),
                seed: RandomState::new(),
                epoch: Instant::now(),
                keys: KeyMap::default(),
                refused: AtomicU64::new(0),
                listeners,
                #[cfg(feature = "metrics")]
                exported: metrics::Exported::default(),
            }),
        })
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The family's name, shared.
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.inner.name
    }

    /// The family's configuration.
    pub fn config(&self) -> Arc<FamilyConfig> {
        self.inner.config.load_full()
    }

    /// The breaker of `key`, created closed on first use. Refused only when the family is
    /// full and no held key may be dropped (see the [module notes](self)).
    pub fn breaker<K: Hash + Debug + ?Sized>(&self, key: &K) -> Result<CircuitBreaker, KeyRefused> {
        let inner = &*self.inner;
        let hash = inner.seed.hash_one(key);
        let now = self.now();
        if let Some(found) = inner.keys.get(hash, now) {
            return Ok(found);
        }
        self.create(hash, now, key)
    }

    #[cold]
    fn create<K: Debug + ?Sized>(
        &self,
        hash: u64,
        now: u64,
        key: &K,
    ) -> Result<CircuitBreaker, KeyRefused> {
        let inner = &*self.inner;
        let config = inner.config.load();
        let bounds = Bounds {
            now,
            idle: micros(config.idle_after()),
            max_keys: config.max_keys(),
        };
        let made = inner.keys.insert(hash, &bounds, || {
            let name = breaker_name(&inner.name, key);
            let breaker = config.breaker().clone();
            let made = match &inner.listeners {
                Some(listeners) => {
                    CircuitBreaker::with_listeners(&name, breaker, listeners.clone())
                }
                None => CircuitBreaker::new(&name, breaker),
            };
            made.expect("the family's breaker configuration was validated when it was set")
        });
        made.ok_or_else(|| {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            KeyRefused {
                family: inner.name.clone(),
                max_keys: bounds.max_keys,
            }
        })
    }

    /// Whether `key` has a breaker now; does not count as a use.
    pub fn contains<K: Hash + ?Sized>(&self, key: &K) -> bool {
        self.inner.keys.contains(self.inner.seed.hash_one(key))
    }

    /// How many keys the family holds.
    pub fn len(&self) -> usize {
        self.inner.keys.len()
    }

    /// Whether the family holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key idle for the configured time whose breaker may go; how many. Idle
    /// keys are also dropped as new keys arrive, so calling this is never required to stay
    /// within bounds, only to give memory back sooner.
    pub fn evict_idle(&self) -> usize {
        let idle = micros(self.inner.config.load().idle_after());
        self.inner.keys.sweep(self.now(), idle)
    }

    /// Replaces the configuration: held keys' breakers are reconfigured in place (see
    /// [`CircuitBreaker::reconfigure`]), new keys get the new one, a lower key limit applies
    /// from the next new key on.
    pub fn reconfigure(&self, config: FamilyConfig) -> Result<(), ConfigError> {
        config.validate(&self.inner.name)?;
        let breaker = config.breaker().clone();
        self.inner.config.store(Arc::new(config));
        for held in self.inner.keys.handles(|_| true) {
            held.reconfigure(breaker.clone())?;
        }
        Ok(())
    }

    /// Totals and at most [`MAX_LISTED_OPEN_KEYS`] open keys. Copies the handles of open
    /// keys one shard's read lock at a time and reads their state with no lock held.
    pub fn snapshot(&self) -> FamilySnapshot {
        let inner = &*self.inner;
        let open = inner.keys.handles(|breaker| is_open(breaker.state()));
        FamilySnapshot::new(
            inner.name.clone(),
            inner.keys.len(),
            inner.config.load().max_keys(),
            open,
            inner.keys.evicted(),
            inner.refused.load(Ordering::Relaxed),
        )
    }

    fn now(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.inner.epoch);
        micros(elapsed)
    }
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Whether a breaker in `state` refuses (some) calls: what a snapshot lists.
fn is_open(state: BreakerState) -> bool {
    matches!(
        state,
        BreakerState::Open | BreakerState::HalfOpen | BreakerState::ForcedOpen
    )
}

/// `family["key"]`, the key's `Debug` text cut at [`MAX_LABEL_LEN`] bytes (on a character
/// boundary), so a huge key costs no more than a short one.
fn breaker_name<K: Debug + ?Sized>(family: &str, key: &K) -> String {
    let mut label = Bounded(String::new());
    let _ = write!(label, "{key:?}");
    format!("{family}[{}]", label.0)
}

/// A `fmt::Write` that keeps the first [`MAX_LABEL_LEN`] bytes and then stops formatting.
struct Bounded(String);

impl fmt::Write for Bounded {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Past the limit already (a `Debug` impl may ignore the error below and write on).
        let Some(room) = MAX_LABEL_LEN.checked_sub(self.0.len()) else {
            return Err(fmt::Error);
        };
        if text.len() <= room {
            self.0.push_str(text);
            return Ok(());
        }
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&text[..end]);
        self.0.push('…');
        // Stops the formatting of a long key: the rest would be thrown away.
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::{self, Debug};

    use super::{MAX_LABEL_LEN, breaker_name};

    /// A key whose `Debug` ignores write errors and keeps writing.
    struct Stubborn;

    impl Debug for Stubborn {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for _ in 0..1_000 {
                let _ = f.write_str("ééééééééé");
            }
            Ok(())
        }
    }

    #[test]
    fn a_key_that_writes_on_after_the_limit_gets_a_bounded_name() {
        let name = breaker_name("f", &Stubborn);
        assert!(
            name.len() <= "f[]".len() + MAX_LABEL_LEN + '…'.len_utf8(),
            "{name}"
        );
        assert!(name.ends_with("…]"));
    }
}
