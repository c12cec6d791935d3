//! Throughput of many threads hammering one shared object, for the contention group.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Calls between two looks at the stop flag: enough that the look costs nothing, few enough
/// that a thread stops within microseconds.
const BATCH: u64 = 256;

/// Calls per second of `threads` threads running `call` in a loop for about `run`, all at once
/// (they start together behind a barrier). The median of `reps` runs.
pub fn calls_per_second(
    threads: usize,
    run: Duration,
    reps: usize,
    call: &(impl Fn() + Sync),
) -> f64 {
    let mut rates: Vec<f64> = (0..reps).map(|_| one_run(threads, run, call)).collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn one_run(threads: usize, run: Duration, call: &(impl Fn() + Sync)) -> f64 {
    let start_line = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start_line.wait();
                    let mut calls = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..BATCH {
                            call();
                        }
                        calls += BATCH;
                    }
                    calls
                })
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = workers
            .into_iter()
            .map(|worker| worker.join().expect("a benchmark thread panicked"))
            .sum();
        calls as f64 / started.elapsed().as_secs_f64()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_thread_runs_and_is_counted() {
        let counter = AtomicU64::new(0);
        let rate = calls_per_second(2, Duration::from_millis(20), 1, &|| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let calls = counter.load(Ordering::Relaxed);
        assert!(
            calls >= 2 * BATCH,
            "both threads ran at least one batch: {calls}"
        );
        assert!(rate > 0.0);
    }
}
