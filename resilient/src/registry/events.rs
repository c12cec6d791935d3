//! The registry's side of events: listening to every breaker, bulkhead and policy it holds,
//! and the open-too-long alert.

use std::time::Duration;

use tokio::sync::broadcast;

use crate::event::{Event, ListenerId};

use super::Registry;

impl Registry {
    /// Calls `callback` with every event of this registry's breakers, bulkheads and policies
    /// (see [`Listeners`](crate::event::Listeners) for what a callback may do).
    ///
    /// ```
    /// use resilient::{event::Event, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.on_event(|event| {
    ///     if let Event::StateTransition { breaker, to, reason, .. } = event {
    ///         eprintln!("{breaker} is now {to}: {reason}");
    ///     }
    /// });
    /// ```
    pub fn on_event(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        self.listeners().on_event(callback)
    }

    /// Stops calling a callback added with [`on_event`](Self::on_event).
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.listeners().remove(id)
    }

    /// A broadcast receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.listeners().subscribe()
    }

    /// Sends [`Event::OpenTooLong`] once a breaker has gone `limit` without closing; `None`
    /// turns the alert off. Checked on every rejection and every
    /// [`check_alerts`](Self::check_alerts).
    pub fn alert_when_open_longer_than(&self, limit: impl Into<Option<Duration>>) {
        self.listeners().alert_when_open_longer_than(limit.into());
    }

    /// Checks every breaker for the open-too-long alert. Call it from a periodic task so the
    /// alert fires even when no call reaches an open breaker:
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    /// loop {
    ///     tick.tick().await;
    ///     resilient::registry().check_alerts();
    /// }
    /// # }
    /// ```
    pub fn check_alerts(&self) {
        if self.listeners().open_alert_micros() == 0 {
            return;
        }
        for breaker in self.breaker_handles() {
            breaker.check_open_alert();
        }
    }
}
