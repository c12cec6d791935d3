//! The retry budget's calls in flight, from two striped counts (issue 9).

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
