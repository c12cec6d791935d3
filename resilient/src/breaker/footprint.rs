//! What a breaker holds on the heap, pinned so that a regression fails (issue 9: at most 512
//! bytes for a breaker called from one thread).

use std::mem::size_of;

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::window::{CountWindow, TimeWindow, Window};

/// The heap a breaker holds, piece by piece: the benches' group 14 counts the same bytes
/// with a counting allocator, which the runtime cannot have (it needs `unsafe`).
fn heap_bytes(breaker: &CircuitBreaker) -> usize {
    let counts = 2 * size_of::<usize>(); // an `Arc`'s strong and weak counts
    let shared = &*breaker.shared;
    let window = match shared.window() {
        Window::Count(count) => count.heap_bytes(),
        Window::Time(time) => time.heap_bytes(),
        Window::None(_) => 0,
    };
    let cold = shared
        .counters
        .cold
        .get()
        .map_or(0, |_| size_of::<counters::ColdCounters>());
    let stripes = shared.counters.successes.heap_bytes();
    (counts + size_of::<Shared>())
        + (counts + shared.name.len()).next_multiple_of(size_of::<usize>())
        // The breaker's own `Arc` of the configuration; the settings are the caller's.
        + (counts + size_of::<BreakerConfig>())
        + window
        + cold
        + stripes
}

#[test]
fn a_breaker_called_from_one_thread_holds_at_most_512_bytes() {
    let within = Duration::from_secs(10);
    let configs = [
        BreakerConfig::failure_rate(0.5, SlidingWindow::Time(within), 20),
        BreakerConfig::failure_count(5, within),
        BreakerConfig::consecutive_failures(5),
        BreakerConfig::default(),
    ];
    for config in configs {
        let breaker = CircuitBreaker::new("dependency-000000", config.clone()).unwrap();
        breaker.try_acquire().unwrap().record_success();
        let bytes = heap_bytes(&breaker);
        assert!(bytes <= 512, "{bytes} bytes for {:?}", config.trip());
        assert!(
            Arc::ptr_eq(&breaker.config().settings, &config.settings),
            "a breaker made from a configuration shares its settings"
        );
    }
}

#[test]
fn the_pieces_of_a_breaker_keep_their_size() {
    // What every breaker carries inline: a regression here costs every breaker.
    assert!(size_of::<Shared>() <= 272, "{}", size_of::<Shared>());
    assert_eq!(size_of::<BreakerConfig>(), size_of::<usize>());
    // A count window of up to 120 calls lives on its claim counter's 128 bytes; a larger
    // one takes a byte per call more.
    assert_eq!(CountWindow::new(120, 0).heap_bytes(), 128);
    assert_eq!(CountWindow::new(1_000, 0).heap_bytes(), 128 + 880);
    // A time window carries its failure and slow-call columns from the first of them on.
    let time = TimeWindow::new(1_000, 20, false);
    assert_eq!(time.heap_bytes(), 20 * 8);
    time.record(0, 0, crate::window::FAILURE, true);
    assert_eq!(time.heap_bytes(), 3 * 20 * 8);
    let failures_only = TimeWindow::new(1_000, 20, true);
    assert_eq!(failures_only.heap_bytes(), 0);
    failures_only.record(0, 0, crate::window::FAILURE, false);
    assert_eq!(failures_only.heap_bytes(), 20 * 8);
}
