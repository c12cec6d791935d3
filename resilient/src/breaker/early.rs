//! A rejection decided from the state word and one clock read: the open breaker's answer to
//! every caller until its wait is over, and the one callers give without building the call's
//! future (the tower layer's `call`).

use std::time::Duration;

use crate::error::Rejection;

use super::word::Word;
use super::{BreakerState, CircuitBreaker, Shared};

impl CircuitBreaker {
    /// Whether the breaker refuses calls now and goes on refusing them without a transition:
    /// forced open, or open with its wait not yet over; with the time left, if known. `None`
    /// for every other state, including an open breaker whose wait is over or not yet stamped:
    /// admitting there changes the state, which is [`try_acquire`](Self::try_acquire)'s to do.
    ///
    /// Reads only: one atomic load when closed, as `try_acquire`'s short path.
    #[cfg(feature = "tower")]
    pub(crate) fn refusing(&self) -> Option<Option<Duration>> {
        let shared = &*self.shared;
        shared.refusing(shared.core.load())
    }

    /// The breaker's rejection, counted and reported as `try_acquire`'s, if it is
    /// [`refusing`](Self::refusing) calls.
    #[cfg(feature = "tower")]
    pub(crate) fn reject_now(&self) -> Option<Rejection> {
        let shared = &*self.shared;
        let retry_after = shared.refusing(shared.core.load())?;
        Some(shared.rejected_open(retry_after))
    }
}

impl Shared {
    /// [`CircuitBreaker::refusing`], in the state `word`.
    #[inline]
    pub(super) fn refusing(&self, word: Word) -> Option<Option<Duration>> {
        let shared = self;
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

    /// An open breaker's rejection, counted and reported.
    #[cold]
    #[inline(never)]
    pub(super) fn rejected_open(&self, retry_after: Option<Duration>) -> Rejection {
        self.rejected(Rejection::CircuitOpen {
            breaker: self.name.clone(),
            retry_after,
        })
    }

    /// A half-open breaker's rejection, counted and reported.
    #[cold]
    #[inline(never)]
    pub(super) fn rejected_half_open(&self) -> Rejection {
        self.rejected(Rejection::HalfOpenFull {
            breaker: self.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{BreakerConfig, Registry, Rejection};

    #[test]
    fn a_closed_breaker_writes_its_permit_in_place_and_an_open_one_writes_none() {
        let registry = Registry::new();
        let breaker = registry
            .declare_breaker("in_place", BreakerConfig::consecutive_failures(1))
            .expect("a valid configuration");
        let mut slot = None;
        assert!(!breaker.is_not_closed());
        breaker
            .acquire_into(&mut slot)
            .expect("a closed breaker admits");
        slot.take()
            .expect("the permit is in the slot")
            .record_failure();
        assert!(breaker.is_not_closed(), "one failure in a row opens it");
        let refused = breaker.acquire_into(&mut slot);
        assert!(
            matches!(refused, Err(Rejection::CircuitOpen { .. })),
            "{refused:?}"
        );
        assert!(slot.is_none(), "a refusal writes no permit");
    }
}
