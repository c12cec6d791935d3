//! Named bulkheads: a concurrency limit per dependency, so one slow dependency cannot take
//! every task, connection and socket of the service with it.
//!
//! A call takes a slot before it runs and gives it back when its [`BulkheadPermit`] drops:
//! on success, on error, on cancellation and during a panic's unwinding alike. When every slot
//! is taken, a call waits at most `max_wait` (zero: not at all) and is then rejected with
//! [`Rejection::BulkheadFull`]; it never waits forever.
//!
//! Slots are one atomic count of calls in flight: taking one is a compare-and-swap against the
//! limit and giving it back a `fetch_sub`, with no lock, so a bulkhead that never waits costs
//! two atomic operations a call. Waiters queue in arrival order and are handed the slots that
//! free up; the queue is touched only while someone waits.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use crate::error::{ConfigError, Rejection};
use crate::event::{Event, Listeners};
use crate::timeout::check_duration;

use adaptive::Controller;
pub use adaptive::{AdaptiveLimit, LimitAlgorithm};
use slots::Slots;
use wait::Queue;

mod adaptive;
#[cfg(feature = "tower")]
mod owned;
pub(crate) mod slots;
mod wait;
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
/// | `adaptive` | none (a fixed limit) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls allowed in flight at once; for an adaptive bulkhead, the limit it starts from.
    pub max_concurrent: usize,
    /// How long a call may wait for a slot before it is rejected.
    pub max_wait: Duration,
    /// Whether and how the limit follows the dependency (see [`BulkheadConfig::adaptive`]).
    pub adaptive: Option<AdaptiveLimit>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig::new(25)
    }
}

impl BulkheadConfig {
    /// At most `max_concurrent` calls in flight, rejecting at once when full.
    pub fn new(max_concurrent: usize) -> Self {
        BulkheadConfig {
            max_concurrent,
            max_wait: Duration::ZERO,
            adaptive: None,
        }
    }

    /// A limit that starts at `initial` and moves within `[min, max]` by `algorithm`, from the
    /// outcomes and latencies the calls report through [`BulkheadPermit::record`]. The
    /// current limit is [`BulkheadMetrics::max_concurrent`].
    pub fn adaptive(min: usize, initial: usize, max: usize, algorithm: LimitAlgorithm) -> Self {
        BulkheadConfig {
            adaptive: Some(AdaptiveLimit {
                min,
                max,
                algorithm,
            }),
            ..BulkheadConfig::new(initial)
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
        if let Some(adaptive) = &self.adaptive {
            adaptive.validate(
                &format!("bulkhead {bulkhead:?}"),
                self.max_concurrent,
                MAX_CONCURRENT,
            )?;
        }
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
    /// Calls in flight and the limit: the one count every slot is taken from and given back
    /// to, whether the bulkhead waits or not.
    slots: Slots,
    /// Calls waiting for a slot, in arrival order; untouched while nobody waits.
    queue: Queue,
    max_wait_nanos: AtomicU64,
    /// The configuration in force; also serialises reconfiguration.
    settings: Mutex<BulkheadConfig>,
    /// Whether the limit is adaptive: read first by every [`BulkheadPermit::record`].
    adaptive: AtomicBool,
    /// The adaptive limit's state; `None` for a fixed limit.
    controller: Mutex<Option<Controller>>,
    /// Calls waiting, for the metrics.
    waiting: AtomicUsize,
    rejected: AtomicU64,
    /// Where rejections are reported; `None` for a bulkhead made without listeners.
    listeners: Option<Arc<Listeners>>,
}

impl Shared {
    /// Gives a slot back, to the longest waiter if there is one.
    #[inline]
    fn release(&self) {
        if self.slots.put_back() {
            self.queue.serve(&self.slots);
        }
    }

    fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.max_wait_nanos.load(Ordering::Relaxed))
    }

    /// Feeds a finished call to the adaptive limit, if there is one. A sample that finds the
    /// state busy with another is dropped rather than waited for: the limit needs a stream
    /// of samples, not every one.
    #[inline]
    fn record(&self, latency: Duration, ok: bool) {
        if self.adaptive.load(Ordering::Relaxed) {
            self.adapt(latency, ok);
        }
    }

    fn adapt(&self, latency: Duration, ok: bool) {
        let mut controller = match self.controller.try_lock() {
            Ok(controller) => controller,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let Some(state) = controller.as_mut() else {
            return;
        };
        let limit = state.sample(latency, ok, self.slots.in_flight());
        // Set under the lock, so a sample cannot undo a reconfiguration that raced it.
        let serve = limit != self.slots.limit() && self.slots.set_limit(limit);
        drop(controller);
        if serve {
            self.queue.serve(&self.slots);
        }
    }
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
                slots: Slots::new(config.max_concurrent),
                queue: Queue::new(),
                max_wait_nanos: AtomicU64::new(duration_nanos(config.max_wait)),
                settings: Mutex::new(config),
                adaptive: AtomicBool::new(config.adaptive.is_some()),
                controller: Mutex::new(controller(&config)),
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
        *lock(&self.shared.settings)
    }

    /// Whether a call finding no free slot waits for one (`max_wait` above zero); one relaxed
    /// load, for the call path.
    #[inline]
    pub(crate) fn lets_calls_wait(&self) -> bool {
        self.shared.max_wait_nanos.load(Ordering::Relaxed) != 0
    }

    /// Takes a slot, waiting up to `max_wait` for one, behind the calls already waiting.
    ///
    /// Cancel safe: dropping the future gives up the wait and holds no slot.
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Rejection> {
        let shared = &*self.shared;
        if shared.slots.try_take_unqueued() {
            return Ok(self.permit());
        }
        let max_wait = shared.max_wait();
        if max_wait.is_zero() {
            return self.try_acquire();
        }
        let _waiting = WaitingGuard::enter(&shared.waiting);
        tracing::debug!(
            target: "resilient::bulkhead",
            bulkhead = %shared.name, ?max_wait,
            "bulkhead full, waiting for a slot"
        );
        let started = tokio::time::Instant::now();
        if shared.queue.wait(&shared.slots, Some(max_wait)).await {
            tracing::trace!(
                target: "resilient::bulkhead",
                bulkhead = %shared.name, waited = ?started.elapsed(),
                "bulkhead slot freed up, call admitted"
            );
            return Ok(self.permit());
        }
        Err(self.reject())
    }

    /// Takes a slot if one is free now: one compare-and-swap, no lock.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, Rejection> {
        if self.shared.slots.try_take() {
            Ok(self.permit())
        } else {
            Err(self.reject())
        }
    }

    /// Wraps a slot already taken.
    fn permit(&self) -> BulkheadPermit<'_> {
        BulkheadPermit {
            shared: &self.shared,
        }
    }

    #[cold]
    #[inline(never)]
    fn reject(&self) -> Rejection {
        let shared = &*self.shared;
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        let max_concurrent = shared.slots.limit();
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

    /// Changes the limit and the wait in place. Raising the limit admits waiters at once;
    /// lowering it leaves the calls in flight their slots, and admits no one until fewer than
    /// the new limit are in flight. Slots are counted in one place whatever the wait, so a
    /// call admitted before the change gives its slot back to the same count after it.
    ///
    /// An adaptive limit starts again from its initial value, unless the configuration is the
    /// one in force (a redeclaration or a reload that changes nothing keeps what it learned).
    pub fn reconfigure(&self, config: BulkheadConfig) -> Result<(), ConfigError> {
        config.validate(&self.shared.name)?;
        let shared = &*self.shared;
        let mut settings = lock(&shared.settings);
        if *settings == config {
            return Ok(());
        }
        *settings = config;
        shared
            .max_wait_nanos
            .store(duration_nanos(config.max_wait), Ordering::Relaxed);
        let mut state = lock(&shared.controller);
        *state = controller(&config);
        shared
            .adaptive
            .store(config.adaptive.is_some(), Ordering::Relaxed);
        let serve = shared.slots.set_limit(config.max_concurrent);
        drop((state, settings));
        if serve {
            shared.queue.serve(&shared.slots);
        }
        Ok(())
    }

    /// A point-in-time view of the bulkhead.
    pub fn metrics(&self) -> BulkheadMetrics {
        let shared = &*self.shared;
        BulkheadMetrics {
            name: shared.name.clone(),
            in_use: shared.slots.in_flight(),
            max_concurrent: shared.slots.limit(),
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
    /// The limit: for an adaptive bulkhead, the limit now, as learned.
    pub max_concurrent: usize,
    /// Calls waiting for a slot.
    pub waiting: usize,
    /// Calls rejected since creation.
    pub rejected: u64,
}

/// One slot of a bulkhead, given back on drop.
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    shared: &'a Shared,
}

impl BulkheadPermit<'_> {
    /// Reports how the call went, then gives the slot back. An adaptive bulkhead moves its
    /// limit from these reports (`latency` from the slot's admission to the call's end; `ok`
    /// false for a failure or a timeout); a fixed one ignores them. A permit dropped without
    /// a report, as by a cancelled call, tells the limit nothing.
    #[inline]
    pub fn record(self, latency: Duration, ok: bool) {
        self.shared.record(latency, ok);
    }

    /// Whether the bulkhead learns its limit from [`record`](Self::record): only then is a
    /// call's latency worth a clock read.
    #[inline]
    pub fn is_adaptive(&self) -> bool {
        self.shared.adaptive.load(Ordering::Relaxed)
    }
}

impl Drop for BulkheadPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.shared.release();
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn controller(config: &BulkheadConfig) -> Option<Controller> {
    config
        .adaptive
        .map(|adaptive| Controller::new(adaptive, config.max_concurrent))
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
