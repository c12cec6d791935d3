//! Group 13 (issue 9): closed-state success on one breaker shared by 1, 2 and all threads, for
//! each trip policy, against two controls: one shared `fetch_add` (what a single shared counter
//! allows) and a thread-private counter (what the machine allows when nothing is shared).
//!
//! The private counter must scale for any figure to mean something: a machine whose other
//! tenants take the second core makes every entry look contended. A run whose control's
//! 2 ÷ 1 thread ratio is below [`CONTROL_MIN_SCALING`] is void.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resilient::{BreakerConfig, CircuitBreaker, SlidingWindow};

use crate::contention::calls_per_second;
use crate::report::{Group, Unit};

/// Below this 2 ÷ 1 thread ratio of the thread-private control, the run is void.
pub const CONTROL_MIN_SCALING: f64 = 1.5;

/// How far back the time-based policies look: far longer than a run, so nothing expires.
const WITHIN: Duration = Duration::from_secs(10);

/// The breakers compared: the entry's key, what a reader sees, and its configuration.
pub fn breakers() -> Vec<(&'static str, &'static str, BreakerConfig)> {
    vec![
        (
            "time_window",
            "time window: failure rate ≥ 50 % over the last 10 s",
            BreakerConfig::failure_rate(0.5, SlidingWindow::Time(WITHIN), 20),
        ),
        (
            "failure_count",
            "failure count: 5 failures within 10 s",
            BreakerConfig::failure_count(5, WITHIN),
        ),
        (
            "consecutive",
            "consecutive failures: 5 in a row",
            BreakerConfig::consecutive_failures(5),
        ),
        (
            "count_window",
            "count window: failure rate ≥ 50 % over the last 100 calls",
            BreakerConfig::default(),
        ),
    ]
}

thread_local! {
    /// The control's counter: each thread increments its own.
    static PRIVATE: AtomicU64 = const { AtomicU64::new(0) };
}

/// The thread counts measured: 1, 2 and every core, without duplicates.
pub fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2, cores];
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Group 13: every breaker of [`breakers`] and both controls at each of [`thread_counts`].
pub fn scaling(run: Duration, reps: usize) -> Group {
    let counts = thread_counts();
    let cores = counts.last().copied().unwrap_or(1);
    let mut out = Group::new(
        13,
        format!("Scaling by trip policy: one breaker, closed success ({cores} hardware threads)"),
        Unit::PerSecond,
    );
    // The private control first: it decides whether the run counts at all.
    measure_control(&mut out, &counts, run, reps);
    for (key, label, config) in breakers() {
        let breaker = CircuitBreaker::new(key, config).expect("a valid configuration");
        for &threads in &counts {
            let rate = calls_per_second(threads, run, reps, &|| {
                // The permit's atomics are side effects: nothing here can be optimised away.
                breaker.try_acquire().expect("closed").record_success();
            });
            out.push(
                &format!("{key}_{threads}"),
                format!("{label}, {threads} thread(s)"),
                rate,
            );
        }
    }
    let shared = AtomicU64::new(0);
    for &threads in &counts {
        let rate = calls_per_second(threads, run, reps, &|| {
            black_box(&shared).fetch_add(1, Ordering::Relaxed);
        });
        out.push(
            &format!("shared_{threads}"),
            format!("control: one shared `AtomicU64::fetch_add`, {threads} thread(s)"),
            rate,
        );
    }
    out.notes.push(scaling_note(&out, &counts));
    out.notes.push(format!(
        "Each figure is the median of {reps} runs of {} ms, all threads started together. The \
         thread-private control (a `fetch_add` on each thread's own counter) was measured at the \
         start of the group; a run whose control scales below {CONTROL_MIN_SCALING}× on 2 \
         threads is void.",
        run.as_millis()
    ));
    out.void = void_reason(&out);
    out
}

fn measure_control(out: &mut Group, counts: &[usize], run: Duration, reps: usize) {
    for &threads in counts {
        let rate = calls_per_second(threads, run, reps, &|| {
            PRIVATE.with(|counter| black_box(counter).fetch_add(1, Ordering::Relaxed));
        });
        out.push(
            &format!("private_{threads}"),
            format!("control: a thread-private counter's `fetch_add`, {threads} thread(s)"),
            rate,
        );
    }
}

/// Each entry's rate on more threads ÷ its rate on one.
fn scaling_note(group: &Group, counts: &[usize]) -> String {
    let mut keys: Vec<&str> = vec!["private"];
    keys.extend(breakers().iter().map(|(key, _, _)| *key));
    keys.push("shared");
    let mut note = String::from("Scaling (calls per second ÷ the same entry on one thread):");
    for key in keys {
        let one = group.entries.iter().find(|e| e.id == format!("{key}_1"));
        for &threads in counts.iter().filter(|&&t| t > 1) {
            let many = group
                .entries
                .iter()
                .find(|e| e.id == format!("{key}_{threads}"));
            if let (Some(one), Some(many)) = (one, many) {
                note.push_str(&format!(
                    " {key} {threads} threads {:.2}×;",
                    many.value / one.value
                ));
            }
        }
    }
    note
}

/// Why this run says nothing: its thread-private control did not scale on two threads.
pub fn void_reason(group: &Group) -> Option<String> {
    let value = |id: &str| group.entries.iter().find(|e| e.id == id).map(|e| e.value);
    let one = value("private_1")?;
    let two = value("private_2")?;
    let ratio = two / one;
    (ratio < CONTROL_MIN_SCALING).then(|| {
        format!(
            "the thread-private control scaled {ratio:.2}× on 2 threads (below \
             {CONTROL_MIN_SCALING}×): the second core was not ours"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_control(one: f64, two: f64) -> Group {
        let mut group = Group::new(13, "demo", Unit::PerSecond);
        group.push("private_1", "", one);
        group.push("private_2", "", two);
        group
    }

    #[test]
    fn a_control_that_does_not_scale_voids_the_run() {
        assert!(void_reason(&with_control(100.0, 140.0)).is_some());
        assert!(void_reason(&with_control(100.0, 190.0)).is_none());
    }

    #[test]
    fn every_trip_policy_is_a_valid_breaker() {
        for (key, _, config) in breakers() {
            let breaker = CircuitBreaker::new(key, config).expect("a valid configuration");
            breaker.try_acquire().expect("closed").record_success();
        }
    }
}
