//! The bounded map behind a stale cache: the last good value per key, with when it was stored.
//!
//! Eviction takes the entry stored longest ago. A queue of `(key, stamp)` in store order finds
//! it without a scan: storing a key again leaves its old queue entry behind, stale (its stamp
//! no longer matches the map's), to be skipped when it reaches the front. Stale queue entries
//! are compacted away once they outnumber the live ones, so the queue stays within a constant
//! factor of the capacity and each store costs amortised O(1).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// One cached value. `Arc` so that serving clones a pointer under the lock and the value
/// itself outside it.
struct Entry<V> {
    value: Arc<V>,
    stored: Instant,
    stamp: u64,
}

/// The last good value per key, at most `capacity` of them (the capacity is the caller's, per
/// store: a reload may change it).
pub(super) struct Entries<K, V> {
    map: HashMap<K, Entry<V>>,
    order: VecDeque<(K, u64)>,
    next_stamp: u64,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Entries {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
        }
    }
}

/// What a lookup found.
pub(super) enum Lookup<V> {
    /// A value no older than the limit, and its age.
    Fresh(Arc<V>, Duration),
    /// A value older than the limit: removed, returned so that it is dropped outside the lock.
    Expired(Arc<V>),
    Missing,
}

impl<K: Hash + Eq + Clone, V> Entries<K, V> {
    /// Stores `value` for `key` at `now`, evicting the entries stored longest ago past
    /// `capacity`. `queued` is a clone of `key`, made by the caller before taking the lock.
    /// Returns the value it replaced, to be dropped outside the lock.
    pub(super) fn store(
        &mut self,
        (key, queued): (K, K),
        value: Arc<V>,
        now: Instant,
        capacity: usize,
    ) -> Option<Arc<V>> {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.push_back((queued, stamp));
        let replaced = self.map.insert(
            key,
            Entry {
                value,
                stored: now,
                stamp,
            },
        );
        while self.map.len() > capacity.max(1) {
            self.evict_oldest();
        }
        if self.order.len() > 2 * self.map.len() + 16 {
            self.compact();
        }
        replaced.map(|entry| entry.value)
    }

    /// The value stored for `key` if it is at most `max_age` old at `now`; an older one is
    /// removed.
    pub(super) fn lookup(&mut self, key: &K, now: Instant, max_age: Duration) -> Lookup<V> {
        let Some(entry) = self.map.get(key) else {
            return Lookup::Missing;
        };
        let age = now.saturating_duration_since(entry.stored);
        if age <= max_age {
            return Lookup::Fresh(entry.value.clone(), age);
        }
        // Its queue entry goes stale and is skipped or compacted later.
        match self.map.remove(key) {
            Some(entry) => Lookup::Expired(entry.value),
            None => Lookup::Missing,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    fn is_live(&self, key: &K, stamp: u64) -> bool {
        self.map.get(key).is_some_and(|entry| entry.stamp == stamp)
    }

    fn evict_oldest(&mut self) {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.is_live(&key, stamp) {
                self.map.remove(&key);
                return;
            }
        }
    }

    fn compact(&mut self) {
        let mut order = std::mem::take(&mut self.order);
        order.retain(|(key, stamp)| self.is_live(key, *stamp));
        self.order = order;
    }

    /// Queue entries, live and stale: bounded by a constant factor of the capacity.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(lookup: Lookup<u32>) -> Option<u32> {
        match lookup {
            Lookup::Fresh(value, _) => Some(*value),
            _ => None,
        }
    }

    #[test]
    fn the_entry_stored_longest_ago_is_evicted_first() {
        let now = Instant::now();
        let mut entries = Entries::default();
        for key in 0..3 {
            entries.store((key, key), Arc::new(key), now, 3);
        }
        // Storing 0 again makes 1 the oldest.
        entries.store((0, 0), Arc::new(10), now, 3);
        entries.store((3, 3), Arc::new(3), now, 3);
        assert_eq!(entries.len(), 3);
        assert_eq!(value(entries.lookup(&1, now, Duration::MAX)), None);
        assert_eq!(value(entries.lookup(&0, now, Duration::MAX)), Some(10));
        assert_eq!(value(entries.lookup(&2, now, Duration::MAX)), Some(2));
    }

    #[test]
    fn storing_one_key_over_and_over_keeps_the_queue_bounded() {
        let now = Instant::now();
        let mut entries = Entries::default();
        for round in 0..10_000 {
            entries.store((7, 7), Arc::new(round), now, 100);
        }
        assert_eq!(entries.len(), 1);
        assert!(
            entries.queued() <= 2 + 16,
            "queue holds {}",
            entries.queued()
        );
    }

    #[test]
    fn a_smaller_capacity_evicts_down_to_it_on_the_next_store() {
        let now = Instant::now();
        let mut entries = Entries::default();
        for key in 0..10 {
            entries.store((key, key), Arc::new(key), now, 10);
        }
        entries.store((10, 10), Arc::new(10), now, 4);
        assert_eq!(entries.len(), 4);
        assert_eq!(value(entries.lookup(&6, now, Duration::MAX)), None);
        assert_eq!(value(entries.lookup(&7, now, Duration::MAX)), Some(7));
    }

    #[test]
    fn an_expired_entry_is_removed_when_looked_up() {
        let now = Instant::now();
        let mut entries = Entries::default();
        entries.store((1, 1), Arc::new(1), now, 10);
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            entries.lookup(&1, later, Duration::from_secs(1)),
            Lookup::Expired(_)
        ));
        assert_eq!(entries.len(), 0);
        assert!(matches!(
            entries.lookup(&1, now, Duration::MAX),
            Lookup::Missing
        ));
    }
}
