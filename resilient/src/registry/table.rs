//! One kind of named entry (breakers, or bulkheads) with what the registry needs to bound it:
//! which entries were declared and how many were created implicitly, by a lookup.
//!
//! Every method takes the map's lock for a hash lookup or an insertion only; whatever reads an
//! entry's state (snapshots, metrics) works on cloned handles after the lock is released, so a
//! scrape of a large registry never stalls the callers looking names up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Named handles of one kind.
pub(super) struct Table<T> {
    entries: RwLock<Entries<T>>,
    /// Set by a refusal, cleared when an implicit entry is removed.
    warned_full: AtomicBool,
}

struct Entries<T> {
    map: HashMap<Arc<str>, Entry<T>>,
    /// Entries created by a lookup and not declared since: what the implicit limit bounds.
    implicit: usize,
}

struct Entry<T> {
    handle: T,
    /// Declared on purpose (in code or a configuration file), as opposed to created with the
    /// default configuration on first use: `validate` reports the latter.
    declared: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            entries: RwLock::new(Entries {
                map: HashMap::new(),
                implicit: 0,
            }),
            warned_full: AtomicBool::new(false),
        }
    }
}

impl<T: Handle> Table<T> {
    fn read(&self) -> RwLockReadGuard<'_, Entries<T>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries<T>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle named `name`, if there is one; allocates nothing.
    pub(super) fn get(&self, name: &str) -> Option<T> {
        self.read().map.get(name).map(|entry| entry.handle.clone())
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
        let mut entries = self.write();
        if let Some(entry) = entries.map.get(name) {
            return Lookup::Found(entry.handle.clone());
        }
        if entries.implicit >= limit && !exempt(name) {
            let first = !self.warned_full.swap(true, Ordering::Relaxed);
            return Lookup::Full { first };
        }
        let handle = create();
        entries.implicit += 1;
        let entry = Entry {
            handle: handle.clone(),
            declared: false,
        };
        entries.map.insert(handle.key(), entry);
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
        let mut entries = self.write();
        if let Some(entry) = entries.map.get(name) {
            let existing = entry.handle.clone();
            reconfigure(&existing)?;
            drop(entries);
            self.mark_declared(name);
            return Ok(existing);
        }
        let handle = create()?;
        let entry = Entry {
            handle: handle.clone(),
            declared: true,
        };
        entries.map.insert(handle.key(), entry);
        Ok(handle)
    }

    fn mark_declared(&self, name: &str) {
        if self.read().map.get(name).is_none_or(|entry| entry.declared) {
            return;
        }
        let mut entries = self.write();
        let Entries { map, implicit } = &mut *entries;
        if let Some(entry) = map.get_mut(name)
            && !entry.declared
        {
            entry.declared = true;
            *implicit -= 1;
        }
    }

    /// Removes `name`; whether it was there. Handles already given out keep working.
    pub(super) fn remove(&self, name: &str) -> bool {
        let mut entries = self.write();
        let Some(entry) = entries.map.remove(name) else {
            return false;
        };
        if !entry.declared {
            entries.implicit -= 1;
            self.warned_full.store(false, Ordering::Relaxed);
        }
        // The map keeps its capacity after a burst; give it back once it is mostly empty, so
        // names created and removed leave nothing behind.
        if entries.map.capacity() > 64 && entries.map.len() * 4 < entries.map.capacity() {
            entries.map.shrink_to_fit();
        }
        true
    }

    /// A clone of every handle, in no particular order, taken under the read lock and nothing
    /// more: read their state after the lock is gone.
    pub(super) fn handles(&self) -> Vec<T> {
        self.read()
            .map
            .values()
            .map(|entry| entry.handle.clone())
            .collect()
    }

    /// Every name, sorted.
    pub(super) fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.read().map.keys().cloned().collect();
        names.sort();
        names
    }

    /// The names that were declared, in no particular order.
    pub(super) fn declared_names(&self) -> Vec<Arc<str>> {
        self.read()
            .map
            .iter()
            .filter(|(_, entry)| entry.declared)
            .map(|(name, _)| name.clone())
            .collect()
    }
}
