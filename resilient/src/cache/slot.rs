//! One call site's cache in one registry, type-erased: the registry keeps it next to the call
//! site's counters, so it survives every rebuild of the call site's policy (a reload), and the
//! first `(K, V)` pair that asks for it fixes its types.

use std::any::{Any, type_name};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

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
        }
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
