//! The random operations and configurations proptest draws.

use super::*;

pub(crate) fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        5 => Just(End::Success),
        4 => Just(End::Failure),
        1 => Just(End::Ignored),
        1 => Just(End::Cancelled),
    ]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => end().prop_map(Op::Call),
        3 => (end(), 0..400u64).prop_map(|(end, ms)| Op::SlowCall(end, ms)),
        3 => Just(Op::Begin),
        3 => (any::<usize>(), end()).prop_map(|(index, end)| Op::End(index, end)),
        3 => (0..40u64).prop_map(Op::Advance),
        3 => (0..1500u64).prop_map(Op::Advance),
        // The configured durations themselves, so that steps land exactly on a boundary (an
        // open wait ending, max_half_open reached, a bucket leaving the window).
        3 => prop_oneof![Just(50u64), Just(100), Just(200), Just(250), Just(300), Just(1000)]
            .prop_map(Op::Advance),
        1 => Just(Op::Reset),
        1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable)],
    ]
}

pub(crate) fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..120)
}

/// Everything but the trip policy and the slow calls: open wait, growth, half-open settings.
pub(crate) fn spec(
    trip: impl Strategy<Value = Trip>,
    slow: BoxedStrategy<Option<(u64, u32)>>,
) -> impl Strategy<Value = Spec> {
    let probes = (1..=3u32).prop_flat_map(|probes| (Just(probes), 1..=probes));
    (
        trip,
        slow,
        prop_oneof![Just(100u64), Just(250), Just(1000)],
        any::<bool>(),
        1..=5u64,
        probes,
        prop_oneof![Just(None), (1..=3u64).prop_map(|k| Some(k * 300))],
    )
        .prop_map(
            |(trip, slow, open_wait_ms, doubling, cap, (probes, successes), max_half_open_ms)| {
                Spec {
                    trip,
                    slow,
                    open_wait_ms,
                    doubling,
                    max_open_wait_ms: open_wait_ms * cap,
                    probes,
                    successes,
                    max_half_open_ms,
                }
            },
        )
}

pub(crate) fn no_slow_calls() -> BoxedStrategy<Option<(u64, u32)>> {
    Just(None).boxed()
}

pub(crate) fn slow_calls() -> BoxedStrategy<Option<(u64, u32)>> {
    proptest::option::of((prop_oneof![Just(50u64), Just(200)], 1..=4u32)).boxed()
}
