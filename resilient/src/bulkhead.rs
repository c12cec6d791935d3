//! Named bulkheads: a concurrency limit per dependency, so one slow dependency cannot take
//! every task, connection and socket of the service with it.
//!
//! A call takes a slot before it runs and gives it back when its [`BulkheadPermit`] drops:
//! on success, on error, on cancellation and during a panic's unwinding alike. When every slot
//! is taken, a call waits at most `max_wait` (zero: not at all) and is then rejected with
//! [`Rejection::BulkheadFull`]; it never waits forever.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{ConfigError, Rejection};
use crate::event::{Event, Listeners};
use crate::timeout::check_duration;

#[cfg(feature = "tower")]
mod owned;
#[cfg(feature = "tower")]
pub(crate) use owned::OwnedSlot;

/// Most slots one bulkhead may have.
pub const MAX_CONCURRENT: usize = 1 << 20;

/// A bulkhead's settings.
///
/// | field | default |
/// |---|---|
/// | `max_concurrent` | 25 |
/// | `max_wait` | 0 (reject at once when full) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls allowed in flight at once.
    pub max_concurrent: usize,
    /// How long a call may wait for a slot before it is rejected.
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 25,
            max_wait: Duration::ZERO,
        }
    }
}

impl BulkheadConfig {
    /// At most `max_concurrent` calls in flight, rejecting at once when full.
    pub fn new(max_concurrent: usize) -> Self {
        BulkheadConfig {
            max_concurrent,
            max_wait: Duration::ZERO,
        }
    }

    /// Lets a call wait up to `max_wait` for a slot.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Checks every field, naming the bulkhead in the error.
    pub fn validate(&self, bulkhead: &str) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 || self.max_concurrent > MAX_CONCURRENT {
            return Err(ConfigError::new(
                format!("bulkhead {bulkhead:?}"),
                "max_concurrent",
                self.max_concurrent,
                "must be between 1 and 1048576",
            ));
        }
        check_duration(&format!("bulkhead {bulkhead:?}"), "max_wait", self.max_wait)?;
        Ok(())
    }
}

/// A handle to a named bulkhead; clones share it.
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    semaphore: Semaphore,
    max_concurrent: AtomicUsize,
    max_wait_nanos: AtomicU64,
    /// Slots to retire as permits come back, after the limit was lowered below what was in use.
    to_retire: AtomicUsize,
    waiting: AtomicUsize,
    rejected: AtomicU64,
    /// Where rejections are reported; `None` for a bulkhead made without listeners.
    listeners: Option<Arc<Listeners>>,
}

impl Bulkhead {
    /// A bulkhead outside any registry, reporting no events.
    pub fn new(name: &str, config: BulkheadConfig) -> Result<Self, ConfigError> {
        Self::build(name, config, None)
    }

    /// A bulkhead outside any registry that reports its rejections to `listeners`.
    pub fn with_listeners(
        name: &str,
        config: BulkheadConfig,
        listeners: Arc<Listeners>,
    ) -> Result<Self, ConfigError> {
        Self::build(name, config, Some(listeners))
    }

    fn build(
        name: &str,
        config: BulkheadConfig,
        listeners: Option<Arc<Listeners>>,
    ) -> Result<Self, ConfigError> {
        config.validate(name)?;
        Ok(Bulkhead {
            shared: Arc::new(Shared {
                name: name.into(),
                semaphore: Semaphore::new(config.max_concurrent),
                max_concurrent: AtomicUsize::new(config.max_concurrent),
                max_wait_nanos: AtomicU64::new(duration_nanos(config.max_wait)),
                to_retire: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                rejected: AtomicU64::new(0),
                listeners,
            }),
        })
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The name's allocation, for a registry to key its map with it rather than a copy.
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// The configuration in force.
    pub fn config(&self) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent: self.shared.max_concurrent.load(Ordering::Relaxed),
            max_wait: Duration::from_nanos(self.shared.max_wait_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Takes a slot, waiting up to `max_wait` for one.
    ///
    /// Cancel safe: dropping the future gives up the wait and holds no slot.
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Rejection> {
        let shared = &*self.shared;
        if let Ok(permit) = shared.semaphore.try_acquire() {
            return Ok(self.permit(permit));
        }
        let max_wait = Duration::from_nanos(shared.max_wait_nanos.load(Ordering::Relaxed));
        if !max_wait.is_zero() {
            let _waiting = WaitingGuard::enter(&shared.waiting);
            tracing::debug!(
                target: "resilient::bulkhead",
                bulkhead = %shared.name, ?max_wait,
                "bulkhead full, waiting for a slot"
            );
            let started = tokio::time::Instant::now();
            if let Ok(Ok(permit)) = tokio::time::timeout(max_wait, shared.semaphore.acquire()).await
            {
                tracing::trace!(
                    target: "resilient::bulkhead",
                    bulkhead = %shared.name, waited = ?started.elapsed(),
                    "bulkhead slot freed up, call admitted"
                );
                return Ok(self.permit(permit));
            }
        }
        Err(self.reject())
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, Rejection> {
        match self.shared.semaphore.try_acquire() {
            Ok(permit) => Ok(self.permit(permit)),
            Err(_) => Err(self.reject()),
        }
    }

    fn permit<'a>(&'a self, permit: SemaphorePermit<'a>) -> BulkheadPermit<'a> {
        BulkheadPermit {
            permit: Some(permit),
            to_retire: &self.shared.to_retire,
        }
    }

    fn reject(&self) -> Rejection {
        let shared = &*self.shared;
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        let max_concurrent = shared.max_concurrent.load(Ordering::Relaxed);
        tracing::debug!(
            target: "resilient::bulkhead",
            bulkhead = %shared.name, max_concurrent,
            "bulkhead full, call rejected"
        );
        let rejection = Rejection::BulkheadFull {
            bulkhead: shared.name.clone(),
            max_concurrent,
        };
        if let Some(listeners) = &shared.listeners {
            listeners.emit(|| Event::Rejected(rejection.clone()));
        }
        rejection
    }

    /// Changes the limit and the wait in place. Raising the limit frees slots at once; lowering
    /// it retires free slots now and busy ones as their calls finish.
    pub fn reconfigure(&self, config: BulkheadConfig) -> Result<(), ConfigError> {
        config.validate(&self.shared.name)?;
        let shared = &*self.shared;
        shared
            .max_wait_nanos
            .store(duration_nanos(config.max_wait), Ordering::Relaxed);
        let old = shared
            .max_concurrent
            .swap(config.max_concurrent, Ordering::AcqRel);
        if config.max_concurrent > old {
            let mut grow = config.max_concurrent - old;
            // Cancel pending retirements before adding slots.
            while grow > 0 {
                let pending = shared.to_retire.load(Ordering::Acquire);
                if pending == 0 {
                    break;
                }
                let cancel = pending.min(grow);
                if shared
                    .to_retire
                    .compare_exchange(
                        pending,
                        pending - cancel,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    grow -= cancel;
                }
            }
            shared.semaphore.add_permits(grow);
        } else {
            let shrink = old - config.max_concurrent;
            let retired_now = shared.semaphore.forget_permits(shrink);
            shared
                .to_retire
                .fetch_add(shrink - retired_now, Ordering::AcqRel);
        }
        Ok(())
    }

    /// A point-in-time view of the bulkhead.
    pub fn metrics(&self) -> BulkheadMetrics {
        let shared = &*self.shared;
        let limit = shared.max_concurrent.load(Ordering::Relaxed);
        let free = shared.semaphore.available_permits();
        let retiring = shared.to_retire.load(Ordering::Relaxed);
        BulkheadMetrics {
            name: shared.name.clone(),
            in_use: (limit + retiring).saturating_sub(free),
            max_concurrent: limit,
            waiting: shared.waiting.load(Ordering::Relaxed),
            rejected: shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Whether two handles share one bulkhead.
    pub fn same_as(&self, other: &Bulkhead) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name())
            .field("config", &self.config())
            .finish()
    }
}

/// A bulkhead's occupancy at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// The bulkhead's name.
    pub name: Arc<str>,
    /// Slots taken.
    pub in_use: usize,
    /// The limit.
    pub max_concurrent: usize,
    /// Calls waiting for a slot.
    pub waiting: usize,
    /// Calls rejected since creation.
    pub rejected: u64,
}

/// One slot of a bulkhead, given back on drop.
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    permit: Option<SemaphorePermit<'a>>,
    to_retire: &'a AtomicUsize,
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let retire = self
            .to_retire
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if retire {
            permit.forget();
        }
    }
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit").finish_non_exhaustive()
    }
}

/// Counts a waiting call for as long as it waits, cancellation included.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
