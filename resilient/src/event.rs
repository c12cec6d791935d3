//! Events a service can react to — a breaker changed state (and why), a call was rejected, an
//! attempt is retried, a fallback was served, a breaker stayed open too long — delivered to
//! callbacks and to a broadcast channel.
//!
//! Every breaker and bulkhead of a [`Registry`](crate::Registry) reports to the registry's
//! [`Listeners`]; a breaker made outside a registry reports to the `Listeners` it was given at
//! creation ([`CircuitBreaker::with_listeners`](crate::CircuitBreaker::with_listeners)), or to
//! none.
//!
//! Nothing here runs on the closed-state success path: events come from transitions,
//! rejections, retries and fallbacks only, and an event is not even built while nobody
//! listens: a rejection storm with no listener costs one relaxed load of a flag here.
//!
//! # Tracing
//!
//! Besides these events, `resilient` writes `tracing` events with stable targets and levels, so
//! `RUST_LOG`-style directives filter them (`resilient::breaker=info,resilient::retry=debug`):
//!
//! | target | level | when | fields |
//! |---|---|---|---|
//! | `resilient::call` | DEBUG span | one span around each call, attempts and backoff included | `call_site`, `breaker`, `bulkhead` |
//! | `resilient::call` | TRACE | an attempt starts, and ends (inside the call's span) | `attempt`, `ok` |
//! | `resilient::breaker` | WARN | a breaker opens (`open`, or `forced_open` by an operator) | `breaker`, `from`, `to`, `reason` |
//! | `resilient::breaker` | INFO | every other transition (`half_open`, `closed`, `disabled`) | `breaker`, `from`, `to`, `reason` |
//! | `resilient::breaker` | WARN | a breaker has not closed for longer than the alert threshold | `breaker`, `state`, `open_for` |
//! | `resilient::breaker` | DEBUG | a call is rejected (open, or half-open with every probe slot taken) | `breaker`, `retry_after` |
//! | `resilient::bulkhead` | DEBUG | a call waits for a slot | `bulkhead`, `max_wait` |
//! | `resilient::bulkhead` | TRACE | a waiting call got its slot | `bulkhead`, `waited` |
//! | `resilient::bulkhead` | DEBUG | a call is rejected by a full bulkhead | `bulkhead`, `max_concurrent` |
//! | `resilient::retry` | DEBUG | an attempt failed and will be retried | `call_site`, `retry` (its number, from 1), `delay`, `error` (the error's type name, or `attempt timeout` / `rejected`) |
//! | `resilient::retry` | DEBUG | no retry: the backoff would end past the total timeout | `call_site`, `delay` |
//! | `resilient::retry` | DEBUG | no retry: the retry budget is spent | `call_site`, `budget` |
//! | `resilient::timeout` | DEBUG | an attempt ran out of time | `call_site`, `limit` |
//! | `resilient::fallback` | DEBUG | a fallback was served | `call_site`, `error` |
//! | `resilient::cache` | WARN | a call failed and a stale cached value was served instead | `call_site`, `age` |
//! | `resilient::cache` | WARN | a call site's cache was asked for a second pair of key and value types (once) | `call_site`, `cached`, `refused` |
//! | `resilient::registry` | WARN | a breaker or bulkhead was used without being declared | `breaker` or `bulkhead` |
//! | `resilient::registry` | INFO | a configuration was applied (`Registry::reload`) | counts of created / reconfigured entries |
//! | `resilient::event` | ERROR | an event listener panicked (the event is skipped for it) | `panic` |
//!
//! The `reason` of a transition is the text an operator reads:
//!
//! | reason | example |
//! |---|---|
//! | failure rate | `failure rate 62% ≥ 50% over the last 20 calls` |
//! | slow-call rate | `slow-call rate 100% ≥ 50% over the last 4 calls` |
//! | consecutive failures | `5 failures in a row` |
//! | failure count | `5 failures within the last 10s` |
//! | open wait over | `open wait elapsed, probing` |
//! | probe failed | `probe failed` |
//! | probes succeeded | `3 probes succeeded` |
//! | half-open too long | `half-open for longer than max_half_open` |
//! | operator | `forced open by an operator`, `disabled by an operator`, `reset by an operator` |
//! | reconfiguration | `reconfigured with a new window` |

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::breaker::{BreakerState, TransitionReason};
use crate::error::Rejection;

/// Events a broadcast receiver may fall behind by before it starts losing the oldest
/// ([`broadcast::error::RecvError::Lagged`]).
pub const CHANNEL_CAPACITY: usize = 1024;

/// Something worth telling an operator about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A circuit breaker changed state.
    ///
    /// Each transition is reported once, by the caller that made it, right after it. When two
    /// transitions race (a trip and an operator's reset), their reports may arrive in either
    /// order: [`CircuitBreaker::state`](crate::CircuitBreaker::state) is the authority on the
    /// state now.
    StateTransition {
        /// The breaker's name.
        breaker: Arc<str>,
        /// The state it left.
        from: BreakerState,
        /// The state it entered.
        to: BreakerState,
        /// Why; its `Display` is the text operators read, such as "failure rate 62% ≥ 50% over
        /// the last 20 calls".
        reason: TransitionReason,
    },
    /// A breaker or a bulkhead refused a call before it ran ([`Rejection::CircuitOpen`],
    /// [`Rejection::HalfOpenFull`] or [`Rejection::BulkheadFull`]).
    Rejected(Rejection),
    /// An attempt failed and the call will try again after `delay`.
    Retry {
        /// The call site (the policy's name).
        call_site: Arc<str>,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// The backoff before the next attempt.
        delay: Duration,
        /// The error's type name, or `"attempt timeout"` / `"rejected"` when `resilient` cut
        /// the attempt short.
        error: &'static str,
    },
    /// An attempt was slow, and a hedge started beside it (see [`hedge`](crate::hedge)).
    Hedge {
        /// The call site (the policy's name).
        call_site: Arc<str>,
        /// Which hedge of the attempt, from 1.
        hedge: u32,
        /// How long the attempts before it had gone unanswered.
        delay: Duration,
    },
    /// A call failed for good and its fallback was served instead.
    Fallback {
        /// The call site.
        call_site: Arc<str>,
        /// The final error's type name.
        error: &'static str,
    },
    /// A call failed or was rejected, and its call site's stale cache answered with a value
    /// stored `age` ago (see [`crate::cache`]).
    StaleServed {
        /// The call site.
        call_site: Arc<str>,
        /// How long ago the value was stored.
        age: Duration,
    },
    /// A breaker has been rejecting calls (open, half-open, or forced open) without closing
    /// for longer than the threshold set with
    /// [`Listeners::alert_when_open_longer_than`]. Sent once per outage: again only after the
    /// breaker has closed (or been disabled) and opened anew.
    OpenTooLong {
        /// The breaker's name.
        breaker: Arc<str>,
        /// Its state when the alert fired.
        state: BreakerState,
        /// How long since it left the closed state.
        open_for: Duration,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::StateTransition {
                breaker,
                from,
                to,
                reason,
            } => write!(f, "circuit breaker `{breaker}`: {from} → {to}: {reason}"),
            Event::Rejected(rejection) => write!(f, "rejected: {rejection}"),
            Event::Retry {
                call_site,
                attempt,
                delay,
                error,
            } => write!(
                f,
                "`{call_site}`: attempt {attempt} failed ({error}), retrying in {delay:?}"
            ),
            Event::Hedge {
                call_site,
                hedge,
                delay,
            } => write!(
                f,
                "`{call_site}`: no answer within {delay:?}, hedge {hedge} started"
            ),
            Event::Fallback { call_site, error } => {
                write!(f, "`{call_site}`: fallback served after {error}")
            }
            Event::StaleServed { call_site, age } => {
                write!(
                    f,
                    "`{call_site}`: call failed, served a value cached {age:?} ago"
                )
            }
            Event::OpenTooLong {
                breaker,
                state,
                open_for,
            } => write!(
                f,
                "circuit breaker `{breaker}` has not closed for {open_for:?} (now {state})"
            ),
        }
    }
}

/// Identifies a callback registered with [`Listeners::on_event`], to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where events go: callbacks, and a broadcast channel created on the first
/// [`subscribe`](Self::subscribe).
///
/// Callbacks run synchronously on the thread that caused the event (the call that tripped the
/// breaker, the rejected caller), so keep them short and non-blocking — hand the event to a
/// channel or a task for anything slow. A callback must not reconfigure breakers or call
/// [`Registry::reload`](crate::Registry) itself (that could re-enter a breaker's
/// reconfiguration lock). A callback that panics is logged and skipped; the call goes on.
pub struct Listeners {
    /// Whether a callback is registered or a receiver may still be subscribed: read before any
    /// other event work. Set under `edit` by every registration; cleared under `edit` when a
    /// check there finds no callback and no receiver (receivers leave by being dropped, which
    /// nobody is told of, so the first event after the last one left clears it).
    listened: AtomicBool,
    callbacks: ArcSwap<Vec<(ListenerId, Callback)>>,
    /// Serialises changes to `callbacks` and `listened` (readers never take it).
    edit: Mutex<()>,
    next_id: AtomicU64,
    channel: OnceLock<broadcast::Sender<Event>>,
    /// The open-too-long threshold in microseconds; 0 when off.
    open_alert_micros: AtomicU64,
}

impl Default for Listeners {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("callbacks", &self.callbacks.load().len())
            .field("receivers", &self.receivers())
            .field("open_alert", &self.open_alert())
            .finish()
    }
}

impl Listeners {
    /// No callback, no channel, no alert.
    pub fn new() -> Self {
        Listeners {
            listened: AtomicBool::new(false),
            callbacks: ArcSwap::from_pointee(Vec::new()),
            edit: Mutex::new(()),
            next_id: AtomicU64::new(0),
            channel: OnceLock::new(),
            open_alert_micros: AtomicU64::new(0),
        }
    }

    /// Calls `callback` with every event from now on.
    pub fn on_event(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        let id = ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let callback: Callback = Arc::new(callback);
        let _edit = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::clone(&self.callbacks.load());
        next.push((id, callback));
        self.callbacks.store(Arc::new(next));
        self.listened.store(true, Ordering::Relaxed);
        id
    }

    /// Stops calling a callback; false if it was already removed.
    pub fn remove(&self, id: ListenerId) -> bool {
        let _edit = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.callbacks.load();
        if !current.iter().any(|(other, _)| *other == id) {
            return false;
        }
        let next = current
            .iter()
            .filter(|(other, _)| *other != id)
            .cloned()
            .collect::<Vec<_>>();
        let empty = next.is_empty();
        self.callbacks.store(Arc::new(next));
        if empty && self.receivers() == 0 {
            self.listened.store(false, Ordering::Relaxed);
        }
        true
    }

    /// A receiver of every event from now on. A receiver that falls more than
    /// [`CHANNEL_CAPACITY`] events behind loses the oldest and is told how many.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        let _edit = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = self
            .channel
            .get_or_init(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        self.listened.store(true, Ordering::Relaxed);
        receiver
    }

    /// Receivers currently subscribed.
    pub fn receivers(&self) -> usize {
        self.channel
            .get()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Sends [`Event::OpenTooLong`] (and logs a warning) once a breaker has gone `limit`
    /// without closing since it opened. `None` turns the alert off.
    ///
    /// The check runs when the breaker rejects a call and on every
    /// [`Registry::check_alerts`](crate::Registry::check_alerts): call that from a periodic
    /// task to be alerted even when no traffic reaches the breaker.
    pub fn alert_when_open_longer_than(&self, limit: Option<Duration>) {
        let micros = limit.map_or(0, |limit| {
            u64::try_from(limit.as_micros()).unwrap_or(u64::MAX).max(1)
        });
        self.open_alert_micros.store(micros, Ordering::Relaxed);
    }

    /// The open-too-long threshold, if set.
    pub fn open_alert(&self) -> Option<Duration> {
        match self.open_alert_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub(crate) fn open_alert_micros(&self) -> u64 {
        self.open_alert_micros.load(Ordering::Relaxed)
    }

    /// Whether any callback or receiver would see an event.
    pub fn is_listened(&self) -> bool {
        !self.callbacks.load().is_empty() || self.receivers() > 0
    }

    /// Whether an event may have someone to reach: one relaxed load, so that a caller can
    /// skip every step of building one (cloning names, loading the callback list) when not.
    #[inline]
    pub(crate) fn may_be_listened(&self) -> bool {
        self.listened.load(Ordering::Relaxed)
    }

    /// Delivers the event `make` builds, if anyone listens; `make` is not called otherwise.
    #[inline]
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.may_be_listened() {
            self.emit_listened(make);
        }
    }

    #[cold]
    #[inline(never)]
    fn emit_listened(&self, make: impl FnOnce() -> Event) {
        let callbacks = self.callbacks.load();
        let channel = self
            .channel
            .get()
            .filter(|sender| sender.receiver_count() > 0);
        if callbacks.is_empty() && channel.is_none() {
            self.forget_listeners_gone();
            return;
        }
        let event = make();
        for (_, callback) in callbacks.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(&event))) {
                tracing::error!(
                    target: "resilient::event",
                    panic = panic_text(&*panic),
                    "an event listener panicked; the event was skipped for it"
                );
            }
        }
        if let Some(sender) = channel {
            // Fails only when the last receiver went away since the check: nobody to tell.
            let _ = sender.send(event);
        }
    }

    /// Reports a fallback served by `call_site` after an error of type `E`: a DEBUG event on
    /// `resilient::fallback`, and an [`Event::Fallback`] to the listeners.
    pub fn fallback<E: ?Sized>(&self, call_site: &Arc<str>) {
        let error = std::any::type_name::<E>();
        tracing::debug!(
            target: "resilient::fallback",
            call_site = %call_site, error,
            "call failed, fallback served"
        );
        self.emit(|| Event::Fallback {
            call_site: call_site.clone(),
            error,
        });
    }
}

impl Listeners {
    /// Clears the flag once the last receiver has been dropped and no callback is left, so
    /// later events skip this check too. Under `edit`, so a registration racing this one is
    /// either seen here or sets the flag again after.
    fn forget_listeners_gone(&self) {
        let _edit = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        if self.callbacks.load().is_empty() && self.receivers() == 0 {
            self.listened.store(false, Ordering::Relaxed);
        }
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn fallback_event() -> Event {
        Event::Fallback {
            call_site: "site".into(),
            error: "E",
        }
    }

    #[test]
    fn nothing_is_built_while_nobody_listens() {
        let listeners = Listeners::new();
        listeners.emit(|| unreachable!("built without a listener"));
        let receiver = listeners.subscribe();
        drop(receiver);
        listeners.emit(|| unreachable!("built after the last receiver left"));
        assert!(!listeners.is_listened());
    }

    #[test]
    fn callbacks_are_called_until_removed() {
        let listeners = Listeners::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let id = listeners.on_event(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        listeners.emit(fallback_event);
        assert!(listeners.remove(id));
        assert!(!listeners.remove(id), "already removed");
        listeners.emit(fallback_event);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_panicking_callback_does_not_stop_the_others() {
        let listeners = Listeners::new();
        let seen = Arc::new(AtomicUsize::new(0));
        listeners.on_event(|_| panic!("listener bug"));
        let counter = seen.clone();
        listeners.on_event(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let mut receiver = listeners.subscribe();
        listeners.emit(fallback_event);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(receiver.try_recv().unwrap(), fallback_event());
    }

    #[test]
    fn the_flag_follows_callbacks_added_and_removed() {
        let listeners = Listeners::new();
        assert!(!listeners.may_be_listened());
        let first = listeners.on_event(|_| {});
        let second = listeners.on_event(|_| {});
        assert!(listeners.may_be_listened());
        assert!(listeners.remove(first));
        assert!(listeners.may_be_listened(), "one callback is left");
        assert!(listeners.remove(second));
        assert!(!listeners.may_be_listened(), "the last one is gone");
        listeners.emit(|| unreachable!("built after the last callback left"));
    }

    #[test]
    fn the_first_event_after_the_last_receiver_left_clears_the_flag() {
        let listeners = Listeners::new();
        let receiver = listeners.subscribe();
        assert!(listeners.may_be_listened());
        drop(receiver);
        // Nobody tells the listeners a receiver was dropped: the next event finds out.
        assert!(listeners.may_be_listened());
        listeners.emit(|| unreachable!("built after the last receiver left"));
        assert!(!listeners.may_be_listened());
    }

    #[test]
    fn removing_the_last_callback_keeps_the_flag_while_a_receiver_is_subscribed() {
        let listeners = Listeners::new();
        let id = listeners.on_event(|_| {});
        let mut receiver = listeners.subscribe();
        assert!(listeners.remove(id));
        assert!(listeners.may_be_listened());
        listeners.emit(fallback_event);
        assert_eq!(receiver.try_recv().unwrap(), fallback_event());
    }

    #[test]
    fn a_listener_added_after_an_unheard_event_receives_the_next_one() {
        let listeners = Listeners::new();
        listeners.emit(|| unreachable!("nobody listens yet"));
        let mut receiver = listeners.subscribe();
        listeners.emit(fallback_event);
        assert_eq!(receiver.try_recv().unwrap(), fallback_event());
        drop(receiver);
        listeners.emit(|| unreachable!("the receiver left"));
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        listeners.on_event(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        listeners.emit(fallback_event);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_receiver_subscribed_from_another_thread_is_seen_by_the_next_event() {
        let listeners = Arc::new(Listeners::new());
        listeners.emit(|| unreachable!("nobody listens yet"));
        let mut receiver = std::thread::spawn({
            let listeners = listeners.clone();
            move || listeners.subscribe()
        })
        .join()
        .unwrap();
        listeners.emit(fallback_event);
        assert_eq!(receiver.try_recv().unwrap(), fallback_event());
    }

    #[test]
    fn the_alert_threshold_round_trips() {
        let listeners = Listeners::new();
        assert_eq!(listeners.open_alert(), None);
        listeners.alert_when_open_longer_than(Some(Duration::from_secs(90)));
        assert_eq!(listeners.open_alert(), Some(Duration::from_secs(90)));
        listeners.alert_when_open_longer_than(None);
        assert_eq!(listeners.open_alert(), None);
    }
}
