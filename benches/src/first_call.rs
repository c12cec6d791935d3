//! Group 14 (issue 9): the heap a breaker holds once it has been used, not just declared: after
//! `CircuitBreaker::new`, after its first call, and after a call from a second thread (per-thread
//! stripes, if any, appear on first use).
//!
//! Counted with the bench binary's counting allocator. Both threads first call another breaker
//! of the same configuration, so that whatever the runtime sets up once per thread (thread
//! locals) is not charged to the breaker measured.

use std::sync::Barrier;

use resilient::{BreakerConfig, CircuitBreaker};

use crate::alloc::measure;
use crate::report::{Group, Unit};
use crate::scaling::breakers;

/// One call that succeeds.
fn call(breaker: &CircuitBreaker) {
    breaker.try_acquire().expect("closed").record_success();
}

/// Bytes held after `new`, after one call from this thread, and after one more from another
/// thread (each figure includes the previous ones).
pub fn footprint(config: &BreakerConfig) -> [isize; 3] {
    let warm = CircuitBreaker::new("warm-up", config.clone()).expect("a valid configuration");
    call(&warm);
    let (breaker, new) =
        measure(|| CircuitBreaker::new("dependency-000000", config.clone()).expect("valid"));
    let ((), first) = measure(|| call(&breaker));
    let ready = Barrier::new(2);
    let start = Barrier::new(2);
    let done = Barrier::new(2);
    let release = Barrier::new(2);
    let second = std::thread::scope(|scope| {
        scope.spawn(|| {
            call(&warm);
            ready.wait();
            start.wait();
            call(&breaker);
            done.wait();
            // The thread's own exit frees memory: it must not happen while counting.
            release.wait();
        });
        ready.wait();
        // Only the window between `start` and `done` is counted: the other thread's call,
        // while this one waits (a barrier's wait does not allocate).
        let ((), bytes) = measure(|| {
            start.wait();
            done.wait();
        });
        release.wait();
        bytes
    });
    [new, new + first, new + first + second]
}

/// Group 14: [`footprint`] of every trip policy of the scaling group.
pub fn memory() -> Group {
    let mut out = Group::new(
        14,
        "Memory per breaker after its first calls (heap bytes held)",
        Unit::Bytes,
    );
    out.ratios = false;
    for (key, label, config) in breakers() {
        let [new, one, two] = footprint(&config);
        out.push(
            &format!("{key}_new"),
            format!("{label}: `CircuitBreaker::new`"),
            new as f64,
        );
        out.push(
            &format!("{key}_one"),
            "… after one call from one thread",
            one as f64,
        );
        out.push(
            &format!("{key}_two"),
            "… after one more call from a second thread",
            two as f64,
        );
    }
    out.notes.push(
        "Bytes requested from the allocator and still held (allocated − freed), counted by the \
         bench binary's global allocator; each line includes the ones above it. Both threads \
         first called another breaker of the same configuration, so per-thread set-up is not \
         counted."
            .to_owned(),
    );
    out
}
