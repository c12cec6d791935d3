//! A rejection decided before a call is set up, for callers that answer an open breaker
//! without building the call's future (the tower layer's `call`).

use std::time::Duration;

use crate::error::Rejection;

use super::{BreakerState, CircuitBreaker};

impl CircuitBreaker {
    /// The breaker's rejection, counted and reported as [`try_acquire`](Self::try_acquire)'s,
    /// if it refuses calls now and goes on refusing them without a transition: forced open, or
    /// open with its wait not yet over. `None` for every other state, including an open breaker
    /// whose wait is over or not yet stamped: admitting there changes the state, which is
    /// `try_acquire`'s to do.
    ///
    /// One atomic load when closed, as `try_acquire`'s short path.
    pub(crate) fn reject_now(&self) -> Option<Rejection> {
        let shared = &*self.shared;
        let word = shared.core.load();
        let retry_after = match word.state() {
            BreakerState::ForcedOpen => None,
            BreakerState::Open => {
                let until = shared.core.open_until(word)?;
                let now = shared.now_micros();
                if now >= until {
                    return None;
                }
                Some(Duration::from_micros(until - now))
            }
            _ => return None,
        };
        Some(shared.rejected(Rejection::CircuitOpen {
            breaker: shared.name.clone(),
            retry_after,
        }))
    }
}
