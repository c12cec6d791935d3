//! Model tests of the lock-free breaker under loom: every interleaving of a few threads (up to
//! a preemption bound) over the state word, the windows and the half-open probe slots.
//!
//! Run them with
//! `RUSTFLAGS="--cfg resilient_loom" cargo test -p resilient --lib --release loom_tests`.
//!
//! Each model is kept to two or three threads and a window of two slots: loom explores every
//! schedule, so the models must stay small to finish in seconds; the races they cover (two
//! callers on one transition, one outcome against one transition) need no more.

use std::sync::Mutex;
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::thread;

use crate::breaker::{
    Admission, BreakerConfig, BreakerState, Core, Env, Outcome, SlidingWindow, Transition,
    TransitionReason,
};
use crate::window::{CountWindow, FAILURE, TimeWindow, Window};

/// How long an open breaker waits in these models, in microseconds.
const OPEN_WAIT_MICROS: u64 = 1_000_000;

/// Fixed configuration, a clock the model sets, and every transition the state machine reports.
struct TestEnv {
    config: std::sync::Arc<BreakerConfig>,
    clock: AtomicU64,
    transitions: Mutex<Vec<Transition>>,
}

impl TestEnv {
    fn new(config: BreakerConfig) -> Self {
        TestEnv {
            config: std::sync::Arc::new(config),
            clock: AtomicU64::new(0),
            transitions: Mutex::new(Vec::new()),
        }
    }

    fn set_now(&self, micros: u64) {
        self.clock.store(micros, Ordering::SeqCst);
    }

    fn transitions(&self) -> Vec<Transition> {
        self.transitions.lock().unwrap().clone()
    }
}

impl Env for TestEnv {
    type Config = std::sync::Arc<BreakerConfig>;

    fn config(&self) -> Self::Config {
        self.config.clone()
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn on_transition(&self, transition: Transition) {
        // No loom operation happens while the lock is held, so it never blocks a model thread.
        self.transitions.lock().unwrap().push(transition);
    }
}

/// A breaker's atomics and window, shared by the model's threads.
struct Breaker {
    core: Core,
    window: Window,
    env: TestEnv,
}

impl Breaker {
    fn new(config: BreakerConfig, window: Window) -> Arc<Self> {
        Arc::new(Breaker {
            core: Core::new(0),
            window,
            env: TestEnv::new(config),
        })
    }

    fn admit(&self) -> Admission {
        self.core.admit(&self.window, &self.env)
    }

    fn record_closed(&self, generation: u32, outcome: Outcome) {
        self.core
            .record_closed(generation, outcome, &self.window, &self.env);
    }

    fn record_probe(&self, generation: u32, outcome: Outcome) {
        self.core
            .record_probe(generation, outcome, &self.window, &self.env);
    }

    fn force(&self, state: BreakerState) {
        self.core
            .force(state, TransitionReason::Reset, &self.window, &self.env);
    }

    /// Opens the breaker, lets the open wait pass and returns the half-open generation with
    /// `probes` probes admitted (at least one: the transition admits its caller).
    fn half_open_with(&self, probes: u32) -> u32 {
        self.force(BreakerState::Open);
        self.env.set_now(OPEN_WAIT_MICROS);
        let mut generation = None;
        for _ in 0..probes {
            match self.admit() {
                Admission::Probe(g) => generation = Some(g),
                other => panic!("setup expected a probe, got {other:?}"),
            }
        }
        let generation = generation.expect("at least one probe");
        assert_eq!(self.core.load().state(), BreakerState::HalfOpen);
        generation
    }
}

/// Opens at a failure rate of 50 % over a count window of two calls, judged from one call on,
/// so a single counted failure trips it.
fn rate_config(probes: u32, successes: u32) -> BreakerConfig {
    BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(2), 1)
        .with_open_wait(Duration::from_micros(OPEN_WAIT_MICROS))
        .with_half_open(probes, successes)
        .with_max_half_open(None)
}

fn count_window() -> Window {
    let window = CountWindow::new(2, 0);
    window.set_minimum(1);
    Window::Count(window)
}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // Every interleaving with up to three preemptions: the races below need at most two.
    builder.preemption_bound = Some(3);
    builder.check(test);
}

#[test]
fn half_open_never_admits_more_probes_than_configured() {
    model(|| {
        // One probe allowed. Three callers race the open → half-open transition itself: the
        // caller that wins it holds the only slot; the others are rejected until it is freed.
        let breaker = Breaker::new(rate_config(1, 1), count_window());
        breaker.force(BreakerState::Open);
        breaker.env.set_now(OPEN_WAIT_MICROS);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (breaker, in_flight, admitted) =
                    (breaker.clone(), in_flight.clone(), admitted.clone());
                thread::spawn(move || match breaker.admit() {
                    Admission::Probe(generation) => {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 1, "{now} probes in flight, 1 allowed");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        // Cancelled: frees the slot and records nothing.
                        breaker.record_probe(generation, Outcome::Ignored);
                    }
                    Admission::RejectedHalfOpen => {}
                    other => panic!("a half-open breaker answered {other:?}"),
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        assert!(admitted.load(Ordering::SeqCst) >= 1, "someone probes");
        let word = breaker.core.load();
        assert_eq!(word.state(), BreakerState::HalfOpen);
        assert_eq!(word.probes(), 0, "every probe slot was given back");
        let transitions = breaker.env.transitions();
        let to_half_open = transitions
            .iter()
            .filter(|t| t.to == BreakerState::HalfOpen)
            .count();
        assert_eq!(
            to_half_open, 1,
            "one caller made the transition: {transitions:?}"
        );
    });
}

#[test]
fn two_probe_slots_are_never_exceeded() {
    model(|| {
        // Two slots, one already held; two more callers race for the one left.
        let breaker = Breaker::new(rate_config(2, 2), count_window());
        let generation = breaker.half_open_with(1);
        let admitted = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (breaker, admitted) = (breaker.clone(), admitted.clone());
                thread::spawn(move || {
                    if let Admission::Probe(g) = breaker.admit() {
                        assert_eq!(g, generation);
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1, "exactly the free slot");
        assert_eq!(breaker.core.load().probes(), 2);
    });
}

#[test]
fn racing_failures_trip_the_breaker_once() {
    model(|| {
        let breaker = Breaker::new(rate_config(1, 1), count_window());
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    let Admission::Closed(generation) = breaker.admit() else {
                        // The other caller already tripped it.
                        return;
                    };
                    breaker.record_closed(generation, Outcome::Failure { slow: false });
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        let transitions = breaker.env.transitions();
        assert_eq!(transitions.len(), 1, "one transition: {transitions:?}");
        assert_eq!(
            (transitions[0].from, transitions[0].to),
            (BreakerState::Closed, BreakerState::Open)
        );
        let word = breaker.core.load();
        assert_eq!(word.state(), BreakerState::Open);
        assert_eq!(word.generation(), 1);
        assert!(
            breaker.core.open_until(word).is_some(),
            "the deadline is stamped"
        );
    });
}

/// The success that completes `minimum_calls` races a failure written into the window before
/// it: whichever of the two judges last sees both slots, so the window (one failure of two
/// calls, 50 %) trips the breaker exactly once, however the writes interleave.
#[test]
fn a_success_completing_the_minimum_and_a_racing_failure_trip_it_once() {
    model(|| {
        let config = BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(2), 2)
            .with_open_wait(Duration::from_micros(OPEN_WAIT_MICROS))
            .with_max_half_open(None);
        let window = CountWindow::new(2, 0);
        window.set_minimum(2);
        let breaker = Breaker::new(config, Window::Count(window));
        let callers: Vec<_> = [
            Outcome::Failure { slow: false },
            Outcome::Success { slow: false },
        ]
        .into_iter()
        .map(|outcome| {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_closed(0, outcome))
        })
        .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        let transitions = breaker.env.transitions();
        assert_eq!(transitions.len(), 1, "one transition: {transitions:?}");
        assert_eq!(breaker.core.load().state(), BreakerState::Open);
    });
}

#[test]
fn racing_probes_close_or_reopen_once() {
    // Both succeed (one of them closes), or one fails (re-opens) while the other succeeds.
    for outcomes in [
        [
            Outcome::Success { slow: false },
            Outcome::Success { slow: false },
        ],
        [
            Outcome::Success { slow: false },
            Outcome::Failure { slow: false },
        ],
    ] {
        model(move || {
            let breaker = Breaker::new(rate_config(2, 1), count_window());
            let generation = breaker.half_open_with(2);
            let probes: Vec<_> = outcomes
                .into_iter()
                .map(|outcome| {
                    let breaker = breaker.clone();
                    thread::spawn(move || breaker.record_probe(generation, outcome))
                })
                .collect();
            for probe in probes {
                probe.join().unwrap();
            }
            let transitions = breaker.env.transitions();
            // Closed → Open (setup), Open → HalfOpen (setup), then exactly one more.
            assert_eq!(transitions.len(), 3, "{transitions:?}");
            let last = transitions[2];
            assert_eq!(last.from, BreakerState::HalfOpen);
            let word = breaker.core.load();
            assert_eq!(word.state(), last.to, "the state is the last transition's");
            assert_eq!(word.generation(), generation + 1);
            assert_eq!(word.probes(), 0);
        });
    }
}

#[test]
fn a_stale_failure_never_counts_in_the_next_closed_period() {
    // The same race over each kind of window the closed state judges by.
    let windows: [fn() -> Window; 2] = [count_window, || {
        Window::Time(TimeWindow::new(1_000, 2, false))
    }];
    for make_window in windows {
        model(move || {
            let breaker = Breaker::new(rate_config(1, 1), make_window());
            let Admission::Closed(stale) = breaker.admit() else {
                panic!("a new breaker is closed");
            };
            // The call admitted in generation 0 fails while an operator resets the breaker.
            let caller = {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    breaker.record_closed(stale, Outcome::Failure { slow: false })
                })
            };
            let operator = {
                let breaker = breaker.clone();
                thread::spawn(move || breaker.force(BreakerState::Closed))
            };
            caller.join().unwrap();
            operator.join().unwrap();
            // Either the failure tripped generation 0 before the reset, or it was discarded:
            // the reset's compare-and-swap is the last whatever the order, and the new closed
            // period starts empty and closed. (The *reports* of the two transitions may arrive
            // in either order: each is made after its own compare-and-swap.)
            let word = breaker.core.load();
            assert_eq!(word.state(), BreakerState::Closed);
            let transitions = breaker.env.transitions();
            let resets = transitions
                .iter()
                .filter(|t| t.reason == TransitionReason::Reset)
                .count();
            let trips = transitions
                .iter()
                .filter(|t| (t.from, t.to) == (BreakerState::Closed, BreakerState::Open))
                .count();
            assert_eq!(
                (resets, transitions.len()),
                (1, 1 + trips),
                "{transitions:?}"
            );
            assert_eq!(
                word.generation(),
                1 + trips as u32,
                "one generation per transition"
            );
            let tally = match &breaker.window {
                Window::Count(count) => count.tally(word.generation()),
                Window::Time(time) => time.tally(word.generation(), breaker.env.now()),
                Window::None(_) => unreachable!(),
            };
            assert_eq!(tally.calls, 0, "a stale outcome counted: {tally:?}");
            assert_eq!(tally.failures, 0, "a stale outcome counted: {tally:?}");
        });
    }
}

#[test]
fn a_stale_failure_never_trips_the_next_generation() {
    // Consecutive failures: the counter is tagged with its generation instead of a window.
    model(|| {
        let config = BreakerConfig::consecutive_failures(1)
            .with_open_wait(Duration::from_micros(OPEN_WAIT_MICROS))
            .with_max_half_open(None);
        let breaker = Breaker::new(config, Window::None(AtomicU64::new(0)));
        let Admission::Closed(stale) = breaker.admit() else {
            panic!("a new breaker is closed");
        };
        breaker.force(BreakerState::Closed);
        let fresh = breaker.core.load().generation();
        let caller = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_closed(stale, Outcome::Failure { slow: false }))
        };
        let current = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_closed(fresh, Outcome::Success { slow: false }))
        };
        caller.join().unwrap();
        current.join().unwrap();
        let word = breaker.core.load();
        assert_eq!(
            word.state(),
            BreakerState::Closed,
            "a stale failure tripped it"
        );
        assert_eq!(word.generation(), fresh);
    });
}

#[test]
fn a_stale_probe_never_closes_the_next_half_open_period() {
    model(|| {
        // Two probes of one half-open period: one fails (re-opening) while the other
        // succeeds; after the next open wait a new half-open period begins. The success of
        // the old period must not close the new one.
        let breaker = Breaker::new(rate_config(2, 1), count_window());
        let old = breaker.half_open_with(2);
        let failing = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                breaker.record_probe(old, Outcome::Failure { slow: false });
                breaker.env.set_now(3 * OPEN_WAIT_MICROS);
                // The next half-open period, admitted by this caller.
                breaker.admit()
            })
        };
        let succeeding = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_probe(old, Outcome::Success { slow: false }))
        };
        let next = failing.join().unwrap();
        succeeding.join().unwrap();
        let word = breaker.core.load();
        match next {
            // The success came first and closed the breaker; the failure was then stale.
            Admission::Closed(_) => assert_eq!(word.state(), BreakerState::Closed),
            // The failure came first: a new half-open period, untouched by the old success.
            Admission::Probe(g) => {
                assert_ne!(g, old);
                assert_eq!(word.state(), BreakerState::HalfOpen);
                assert_eq!(
                    (word.generation(), word.probes(), word.successes()),
                    (g, 1, 0)
                );
            }
            other => panic!("unexpected admission {other:?}"),
        }
    });
}

#[test]
fn cancelled_probes_free_their_slots_for_later_callers() {
    model(|| {
        // One slot. Two callers each get it in turn or are rejected, and each cancels.
        let breaker = Breaker::new(rate_config(1, 1), count_window());
        let generation = breaker.half_open_with(1);
        let holder = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_probe(generation, Outcome::Ignored))
        };
        let contender = {
            let breaker = breaker.clone();
            thread::spawn(move || match breaker.admit() {
                Admission::Probe(g) => {
                    breaker.record_probe(g, Outcome::Ignored);
                    true
                }
                Admission::RejectedHalfOpen => false,
                other => panic!("unexpected admission {other:?}"),
            })
        };
        holder.join().unwrap();
        contender.join().unwrap();
        assert_eq!(breaker.core.load().probes(), 0);
        assert!(
            matches!(breaker.admit(), Admission::Probe(g) if g == generation),
            "a later caller is admitted once the cancelled probes are gone"
        );
    });
}

#[test]
fn concurrent_outcomes_of_one_generation_are_all_counted() {
    model(|| {
        let window = Arc::new(CountWindow::new(2, 0));
        let writers: Vec<_> = [FAILURE, 0]
            .into_iter()
            .map(|outcome| {
                let window = window.clone();
                thread::spawn(move || assert!(window.record(0, outcome).is_some()))
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let tally = window.tally(0);
        assert_eq!((tally.calls, tally.failures), (2, 1));
    });
}

#[test]
fn two_outcomes_rewriting_neighbouring_slots_both_land() {
    model(|| {
        // Both slots are bytes beside the claim counter. The last round left a failure and a
        // success; the next two outcomes, a success and a failure, each rewrite one: neither
        // erases the other, whichever slot each claims.
        let window = Arc::new(CountWindow::new(2, 0));
        window.record(0, FAILURE);
        window.record(0, 0);
        let writers: Vec<_> = [0, FAILURE]
            .into_iter()
            .map(|outcome| {
                let window = window.clone();
                thread::spawn(move || assert!(window.record(0, outcome).is_some()))
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let tally = window.tally(0);
        assert_eq!((tally.calls, tally.failures), (2, 1), "{tally:?}");
    });
}

#[test]
fn a_claim_racing_the_reset_never_counts_in_the_new_generation() {
    model(|| {
        // A failure of generation 0 claims a slot while the window is handed to generation 1
        // (a transition): claimed before the reset, its slot keeps generation 0's tag (or is
        // cleared); claimed after, it writes nothing. Generation 1 never counts it. (Claimed
        // before the reset and stored late, it may land on the slot generation 1's call has
        // just reused and erase that outcome: a plain store cannot check the slot's owner.
        // The window then holds one call fewer for a round.)
        let window = Arc::new(CountWindow::new(2, 0));
        let stale = {
            let window = window.clone();
            thread::spawn(move || window.record(0, FAILURE))
        };
        window.reset(1);
        assert!(window.record(1, 0).is_some());
        stale.join().unwrap();
        let tally = window.tally(1);
        assert!(tally.calls <= 1 && tally.failures == 0, "{tally:?}");
    });
}

#[test]
fn a_stale_write_never_erases_what_a_newer_generation_counted() {
    model(|| {
        // One bucket, written at the same moment by a call of generation 1 and a late call of
        // generation 0: the late one must leave generation 1's counts alone.
        let window = Arc::new(TimeWindow::new(1_000, 2, false));
        // Something was recorded already, so neither writer is the first after a silence
        // (that one clears the whole window, and a count racing the clearing may be lost:
        // `TimeWindow::advance_to` accepts that trade-off for an empty window).
        window.record(0, 0, 0, true);
        let writers: Vec<_> = [1, 0]
            .into_iter()
            .map(|generation| {
                let window = window.clone();
                thread::spawn(move || window.record(generation, 0, FAILURE, true))
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let tally = window.tally(1, 0);
        assert_eq!((tally.calls, tally.failures), (1, 1), "{tally:?}");
    });
}

// ---- The striped counter's lazy stripes (issue 9) ----

mod striped_counter {
    use loom::sync::Arc;
    use loom::thread;

    use crate::counter::StripedCounter;

    #[test]
    fn the_first_two_threads_racing_for_the_base_cell_lose_no_count() {
        super::model(|| {
            let counter = Arc::new(StripedCounter::default());
            // Slot 0 counts twice (the second count may find the stripes the other made while
            // it owned the base cell); slot 1 counts once, racing it for the base cell.
            let counts = [(0, 2), (1, 1)];
            let threads: Vec<_> = counts
                .into_iter()
                .map(|(slot, times)| {
                    let counter = counter.clone();
                    thread::spawn(move || {
                        for _ in 0..times {
                            counter.increment_in(Some(slot));
                        }
                    })
                })
                .collect();
            // A reader racing both sees no more than was counted.
            assert!(counter.get() <= 3);
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(counter.get(), 3);
        });
    }

    #[test]
    fn a_thread_without_a_slot_and_the_owner_lose_no_count() {
        super::model(|| {
            let counter = Arc::new(StripedCounter::default());
            let other = counter.clone();
            let without = thread::spawn(move || other.increment_in(None));
            counter.increment_in(Some(0));
            counter.increment_in(Some(0));
            without.join().unwrap();
            assert_eq!(counter.get(), 3);
        });
    }
}

// ---- The retry budget's calls in flight, from two striped counts (issue 9) ----

mod budget_calls_in_flight {
    use loom::sync::Arc;
    use loom::thread;

    use crate::counter::StripedCounter;
    use crate::retry::calls_in_flight;

    #[test]
    fn a_call_ending_on_another_thread_while_a_retry_reads_is_never_counted_twice_or_below_zero() {
        super::model(|| {
            let started = Arc::new(StripedCounter::default());
            let ended = Arc::new(StripedCounter::default());
            // One call already in flight, entered on slot 0.
            started.increment_in(Some(0));
            let call = {
                let (started, ended) = (started.clone(), ended.clone());
                thread::spawn(move || {
                    // A second call enters on slot 1; the first ends there, moved by its
                    // runtime; then the second ends too.
                    started.increment_in(Some(1));
                    ended.increment_in(Some(1));
                    ended.increment_in(Some(1));
                })
            };
            // A retry deciding meanwhile sees at most the two calls there ever were.
            assert!(calls_in_flight(&started, &ended) <= 2);
            call.join().unwrap();
            assert_eq!(calls_in_flight(&started, &ended), 0);
        });
    }
}

// ---- The time window's success stripes (issue 9) ----

mod time_window_stripes {
    use loom::sync::Arc;
    use loom::thread;

    use crate::window::{FAILURE, TimeWindow};

    #[test]
    fn a_success_moving_its_stripe_while_a_failure_judges_is_never_missed() {
        super::model(|| {
            // Ticks of 1 ms, three of them in the window.
            let window = Arc::new(TimeWindow::new(1_000, 3, false));
            // Slot 0 counts on the buckets; slot 1 brought the stripes and holds one success
            // of tick 0 in its stripe.
            window.record_success_in(Some(0), 0, 0);
            window.record_success_in(Some(1), 0, 0);
            let succeeding = {
                let window = window.clone();
                // Slot 1 succeeds again in tick 2, later than the judgement below looks: its
                // stripe moves on and its tick-0 success joins bucket 0.
                thread::spawn(move || window.record_success_in(Some(1), 0, 2_000))
            };
            window.record(0, 1_000, FAILURE, true);
            let judged = window.tally(0, 1_000);
            assert_eq!(judged.failures, 1);
            // The two successes of tick 0 and the failure, or one success more (the moving
            // one seen twice): never fewer than were recorded before the judgement.
            assert!((3..=4).contains(&judged.calls), "{judged:?}");
            succeeding.join().unwrap();
            assert_eq!(window.tally(0, 1_000).calls, 3);
            assert_eq!(window.tally(0, 2_000).calls, 4);
        });
    }
}

// The bulkhead's slot count: one counter of calls in flight, a limit, and the count of
// unserved waiters that a release or a raised limit checks (`bulkhead/slots.rs`). The gate is
// the wait queue's mutex; the hand-over itself (a tokio semaphore) is out of the model, which
// stands it in with a flag saying the waiter was served.

mod bulkhead_slots {
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::model;
    use crate::bulkhead::slots::Slots;

    /// Slots with `held` of them taken.
    fn slots(limit: usize, held: usize) -> Arc<Slots> {
        let slots = Slots::new(limit);
        for _ in 0..held {
            assert!(slots.try_take());
        }
        Arc::new(slots)
    }

    #[test]
    fn two_admissions_racing_for_the_last_slot_never_both_succeed() {
        model(|| {
            let slots = slots(2, 1);
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let slots = slots.clone();
                    thread::spawn(move || slots.try_take())
                })
                .collect();
            let admitted = racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .filter(|&taken| taken)
                .count();
            assert_eq!(admitted, 1);
            assert_eq!(slots.in_flight(), 2);
        });
    }

    #[test]
    fn a_release_racing_an_admission_neither_loses_nor_doubles_the_slot() {
        model(|| {
            let slots = slots(1, 1);
            let releaser = thread::spawn({
                let slots = slots.clone();
                move || slots.put_back()
            });
            let taken = slots.try_take();
            assert!(!releaser.join().unwrap(), "nobody waits");
            assert_eq!(slots.in_flight(), usize::from(taken));
            assert_eq!(slots.try_take(), !taken, "the one slot, exactly once");
        });
    }

    /// A waiter registering (under the gate) while the only slot is given back: either it
    /// finds the slot itself or the release serves it, never neither, never both.
    #[test]
    fn a_release_racing_a_waiters_registration_never_leaves_it_unserved() {
        model(|| {
            let slots = slots(1, 1);
            let gate = Arc::new(Mutex::new(()));
            let releaser = thread::spawn({
                let (slots, gate) = (slots.clone(), gate.clone());
                move || {
                    if slots.put_back() {
                        let _gate = gate.lock().unwrap();
                        return slots.serve_one();
                    }
                    false
                }
            });
            let found = {
                let _gate = gate.lock().unwrap();
                slots.register_waiter()
            };
            let served = releaser.join().unwrap();
            assert!(found != served, "found {found}, served {served}");
            assert_eq!(slots.in_flight(), 1);
            assert!(!slots.put_back(), "no waiter is left counted as unserved");
        });
    }

    /// The same race against a raised limit instead of a release.
    #[test]
    fn a_raised_limit_racing_a_waiters_registration_never_leaves_it_unserved() {
        model(|| {
            let slots = slots(1, 1);
            let gate = Arc::new(Mutex::new(()));
            let raiser = thread::spawn({
                let (slots, gate) = (slots.clone(), gate.clone());
                move || {
                    if slots.set_limit(2) {
                        let _gate = gate.lock().unwrap();
                        return slots.serve_one();
                    }
                    false
                }
            });
            let found = {
                let _gate = gate.lock().unwrap();
                slots.register_waiter()
            };
            let served = raiser.join().unwrap();
            assert!(found != served, "found {found}, served {served}");
            assert_eq!(slots.in_flight(), 2);
        });
    }
}
