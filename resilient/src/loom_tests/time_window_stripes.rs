//! The time window's success stripes (issue 9).

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
