//! The breaker's state machine: probes, trips and stale outcomes racing transitions.

use super::*;

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
