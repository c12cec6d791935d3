//! Adaptive bulkheads against a simulated dependency whose latency grows with the calls in
//! flight past a knee: the limit settles near the knee, follows it down when it moves, and
//! never leaves its bounds. Permits are driven by hand under tokio's paused clock, with as
//! many callers as the bulkhead admits.

use std::time::Duration;

use resilient::bulkhead::{BulkheadPermit, LimitAlgorithm};
use resilient::{Bulkhead, BulkheadConfig};
use tokio::time::Instant;

const BASE: Duration = Duration::from_millis(10);
const MIN: usize = 2;
const MAX: usize = 200;

/// Answers in `BASE` up to `knee` calls in flight, and proportionally slower beyond.
struct Dependency {
    knee: usize,
}

impl Dependency {
    fn latency(&self, in_flight: usize) -> Duration {
        if in_flight <= self.knee {
            BASE
        } else {
            BASE * u32::try_from(in_flight).unwrap() / u32::try_from(self.knee).unwrap()
        }
    }
}

struct Call<'a> {
    ends: Instant,
    latency: Duration,
    permit: BulkheadPermit<'a>,
}

/// Runs `calls` calls with the bulkhead always full (a new call takes every slot freed), and
/// answers the limit after each.
async fn run<'a>(
    bulkhead: &'a Bulkhead,
    dependency: &Dependency,
    in_flight: &mut Vec<Call<'a>>,
    calls: usize,
) -> Vec<usize> {
    let mut limits = Vec::with_capacity(calls);
    for _ in 0..calls {
        while let Ok(permit) = bulkhead.try_acquire() {
            let latency = dependency.latency(bulkhead.metrics().in_use);
            in_flight.push(Call {
                ends: Instant::now() + latency,
                latency,
                permit,
            });
        }
        let next = (0..in_flight.len())
            .min_by_key(|&i| in_flight[i].ends)
            .expect("a full bulkhead has calls in flight");
        let call = in_flight.swap_remove(next);
        tokio::time::advance(call.ends.saturating_duration_since(Instant::now())).await;
        call.permit.record(call.latency, true);
        limits.push(bulkhead.metrics().max_concurrent);
    }
    limits
}

fn within(limits: &[usize], low: usize, high: usize) -> bool {
    limits.iter().all(|&limit| (low..=high).contains(&limit))
}

async fn settles_near_the_knee_and_follows_it_down(algorithm: LimitAlgorithm) {
    let bulkhead = Bulkhead::new("adaptive", BulkheadConfig::adaptive(MIN, 5, MAX, algorithm))
        .expect("valid config");
    let mut dependency = Dependency { knee: 20 };
    let mut in_flight = Vec::new();

    let limits = run(&bulkhead, &dependency, &mut in_flight, 2_000).await;
    assert!(within(&limits, MIN, MAX));
    let settled = &limits[500..];
    assert!(
        within(settled, 14, 26),
        "within ±30 % of the knee of 20 after 500 calls: {:?}",
        &settled[..50]
    );

    dependency.knee = 10;
    let limits = run(&bulkhead, &dependency, &mut in_flight, 2_000).await;
    assert!(within(&limits, MIN, MAX));
    let settled = &limits[500..];
    assert!(
        within(settled, 7, 13),
        "within ±30 % of the knee of 10 after 500 calls: {:?}",
        &settled[..50]
    );
    assert_eq!(bulkhead.config().max_concurrent, 5, "the initial limit");
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_near_the_knee_and_follows_it_down() {
    settles_near_the_knee_and_follows_it_down(LimitAlgorithm::Vegas).await;
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_near_the_knee_and_follows_it_down() {
    // A call slower than 1.2 × the unloaded latency is a sign of overload.
    settles_near_the_knee_and_follows_it_down(LimitAlgorithm::aimd(BASE * 6 / 5)).await;
}

#[tokio::test(start_paused = true)]
async fn failures_bring_the_limit_down_to_its_minimum_and_no_further() {
    let bulkhead = Bulkhead::new(
        "adaptive",
        BulkheadConfig::adaptive(3, 10, 50, LimitAlgorithm::Vegas),
    )
    .unwrap();
    let mut limits = Vec::new();
    for _ in 0..200 {
        let permit = bulkhead.try_acquire().unwrap();
        permit.record(BASE, false);
        limits.push(bulkhead.metrics().max_concurrent);
    }
    assert_eq!(
        &limits[..10],
        [9; 10],
        "cut once for the calls of one limit"
    );
    assert_eq!(limits[10], 8);
    assert_eq!(*limits.last().unwrap(), 3);
    assert!(within(&limits, 3, 9));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_tells_the_limit_nothing() {
    let bulkhead = Bulkhead::new(
        "adaptive",
        BulkheadConfig::adaptive(1, 10, 50, LimitAlgorithm::Vegas),
    )
    .unwrap();
    for _ in 0..20 {
        drop(bulkhead.try_acquire().unwrap());
    }
    assert_eq!(bulkhead.metrics().max_concurrent, 10);
    // A fixed bulkhead takes reports and ignores them.
    let fixed = Bulkhead::new("fixed", BulkheadConfig::new(4)).unwrap();
    fixed.try_acquire().unwrap().record(BASE, false);
    assert_eq!(fixed.metrics().max_concurrent, 4);
}

#[tokio::test(start_paused = true)]
async fn a_raised_adaptive_limit_admits_a_waiter() {
    let bulkhead = Bulkhead::new(
        "adaptive",
        BulkheadConfig::adaptive(1, 1, 10, LimitAlgorithm::aimd(BASE))
            .with_max_wait(Duration::from_secs(1)),
    )
    .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.is_ok() }
    });
    tokio::time::advance(BASE).await;
    assert_eq!(bulkhead.metrics().waiting, 1);
    // AIMD adds 1 / limit = 1 for a good call of a full limit of 1: the limit becomes 2, and
    // the waiter gets in before the slot is even given back.
    held.record(BASE, true);
    assert!(waiter.await.unwrap());
    assert_eq!(bulkhead.metrics().max_concurrent, 2);
}

#[test]
fn an_adaptive_limit_out_of_its_bounds_is_a_config_error() {
    for (min, initial, max) in [(0, 5, 10), (6, 5, 10), (1, 5, 4), (1, 5, (1 << 20) + 1)] {
        let config = BulkheadConfig::adaptive(min, initial, max, LimitAlgorithm::Vegas);
        assert!(
            Bulkhead::new("adaptive", config).is_err(),
            "{min} ≤ {initial} ≤ {max}"
        );
    }
    let slow_call_zero = BulkheadConfig::adaptive(1, 5, 10, LimitAlgorithm::aimd(Duration::ZERO));
    let error = Bulkhead::new("adaptive", slow_call_zero).unwrap_err();
    assert_eq!(error.field(), "slow_call");
    let no_backoff = LimitAlgorithm::Aimd {
        slow_call: BASE,
        backoff_percent: 100,
    };
    let error =
        Bulkhead::new("adaptive", BulkheadConfig::adaptive(1, 5, 10, no_backoff)).unwrap_err();
    assert_eq!(error.field(), "backoff_percent");
}

mod file {
    use super::*;
    use resilient::Registry;
    use resilient::config::FileConfig;

    const VEGAS: &str = "[bulkheads.search]\nmax_concurrent = 5\nadaptive = \"vegas\"\nmin_limit = 2\nmax_limit = 200\n";

    #[test]
    fn a_file_declares_an_adaptive_bulkhead_of_either_algorithm() {
        let file = FileConfig::from_toml(VEGAS).unwrap();
        assert_eq!(
            file.bulkhead("search"),
            Some(&BulkheadConfig::adaptive(2, 5, 200, LimitAlgorithm::Vegas))
        );
        let aimd = "[bulkheads.db]\nmax_concurrent = 10\nadaptive = \"aimd\"\nmax_limit = 50\nslow_call = \"300ms\"\nbackoff_percent = 80\n";
        let expected = LimitAlgorithm::Aimd {
            slow_call: Duration::from_millis(300),
            backoff_percent: 80,
        };
        assert_eq!(
            FileConfig::from_toml(aimd).unwrap().bulkhead("db"),
            Some(&BulkheadConfig::adaptive(1, 10, 50, expected))
        );
    }

    #[test]
    fn adaptive_fields_out_of_place_name_the_field() {
        for (text, field) in [
            ("max_concurrent = 5\nmin_limit = 2\n", "min_limit"),
            ("adaptive = \"vegas\"\n", "max_limit"),
            ("adaptive = \"aimd\"\nmax_limit = 50\n", "slow_call"),
            (
                "adaptive = \"vegas\"\nmax_limit = 50\nslow_call = \"1s\"\n",
                "slow_call",
            ),
            (
                "max_concurrent = 5\nadaptive = \"vegas\"\nmax_limit = 4\n",
                "max",
            ),
            ("adaptive = \"cubic\"\nmax_limit = 50\n", "adaptive"),
        ] {
            let error = FileConfig::from_toml(&format!("[bulkheads.db]\n{text}")).expect_err(text);
            assert_eq!(error.field_name(), Some(field), "{text}: {error}");
        }
    }

    /// The snapshot reports the limit now; a reload that leaves the bulkhead as it is keeps
    /// what it learned, one that changes it starts again from the initial limit.
    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_a_learned_limit_unless_the_bulkhead_changes() {
        let registry = Registry::new();
        registry
            .reload(&FileConfig::from_toml(VEGAS).unwrap())
            .unwrap();
        let bulkhead = registry.get_bulkhead("search").unwrap();
        let mut in_flight = Vec::new();
        run(&bulkhead, &Dependency { knee: 20 }, &mut in_flight, 1_000).await;
        drop(in_flight);
        let learned = bulkhead.metrics().max_concurrent;
        assert!(learned > 10, "{learned}");
        let snapshot = registry.snapshot();
        assert_eq!(snapshot.bulkheads[0].max_concurrent, learned);

        let report = registry
            .reload(&FileConfig::from_toml(VEGAS).unwrap())
            .unwrap();
        assert!(report.changes.is_empty(), "{report:?}");
        assert_eq!(bulkhead.metrics().max_concurrent, learned);

        let changed = VEGAS.replace("max_limit = 200", "max_limit = 100");
        let report = registry
            .reload(&FileConfig::from_toml(&changed).unwrap())
            .unwrap();
        assert_eq!(report.changes[0].fields, ["adaptive"]);
        assert_eq!(bulkhead.metrics().max_concurrent, 5);
    }
}

/// The driver reports every attempt to the bulkhead it ran under: failures and attempt
/// timeouts bring an adaptive limit down, through `Policy::call` and the attribute alike.
mod through_the_driver {
    use std::sync::Arc;

    use resilient::{BulkheadConfig, Policy, Registry, Rejection, resilient};

    use super::*;

    #[derive(Debug)]
    enum Error {
        Down,
        Rejected(Rejection),
    }

    impl From<Rejection> for Error {
        fn from(rejection: Rejection) -> Self {
            Error::Rejected(rejection)
        }
    }

    fn declare(registry: &Registry, name: &str) -> Bulkhead {
        registry
            .declare_bulkhead(
                name,
                BulkheadConfig::adaptive(2, 10, 50, LimitAlgorithm::Vegas),
            )
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn failed_and_timed_out_attempts_bring_the_limit_down() {
        let registry = Registry::new();
        let bulkhead = declare(&registry, "adaptive::policy");
        let policy = Policy::builder("adaptive::policy")
            .bulkhead("adaptive::policy")
            .timeout(BASE)
            .build_in(&registry)
            .unwrap();
        for _ in 0..30 {
            let failed: Result<(), Error> = policy.call(|| async { Err(Error::Down) }).await;
            assert!(matches!(failed, Err(Error::Down)));
        }
        let after_failures = bulkhead.metrics().max_concurrent;
        assert!(
            after_failures < 10,
            "failures cut the limit: {after_failures}"
        );
        for _ in 0..60 {
            let slow: Result<(), Error> = policy
                .call(|| async {
                    tokio::time::sleep(BASE * 2).await;
                    Ok(())
                })
                .await;
            assert!(matches!(slow, Err(Error::Rejected(r)) if r.is_timeout()));
        }
        assert_eq!(
            bulkhead.metrics().max_concurrent,
            2,
            "attempt timeouts take it to its minimum"
        );
    }

    #[resilient(name = "adaptive::attribute", bulkhead = "adaptive::attribute")]
    async fn failing() -> Result<(), Error> {
        Err(Error::Down)
    }

    #[tokio::test(start_paused = true)]
    async fn an_annotated_functions_failures_bring_the_limit_down() {
        let registry = Arc::new(Registry::new());
        let bulkhead = declare(&registry, "adaptive::attribute");
        for _ in 0..30 {
            assert!(registry.scope(failing()).await.is_err());
        }
        let limit = bulkhead.metrics().max_concurrent;
        assert!(limit < 10, "failures cut the limit: {limit}");
    }
}
