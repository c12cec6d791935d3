//! The striped counter's lazy stripes (issue 9).

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
