//! A rejection decided before a call is set up, for callers that answer an open breaker
//! without building the call's future (the tower layer's `call`).

use std::time::Duration;

use crate::error::Rejection;

use super::{BreakerState, CircuitBreaker};

impl CircuitBreaker {
    /// Whether the breaker refuses calls now and goes on refusing them without a transition:
    /// forced open, or open with its wait not yet over; with the time left, if known. `None`
    /// for every other state, including an open breaker whose wait is over or not yet stamped:
    /// admitting there changes the state, which is [`try_acquire`](Self::try_acquire)'s to do.
    ///
    /// Reads only: one atomic load when closed, as `try_acquire`'s short path.
    pub(crate) fn refusing(&self) -> Option<Option<Duration>> {
        let shared = &*self.shared;
        let word = shared.core.load();
        match word.state() {
            BreakerState::ForcedOpen => Some(None),
            BreakerState::Open => {
                let until = shared.core.open_until(word)?;
                let now = shared.now_micros();
                (now < until).then(|| Some(Duration::from_micros(until - now)))
            }
            _ => None,
        }
    }

    /// The breaker's rejection, counted and reported as `try_acquire`'s, if it is
    /// [`refusing`](Self::refusing) calls.
    pub(crate) fn reject_now(&self) -> Option<Rejection> {
        let retry_after = self.refusing()?;
        let shared = &*self.shared;
        Some(shared.rejected(Rejection::CircuitOpen {
            breaker: shared.name.clone(),
            retry_after,
        }))
    }
}
