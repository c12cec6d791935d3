//! Lock-free sliding windows of call outcomes, the evidence a closed breaker judges by.
//!
//! Both windows tag what they store with the breaker's *generation* (bumped by every state
//! change), so an outcome recorded by a call that began under an earlier state never counts,
//! and a new closed period starts with an empty window without any clearing pass racing the
//! callers.
//!
//! * [`CountWindow`]: the last `N` outcomes. One `fetch_add` claims a slot, one store fills it;
//!   counting scans the `N` slots. The breaker judges the window after every outcome once it
//!   holds `minimum_calls`, but a fast success can only lower the rates of a window that held
//!   its minimum already, so only a bad outcome, or one of the first `minimum_calls` outcomes
//!   of a closed period, needs the scan: the claim itself tells which.
//! * [`TimeWindow`]: outcomes of the last `D`, in buckets. A bucket belongs to one tick of the
//!   clock; a bucket whose tick has left the window is ignored when counting and overwritten by
//!   the next call that lands in it. Old successes leaving the window raise its rates, so a
//!   success is judged too, but only while a bad outcome is still inside the window. Once a
//!   second thread records successes, each thread counts its successes of the current tick in
//!   a stripe of its own (see [`TimeWindow::record_success_in`]), so threads succeeding
//!   together do not pass a bucket's cache line between them; bad outcomes stay on the
//!   buckets.

mod count;
mod time;

pub(crate) use count::CountWindow;
pub(crate) use time::TimeWindow;

use crate::sync::AtomicU64;

/// The outcome bit for a failure.
pub(crate) const FAILURE: u8 = 0b01;
/// The outcome bit for a call slower than the slow-call threshold.
pub(crate) const SLOW: u8 = 0b10;

/// What a window holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Tally {
    /// `part / calls`, or 0 for an empty window.
    pub(crate) fn rate(part: u64, calls: u64) -> f64 {
        if calls == 0 {
            0.0
        } else {
            part as f64 / calls as f64
        }
    }

    pub(crate) fn failure_rate(&self) -> f64 {
        Self::rate(self.failures, self.calls)
    }

    pub(crate) fn slow_rate(&self) -> f64 {
        Self::rate(self.slow, self.calls)
    }
}

/// The window a breaker judges by, chosen by its trip policy.
///
/// The count window comes first: its closed success, the one that does the most, then finds it
/// with the fewest tests.
pub(crate) enum Window {
    /// The last `N` calls.
    Count(CountWindow),
    /// No window: the consecutive-failures policy keeps one counter instead, the failures in a
    /// row tagged with their generation: `generation << 32 | count`.
    None(AtomicU64),
    /// The calls (or only the failures) of the last `D`.
    Time(TimeWindow),
}
