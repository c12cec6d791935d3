//! The bulkhead's slot count: takers racing each other, the limit and the slots given back.

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
