//! One kind of named entry (breakers, or bulkheads) with what the registry needs to bound it:
//! which entries were declared and how many were created implicitly, by a lookup.
//!
//! Every method takes a lock for a hash lookup or an insertion only; whatever reads an entry's
//! state (snapshots, metrics) works on cloned handles after the lock is released, so a scrape
//! of a large registry never stalls the callers looking names up. The map is split into
//! shards, so even the copy of the handles holds one shard's lock at a time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::error::ConfigError;

/// A handle a [`Table`] can hold: cheap to clone, and carrying its own name.
pub(super) trait Handle: Clone {
    /// The handle's name, shared so the map's key costs no second copy.
    fn key(&self) -> Arc<str>;
}

impl Handle for CircuitBreaker {
    fn key(&self) -> Arc<str> {
        self.shared_name().clone()
    }
}

impl Handle for Bulkhead {
    fn key(&self) -> Arc<str> {
        self.shared_name().clone()
    }
}

/// What [`Table::get_or_create`] did.
pub(super) enum Lookup<T> {
    /// The name was there.
    Found(T),
    /// The name was not there and was created implicitly.
    Created(T),
    /// The name was not there and the implicit limit forbids creating it; nothing was kept.
    /// `first` is true for the first refusal since the table last had room, so the caller warns
    /// once rather than once per refused name.
    Full { first: bool },
}

/// How many independently locked parts a table's map is split into. A snapshot copies one
/// part's handles at a time, so a lookup or an insertion waits at most for the copy of one
/// part: about 1/64 of the ~2 ms 100 000 handles take to copy.
const SHARDS: usize = 64;

/// Named handles of one kind.
pub(super) struct Table<T> {
    shards: Box<[RwLock<Shard<T>>]>,
    /// Picks a name's shard; seeded per table so request data cannot aim at one shard.
    hasher: RandomState,
    /// Entries created by a lookup and not declared since: what the implicit limit bounds.
    /// Changed only under the write lock of the shard holding the entry.
    implicit: AtomicUsize,
    /// Set by a refusal, cleared when an implicit entry is removed.
    warned_full: AtomicBool,
}

/// One independently locked part of a table.
type Shard<T> = HashMap<Arc<str>, Entry<T>>;

struct Entry<T> {
    handle: T,
    /// Declared on purpose (in code or a configuration file), as opposed to created with the
    /// default configuration on first use: `validate` reports the latter.
    declared: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            implicit: AtomicUsize::new(0),
            warned_full: AtomicBool::new(false),
        }
    }
}

impl<T: Handle> Table<T> {
    fn shard(&self, name: &str) -> &RwLock<Shard<T>> {
        let index = self.hasher.hash_one(name) as usize % SHARDS;
        &self.shards[index]
    }

    fn read(&self, name: &str) -> RwLockReadGuard<'_, Shard<T>> {
        read(self.shard(name))
    }

    fn write(&self, name: &str) -> RwLockWriteGuard<'_, Shard<T>> {
        self.shard(name)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle named `name`, if there is one; allocates nothing.
    pub(super) fn get(&self, name: &str) -> Option<T> {
        self.read(name).get(name).map(|entry| entry.handle.clone())
    }

    /// The handle named `name`, created by `create` if there is none and fewer than `limit`
    /// entries were created implicitly (or `exempt(name)` holds: names bounded by the program
    /// itself, not by its input).
    pub(super) fn get_or_create(
        &self,
        name: &str,
        limit: usize,
        exempt: impl FnOnce(&str) -> bool,
        create: impl FnOnce() -> T,
    ) -> Lookup<T> {
        if let Some(found) = self.get(name) {
            return Lookup::Found(found);
        }
        let mut shard = self.write(name);
        if let Some(entry) = shard.get(name) {
            return Lookup::Found(entry.handle.clone());
        }
        let room = self
            .implicit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !room {
            if !exempt(name) {
                let first = !self.warned_full.swap(true, Ordering::Relaxed);
                return Lookup::Full { first };
            }
            self.implicit.fetch_add(1, Ordering::Relaxed);
        }
        let handle = create();
        let entry = Entry {
            handle: handle.clone(),
            declared: false,
        };
        shard.insert(handle.key(), entry);
        Lookup::Created(handle)
    }

    /// Declares `name`: reconfigures the live handle with `reconfigure`, or inserts the one
    /// `create` makes. Either way the entry no longer counts as implicit.
    pub(super) fn declare(
        &self,
        name: &str,
        reconfigure: impl Fn(&T) -> Result<(), ConfigError>,
        create: impl FnOnce() -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        // Reconfiguring outside the write lock keeps lookups of other names running meanwhile.
        if let Some(existing) = self.get(name) {
            reconfigure(&existing)?;
            self.mark_declared(name);
            return Ok(existing);
        }
        let mut shard = self.write(name);
        if let Some(entry) = shard.get(name) {
            let existing = entry.handle.clone();
            reconfigure(&existing)?;
            drop(shard);
            self.mark_declared(name);
            return Ok(existing);
        }
        let handle = create()?;
        let entry = Entry {
            handle: handle.clone(),
            declared: true,
        };
        shard.insert(handle.key(), entry);
        Ok(handle)
    }

    fn mark_declared(&self, name: &str) {
        if self.read(name).get(name).is_none_or(|entry| entry.declared) {
            return;
        }
        if let Some(entry) = self.write(name).get_mut(name)
            && !entry.declared
        {
            entry.declared = true;
            self.implicit.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Removes `name`; whether it was there. Handles already given out keep working.
    pub(super) fn remove(&self, name: &str) -> bool {
        let mut shard = self.write(name);
        let Some(entry) = shard.remove(name) else {
            return false;
        };
        if !entry.declared {
            self.implicit.fetch_sub(1, Ordering::Relaxed);
            self.warned_full.store(false, Ordering::Relaxed);
        }
        // A map keeps its capacity after a burst; give it back once it is mostly empty, so
        // names created and removed leave nothing behind.
        if shard.is_empty() || shard.len() * 4 < shard.capacity() {
            shard.shrink_to_fit();
        }
        true
    }

    /// A clone of every handle, in no particular order. Each shard's lock is held while its
    /// handles are cloned and nothing more: read their state after.
    pub(super) fn handles(&self) -> Vec<T> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let shard = read(shard);
            all.reserve(shard.len());
            all.extend(shard.values().map(|entry| entry.handle.clone()));
        }
        all
    }

    /// Every name, sorted.
    pub(super) fn names(&self) -> Vec<Arc<str>> {
        let mut names = Vec::new();
        for shard in &self.shards {
            names.extend(read(shard).keys().cloned());
        }
        names.sort();
        names
    }

    /// The names that were declared, in no particular order.
    pub(super) fn declared_names(&self) -> Vec<Arc<str>> {
        let mut names = Vec::new();
        for shard in &self.shards {
            let shard = read(shard);
            let declared = shard.iter().filter(|(_, entry)| entry.declared);
            names.extend(declared.map(|(name, _)| name.clone()));
        }
        names
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}
