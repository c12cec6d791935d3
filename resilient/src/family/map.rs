//! The sharded map of one family's keys, with an idle clock per key.
//!
//! Keys are stored as their 64-bit hash under the family's randomly seeded hasher, never as
//! themselves: a key costs 8 bytes whatever its type, the key type needs no `Clone + Send +
//! Sync + 'static`, and request data cannot pick keys that collide, because it cannot know the
//! seed. Two distinct keys share a breaker only if their hashes collide: with `n` keys held,
//! about `n² / 2⁶⁵`, one in ten billion for 10 000 keys.
//!
//! A lookup of a held key takes one shard's read lock for a hash probe and a clone of the
//! handle, and allocates nothing. Creating, evicting and sweeping take one shard's write lock,
//! never two locks at once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::breaker::CircuitBreaker;

/// How many independently locked parts the map is split into.
const SHARDS: usize = 64;

/// The keys are already uniformly random 64-bit hashes: hashing them again buys nothing.
#[derive(Default)]
pub(super) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Shard = HashMap<u64, Slot, BuildHasherDefault<Identity>>;

/// One key's breaker and when it was last used.
struct Slot {
    breaker: CircuitBreaker,
    /// Microseconds since the family's epoch.
    last_used: AtomicU64,
}

/// How stale a key's idle clock may get before a use writes it, in microseconds: every
/// caller of a hot key writing the same word would bounce its cache line between cores, and
/// idleness is measured in seconds.
const CLOCK_GRANULE: u64 = 1_000;

impl Slot {
    #[inline]
    fn touch(&self, now: u64) {
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= CLOCK_GRANULE {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// The keys of one family.
pub(super) struct KeyMap {
    shards: Box<[RwLock<Shard>]>,
    /// When each shard was last swept for idle keys, in microseconds since the epoch.
    swept_at: Box<[AtomicU64]>,
    len: AtomicUsize,
    evicted: AtomicU64,
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            swept_at: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }
}

/// What [`KeyMap::insert`] needs to know about time and limits.
pub(super) struct Bounds {
    pub(super) now: u64,
    pub(super) idle: u64,
    pub(super) max_keys: usize,
}

/// A key eviction may drop: its idle clock, its shard, its hash.
type Candidate = (u64, usize, u64);

/// How many of the idlest keys per key to evict have their breakers asked whether they may go:
/// the idle clock sits in the map, while asking a breaker reads its memory, a cache miss per
/// key on a large family.
const SAMPLE: usize = 4;

/// How many keys a full family evicts at once: 1/64 of its limit, at least one.
fn batch(max_keys: usize) -> usize {
    (max_keys / SHARDS).max(1)
}

fn index(hash: u64) -> usize {
    // The map inside a shard picks a bucket with the low bits and tags it with the top 7: bits
    // the shard fixed for all its keys would crowd its buckets or blur its tags.
    (hash >> 32) as usize % SHARDS
}

fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl KeyMap {
    /// The key's breaker, marked used at `now`, if the key is held.
    #[inline]
    pub(super) fn get(&self, hash: u64, now: u64) -> Option<CircuitBreaker> {
        let shard = read(&self.shards[index(hash)]);
        let slot = shard.get(&hash)?;
        slot.touch(now);
        Some(slot.breaker.clone())
    }

    /// Whether the key is held; does not count as a use.
    pub(super) fn contains(&self, hash: u64) -> bool {
        read(&self.shards[index(hash)]).contains_key(&hash)
    }

    /// The key's breaker, created by `create` if the key is not held. At the key limit the
    /// idlest evictable keys make room (see [`evict_idlest`](Self::evict_idlest)); `None` when
    /// every held key's breaker is open and waiting, probing, forced open or disabled.
    pub(super) fn insert(
        &self,
        hash: u64,
        bounds: &Bounds,
        create: impl FnOnce() -> CircuitBreaker,
    ) -> Option<CircuitBreaker> {
        let lock = &self.shards[index(hash)];
        let mut shard = write(lock);
        if let Some(found) = Self::found(&shard, hash, bounds.now) {
            return Some(found);
        }
        self.sweep_if_due(index(hash), &mut shard, bounds);
        while !self.reserve(bounds.max_keys) {
            // Never two locks at once: eviction visits every shard.
            drop(shard);
            // Zero dropped with candidates found: another caller evicted them first, and
            // the room it made is there to reserve.
            self.evict_idlest(batch(bounds.max_keys))?;
            shard = write(lock);
            if let Some(found) = Self::found(&shard, hash, bounds.now) {
                return Some(found);
            }
        }
        let breaker = create();
        let slot = Slot {
            breaker: breaker.clone(),
            last_used: AtomicU64::new(bounds.now),
        };
        shard.insert(hash, slot);
        Some(breaker)
    }

    fn found(shard: &Shard, hash: u64, now: u64) -> Option<CircuitBreaker> {
        let slot = shard.get(&hash)?;
        slot.touch(now);
        Some(slot.breaker.clone())
    }

    fn reserve(&self, max_keys: usize) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max_keys).then_some(n + 1)
            })
            .is_ok()
    }

    fn removed(&self, count: usize) {
        self.len.fetch_sub(count, Ordering::Relaxed);
        self.evicted.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Drops the `count` idlest keys of the whole family whose breakers may go; how many, or
    /// `None` when no held key may go.
    ///
    /// Finding them reads every key's idle clock (one shard's read lock at a time), so a full
    /// family evicts a batch at once (see [`batch`]): the scan's cost, spread over the new keys
    /// the batch makes room for, is about 64 clocks read per new key. Only the idlest
    /// [`SAMPLE`] × `count` keys' breakers are asked whether they may go; when none may, every
    /// breaker is asked.
    fn evict_idlest(&self, count: usize) -> Option<usize> {
        let count = count.max(1);
        let mut chosen = self.evictable_of(self.idlest(count * SAMPLE, |_| true), count);
        if chosen.is_empty() {
            chosen = self.idlest(count, |slot| slot.breaker.evictable());
        }
        if chosen.is_empty() {
            return None;
        }
        chosen.sort_unstable_by_key(|&(_, index, _)| index);
        let mut dropped = 0;
        for chunk in chosen.chunk_by(|a, b| a.1 == b.1) {
            let mut shard = write(&self.shards[chunk[0].1]);
            for (_, _, hash) in chunk {
                // Used or changed state since the scan: it stays.
                if shard.get(hash).is_some_and(|slot| slot.breaker.evictable()) {
                    shard.remove(hash);
                    dropped += 1;
                }
            }
        }
        self.removed(dropped);
        Some(dropped)
    }

    /// The `count` idlest keys `keep` accepts, in no particular order.
    fn idlest(&self, count: usize, keep: impl Fn(&Slot) -> bool) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        for (index, lock) in self.shards.iter().enumerate() {
            let shard = read(lock);
            let kept = shard.iter().filter(|(_, slot)| keep(slot));
            candidates.extend(
                kept.map(|(hash, slot)| (slot.last_used.load(Ordering::Relaxed), index, *hash)),
            );
        }
        if candidates.len() > count {
            candidates.select_nth_unstable(count - 1);
            candidates.truncate(count);
        }
        candidates
    }

    /// The idlest `count` of `candidates` whose breakers may go.
    fn evictable_of(&self, mut candidates: Vec<Candidate>, count: usize) -> Vec<Candidate> {
        candidates.sort_unstable();
        let evictable = candidates.into_iter().filter(|&(_, index, hash)| {
            let shard = read(&self.shards[index]);
            shard
                .get(&hash)
                .is_some_and(|slot| slot.breaker.evictable())
        });
        evictable.take(count).collect()
    }

    /// Sweeps the shard a new key lands in, at most once per quarter of the idle time: a sweep
    /// reads every key of the shard, too much to do for every new key of a large family. An
    /// idle key is so dropped within 1.25 × the idle time when new keys keep coming (and made
    /// room for first at the key limit in any case).
    fn sweep_if_due(&self, index: usize, shard: &mut Shard, bounds: &Bounds) {
        let swept_at = &self.swept_at[index];
        if bounds.now.saturating_sub(swept_at.load(Ordering::Relaxed)) < bounds.idle / 4 {
            return;
        }
        swept_at.store(bounds.now, Ordering::Relaxed);
        self.sweep_shard(shard, bounds.now, bounds.idle);
    }

    /// Drops the keys of `shard` unused for `idle` microseconds whose breakers may go.
    fn sweep_shard(&self, shard: &mut Shard, now: u64, idle: u64) -> usize {
        let before = shard.len();
        shard.retain(|_, slot| {
            let unused = now.saturating_sub(slot.last_used.load(Ordering::Relaxed));
            unused < idle || !slot.breaker.evictable()
        });
        let dropped = before - shard.len();
        if dropped > 0 {
            self.removed(dropped);
            if shard.len() * 4 < shard.capacity() {
                shard.shrink_to_fit();
            }
        }
        dropped
    }

    /// Drops every idle key whose breaker may go, one shard at a time; how many.
    pub(super) fn sweep(&self, now: u64, idle: u64) -> usize {
        let shards = self.shards.iter();
        shards
            .map(|lock| self.sweep_shard(&mut write(lock), now, idle))
            .sum()
    }

    /// How many keys are held.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// How many keys were dropped, idle or to make room, since the family was made.
    pub(super) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Clones of the handles `keep` selects, one shard's read lock at a time: the caller reads
    /// their state after every lock is released.
    pub(super) fn handles(&self, keep: impl Fn(&CircuitBreaker) -> bool) -> Vec<CircuitBreaker> {
        let mut out = Vec::new();
        for lock in &self.shards {
            let shard = read(lock);
            let kept = shard.values().filter(|slot| keep(&slot.breaker));
            out.extend(kept.map(|slot| slot.breaker.clone()));
        }
        out
    }
}
