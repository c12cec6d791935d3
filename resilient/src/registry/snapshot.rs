//! Reading every entry's state: the [`Snapshot`] and its three lists.
//!
//! Each list is built from handles cloned under the map's read lock, which is released before
//! any state is read: computing the metrics of 100 000 breakers takes a while, and a lookup, or
//! the creation of a new name, must not wait for it.

use crate::breaker::{BreakerMetrics, CircuitBreaker};
use crate::bulkhead::{Bulkhead, BulkheadMetrics};
use crate::callsite::CallSiteMetrics;
use crate::registry::{Registry, read};
use crate::snapshot::Snapshot;

impl Registry {
    /// Every breaker, bulkhead and call site with its state and counters. Costs a copy of each
    /// map's handles under its read lock and then, per count-window breaker, a scan of its
    /// window: cheap enough for every scrape, not for every call.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            breakers: self.breakers(),
            bulkheads: self.bulkheads(),
            call_sites: self.call_site_metrics(),
            families: self.breaker_family_snapshots(),
        }
    }

    /// Every breaker, sorted by name, with its state and counters.
    pub fn breakers(&self) -> Vec<BreakerMetrics> {
        let mut all: Vec<_> = self
            .breaker_handles()
            .iter()
            .map(CircuitBreaker::metrics)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every bulkhead, sorted by name, with its occupancy.
    pub fn bulkheads(&self) -> Vec<BulkheadMetrics> {
        let mut all: Vec<_> = self
            .bulkhead_handles()
            .iter()
            .map(Bulkhead::metrics)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every call site that has run (or been built), sorted by name, with its counters.
    pub fn call_site_metrics(&self) -> Vec<CallSiteMetrics> {
        let sites: Vec<_> = read(&self.call_sites)
            .iter()
            .map(|(name, stats)| (name.clone(), stats.clone()))
            .collect();
        let mut all: Vec<_> = sites
            .into_iter()
            .map(|(name, stats)| stats.metrics(name))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
