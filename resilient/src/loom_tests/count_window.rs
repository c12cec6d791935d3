//! The count window's slots: outcomes of one generation, and writers racing a reset.

use super::*;

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
