//! The window a breaker judges by, and the windows that replaced it on reconfigurations.

use std::sync::OnceLock;
use std::time::Duration;

use super::{BreakerConfig, TIME_BUCKETS, TripPolicy, WindowShape, state};
use crate::window::{CountWindow, TimeWindow, Window};

/// One window, and the window that replaced it when the configuration changed shape.
///
/// Handles and in-flight permits may still be reading an old window, so a replaced window is
/// kept, not freed, for the life of the breaker: a shape change (a new window kind or size) is
/// an operator's action and costs one window's memory; a change of thresholds costs nothing.
pub(super) struct WindowCell {
    pub(super) window: Window,
    next: OnceLock<Box<WindowCell>>,
}

impl WindowCell {
    pub(super) fn new(shape: WindowShape, generation: u32, config: &BreakerConfig) -> Self {
        let window = match shape {
            WindowShape::None => Window::None(crate::sync::AtomicU64::new(0)),
            WindowShape::Count(size) => Window::Count(CountWindow::new(size as usize, generation)),
            WindowShape::Time {
                span,
                failures_only,
            } => Window::Time(TimeWindow::new(
                time_bucket_micros(span),
                TIME_BUCKETS as usize,
                failures_only,
            )),
        };
        let cell = WindowCell {
            window,
            next: OnceLock::new(),
        };
        cell.follow(config);
        cell
    }

    /// Whether this window is the one `shape` would make (then a reconfiguration keeps it).
    /// Asked of the window rather than stored beside it: every breaker would carry the shape
    /// for the rare reconfiguration. Two time spans whose buckets round to the same number of
    /// microseconds make the same window.
    pub(super) fn has_shape(&self, shape: WindowShape) -> bool {
        match (&self.window, shape) {
            (Window::None(_), WindowShape::None) => true,
            (Window::Count(count), WindowShape::Count(size)) => count.size() == size as usize,
            (
                Window::Time(time),
                WindowShape::Time {
                    span,
                    failures_only,
                },
            ) => {
                time.bucket_micros() == time_bucket_micros(span)
                    && time.failures_only() == failures_only
            }
            _ => false,
        }
    }

    /// Takes the parts of `config` the window itself keeps.
    pub(super) fn follow(&self, config: &BreakerConfig) {
        if let (Window::Count(count), TripPolicy::FailureRate { minimum_calls, .. }) =
            (&self.window, config.settings.trip)
        {
            count.set_minimum(minimum_calls);
        }
    }

    /// The window in force: this one unless the configuration changed shape since. Every
    /// call asks, so the answer for a breaker never reshaped is one load, and the chain is
    /// walked out of line.
    #[inline]
    pub(super) fn latest(&self) -> &WindowCell {
        match self.next.get() {
            None => self,
            Some(next) => next.walk(),
        }
    }

    /// Makes `cell` the window in force: call on the latest cell, one caller at a time.
    pub(super) fn append(&self, cell: Box<WindowCell>) {
        let _ = self.next.set(cell);
    }

    #[cold]
    #[inline(never)]
    fn walk(&self) -> &WindowCell {
        let mut cell = self;
        while let Some(next) = cell.next.get() {
            cell = next;
        }
        cell
    }
}

/// The bucket width of a time window spanning `span`, in whole microseconds.
fn time_bucket_micros(span: Duration) -> u64 {
    state::duration_micros(span)
        .div_ceil(u64::from(TIME_BUCKETS))
        .max(1)
}
