//! Stale-while-failing answers: the last good value per key, served when a call fails or is
//! rejected, as long as it is at most [`CacheConfig::max_age`] old.
//!
//! A policy built with [`PolicyBuilder::cache`](crate::PolicyBuilder::cache) keeps one cache per
//! call site name in its registry, shared by every policy built under that name, so a reload
//! that rebuilds the policy keeps what was cached. The cache's limits are the policy's: each
//! store and serve uses those of the policy it goes through.
//!
//! * [`Policy::call_cached`](crate::Policy::call_cached) runs a call, stores its success under
//!   a key, and on a transient error or a rejection answers with the value stored under that
//!   key when it is fresh enough (a permanent error, such as a 404, is an answer: it comes
//!   through).
//! * [`Policy::stale_cache`](crate::Policy::stale_cache) gives the cache itself, to
//!   [`store`](StaleCache::store) and [`serve`](StaleCache::serve) by hand.
//! * [`observe`] tells the caller that an answer was stale, and how old, without changing any
//!   signature. Each stale answer is also counted in the call site's `stale_served`, sent as
//!   [`Event::StaleServed`] and logged on `resilient::cache`: at WARN for the first of every
//!   ten seconds (with how many were served since the last warning), at DEBUG for the others,
//!   so an outage answered from the cache is seen without a line per request.
//!
//! An entry is served while its age is at most `max_age`, the limit included: with
//! `max_age` = 5 minutes, a value stored at 12:00:00 is served until 12:05:00 and not after.
//! Past the limit it is dropped, never served.
//!
//! Memory is bounded: at most `capacity` keys ([`DEFAULT_CACHE_CAPACITY`] unless set); storing
//! a new key into a full cache evicts the entry stored longest ago.

mod entries;
mod observe;
mod slot;

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::error::ConfigError;
use crate::event::Event;
use crate::timeout::check_duration;

use self::entries::Lookup;
pub use self::observe::{Observe, observe};
pub(crate) use self::slot::CacheSlot;

/// How many keys a stale cache holds unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 1_000;

/// The most keys a stale cache may be configured to hold.
pub const MAX_CACHE_CAPACITY: usize = 1_000_000;

/// A stale cache's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How old a value may be and still be served (inclusive). Attribute and file key `cache`.
    pub max_age: Duration,
    /// How many keys are kept; past it the entry stored longest ago is evicted. Attribute and
    /// file key `cache_capacity`.
    pub capacity: usize,
}

impl CacheConfig {
    /// Values served up to `max_age` old, at most [`DEFAULT_CACHE_CAPACITY`] keys.
    pub fn new(max_age: Duration) -> Self {
        CacheConfig {
            max_age,
            capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// The same limits holding at most `capacity` keys.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Checks that `max_age` (field `cache`) is positive and at most
    /// [`MAX_DURATION`](crate::MAX_DURATION), and that `capacity` (field `cache_capacity`) is
    /// from 1 to [`MAX_CACHE_CAPACITY`].
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        check_max_age(subject, self.max_age)?;
        check_capacity(subject, self.capacity)
    }
}

pub(crate) fn check_max_age(subject: &str, max_age: Duration) -> Result<(), ConfigError> {
    check_duration(subject, "cache", max_age)?;
    if max_age.is_zero() {
        return Err(ConfigError::new(
            subject,
            "cache",
            max_age,
            "must be greater than zero",
        ));
    }
    Ok(())
}

pub(crate) fn check_capacity(subject: &str, capacity: usize) -> Result<(), ConfigError> {
    if !(1..=MAX_CACHE_CAPACITY).contains(&capacity) {
        return Err(ConfigError::new(
            subject,
            "cache_capacity",
            capacity,
            "must be from 1 to 1000000 (resilient::cache::MAX_CACHE_CAPACITY)",
        ));
    }
    Ok(())
}

/// A value served from the cache after a failure, and how old it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stale<V> {
    /// The last good value stored under the key.
    pub value: V,
    /// How long ago it was stored, on tokio's clock.
    pub age: Duration,
}

/// A policy's cache settings and its call site's cache.
#[derive(Debug, Clone)]
pub(crate) struct Attached {
    pub(crate) config: CacheConfig,
    pub(crate) slot: Arc<CacheSlot>,
}

impl Attached {
    /// The cache for `(K, V)` under this policy's limits (see [`CacheSlot`] for a second pair).
    pub(crate) fn typed<K, V>(&self) -> Option<StaleCache<'_, K, V>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let storage = self.slot.storage::<K, V>()?;
        Some(StaleCache {
            config: self.config,
            slot: &self.slot,
            storage,
        })
    }
}

/// A call site's stale cache, seen through one policy: its values are the call site's, its
/// limits the policy's. Get it from [`Policy::stale_cache`](crate::Policy::stale_cache).
///
/// Each store and serve takes one short lock (a map insert or lookup, a pointer clone); values
/// are cloned outside it, and no lock is ever held across an `.await`.
pub struct StaleCache<'a, K, V> {
    config: CacheConfig,
    slot: &'a CacheSlot,
    storage: &'a slot::Shared<K, V>,
}

impl<K, V> Clone for StaleCache<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for StaleCache<'_, K, V> {}

impl<K, V> fmt::Debug for StaleCache<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaleCache")
            .field("call_site", &self.slot.call_site)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<K, V> StaleCache<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Stores `value` as the last good answer for `key`, replacing any older one; into a full
    /// cache, a new key evicts the entry stored longest ago.
    pub fn store(&self, key: K, value: &V) {
        let value = Arc::new(value.clone());
        let queued = key.clone();
        let now = tokio::time::Instant::now();
        let replaced = self
            .storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .store((key, queued), value, now, self.config.capacity);
        // Dropped here, outside the lock: a value's drop may be slow.
        drop(replaced);
    }

    /// The value stored for `key` if it is at most [`CacheConfig::max_age`] old, reported as a
    /// stale answer (a warning, the call site's `stale_served` counter,
    /// [`Event::StaleServed`], and the age to an enclosing [`observe`]). An older value is
    /// dropped and `None` returned.
    pub fn serve(&self, key: &K) -> Option<Stale<V>> {
        let now = tokio::time::Instant::now();
        let lookup = self
            .storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lookup(key, now, self.config.max_age);
        match lookup {
            Lookup::Fresh(value, age) => {
                self.report(age);
                Some(Stale {
                    value: V::clone(&value),
                    age,
                })
            }
            Lookup::Expired(value) => {
                // Dropped here, outside the lock.
                drop(value);
                None
            }
            Lookup::Missing => None,
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limits this view stores and serves under.
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    fn report(&self, age: Duration) {
        let slot = self.slot;
        slot.stats.record_stale_served();
        match slot.stale_warning() {
            Some(held_back) => tracing::warn!(
                target: "resilient::cache",
                call_site = %slot.call_site,
                age = ?age,
                stale_answers_since_last_warning = held_back,
                "call failed, serving a stale cached value"
            ),
            None => tracing::debug!(
                target: "resilient::cache",
                call_site = %slot.call_site,
                age = ?age,
                "call failed, serving a stale cached value"
            ),
        }
        slot.listeners.emit(|| Event::StaleServed {
            call_site: slot.call_site.clone(),
            age,
        });
        observe::report(age);
    }
}
