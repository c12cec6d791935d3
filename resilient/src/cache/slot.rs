//! One call site's cache in one registry, type-erased: the registry keeps it next to the call
//! site's counters, so it survives every rebuild of the call site's policy (a reload), and the
//! first `(K, V)` pair that asks for it fixes its types.

use std::any::{Any, type_name};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::callsite::CallSiteStats;
use crate::event::Listeners;

use super::entries::Entries;

/// The typed storage inside a [`CacheSlot`].
pub(super) type Shared<K, V> = Mutex<Entries<K, V>>;

/// A call site's stale cache, before and after its key and value types are known.
pub(crate) struct CacheSlot {
    pub(super) call_site: Arc<str>,
    pub(super) stats: Arc<CallSiteStats>,
    pub(super) listeners: Arc<Listeners>,
    /// A `Shared<K, V>` for the first `(K, V)` asked for.
    storage: OnceLock<(Box<dyn Any + Send + Sync>, &'static str)>,
    /// Set once a second `(K, V)` pair has been refused, so it is reported once.
    mismatch_reported: OnceLock<()>,
    /// The stale answers' warnings, at most one per [`WARNING_INTERVAL`].
    warnings: WarningGate,
}

/// How often an outage served from the cache is logged at WARN: the first stale answer warns,
/// the next ones within this interval log at DEBUG and are counted into the next warning. At
/// thousands of calls a second a WARN per answer would bury the log it is meant to stand out in.
pub(super) const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Lets one warning through per [`WARNING_INTERVAL`] and counts what it held back.
struct WarningGate {
    epoch: Instant,
    /// Microseconds from `epoch` to the end of the current quiet interval; 0 before the first.
    quiet_until: AtomicU64,
    held_back: AtomicU64,
}

impl WarningGate {
    fn new() -> Self {
        WarningGate {
            epoch: Instant::now(),
            quiet_until: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this answer should warn, `n` answers having been held back since the last
    /// warning; `None` when it should only log at DEBUG.
    fn admit(&self) -> Option<u64> {
        let now = micros(self.epoch.elapsed());
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        let in_quiet_interval = quiet_until != 0 && now < quiet_until;
        // Past the interval, the one caller that moves it on warns; the others count.
        let next = now.saturating_add(micros(WARNING_INTERVAL)).max(1);
        if in_quiet_interval
            || self
                .quiet_until
                .compare_exchange(quiet_until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl fmt::Debug for CacheSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSlot")
            .field("call_site", &self.call_site)
            .field("types", &self.storage.get().map(|(_, types)| *types))
            .finish_non_exhaustive()
    }
}

impl CacheSlot {
    pub(crate) fn new(
        call_site: Arc<str>,
        stats: Arc<CallSiteStats>,
        listeners: Arc<Listeners>,
    ) -> Self {
        CacheSlot {
            call_site,
            stats,
            listeners,
            storage: OnceLock::new(),
            mismatch_reported: OnceLock::new(),
            warnings: WarningGate::new(),
        }
    }

    /// `Some(n)` when a stale answer should be logged at WARN, with the `n` answers logged at
    /// DEBUG since the last warning; `None` for DEBUG. See [`WARNING_INTERVAL`].
    pub(super) fn stale_warning(&self) -> Option<u64> {
        self.warnings.admit()
    }

    /// The storage for `(K, V)`, created by the first pair that asks; `None` (and one warning)
    /// for any other pair, such as a generic function instantiated twice.
    pub(super) fn storage<K, V>(&self) -> Option<&Shared<K, V>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let (storage, types) = self.storage.get_or_init(|| {
            let storage: Shared<K, V> = Mutex::default();
            (Box::new(storage), type_name::<(K, V)>())
        });
        let typed = storage.downcast_ref::<Shared<K, V>>();
        if typed.is_none() && self.mismatch_reported.set(()).is_ok() {
            tracing::warn!(
                target: "resilient::cache",
                call_site = %self.call_site,
                cached = types,
                refused = type_name::<(K, V)>(),
                "this call site's stale cache already holds other key and value types: these calls are not cached"
            );
        }
        typed
    }
}
