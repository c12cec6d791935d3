//! The measurements of each group. Every peer is set up to judge the same thing as ours where
//! it can: a failure rate of 50 % over the last 100 calls.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use failsafe::CircuitBreaker as _;
use resilient::{BreakerConfig, CircuitBreaker, Policy, Registry, Rejection};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::report::{Group, Unit, criterion_median};

/// An open breaker stays open this long: far longer than any benchmark.
const HOUR: Duration = Duration::from_secs(3600);

/// The error type of the benchmarked calls; absorbs our rejections like a user's error would.
#[derive(Debug)]
pub enum CallError {
    /// The dependency failed.
    Down,
    /// `resilient` refused the call.
    Rejected(Rejection),
}

impl From<Rejection> for CallError {
    fn from(rejection: Rejection) -> Self {
        CallError::Rejected(rejection)
    }
}

/// What every fallback in these benchmarks serves.
pub fn fallback_value(_error: CallError) -> u64 {
    0
}

/// The runtime the async entries run on: one thread, as the issue asks.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

/// Runs one async benchmark: `iters` awaited calls inside a single `block_on`, so the cost of
/// entering the runtime is not in the figure.
macro_rules! bench_async {
    ($group:expr, $rt:expr, $id:expr, |$i:ident| $call:expr) => {
        $group.bench_function($id, |b| {
            b.iter_custom(|iters| {
                $rt.block_on(async {
                    let start = Instant::now();
                    for $i in 0..iters {
                        let _ = black_box($call);
                    }
                    start.elapsed()
                })
            })
        });
    };
}

/// Reads back what criterion measured for the entries of a finished group.
pub fn collect(dir: &Path, key: &str, group: &mut Group, entries: &[(&str, &str)]) {
    for (id, label) in entries {
        match criterion_median(dir, key, id) {
            Some(median) => group.push(id, *label, median),
            None => eprintln!("no criterion estimate for {key}/{id}: left out of the summary"),
        }
    }
}

fn criterion_group<'a>(c: &'a mut Criterion, key: &str) -> BenchmarkGroup<'a, WallTime> {
    c.benchmark_group(key)
}

/// The configuration every closed-state entry uses: failure rate ≥ 50 % over the last 100
/// calls (our default).
pub fn window_100() -> BreakerConfig {
    BreakerConfig::default()
}

/// An open breaker of ours, and the registry holding it.
pub fn open_breaker(registry: &Registry, name: &str) -> CircuitBreaker {
    let config = BreakerConfig::consecutive_failures(1)
        .with_open_wait(HOUR)
        .with_open_wait_growth(1.0, HOUR);
    let breaker = registry
        .declare_breaker(name, config)
        .expect("a valid configuration");
    // A repeated run (`RESILIENT_BENCH_RUNS`) finds the breaker it opened before still open.
    if breaker.state() != resilient::BreakerState::Open {
        breaker
            .try_acquire()
            .expect("a new breaker is closed")
            .record_failure();
    }
    assert_eq!(breaker.state(), resilient::BreakerState::Open);
    breaker
}

/// A `tower` retry policy: up to the given number of further attempts on error.
#[derive(Clone, Copy)]
pub struct Attempts(pub usize);

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// A ready dependency as a tower service.
pub async fn echo(x: u64) -> Result<u64, Infallible> {
    Ok(x)
}

/// tower-resilience's circuit breaker over a ready service, failure rate 50 % over 100 calls.
pub fn tower_resilience_breaker() -> impl Service<
    u64,
    Response = u64,
    Error = tower_resilience::circuitbreaker::CircuitBreakerError<Infallible>,
    Future: Send,
> + Clone {
    let layer = tower_resilience::circuitbreaker::circuit_breaker_builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .expect("a valid configuration");
    ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(echo))
}

/// Group 1: one closed-state success through each breaker, and one `fetch_add`.
pub fn closed(c: &mut Criterion, dir: &Path, rt: &Runtime) -> Group {
    const KEY: &str = "g1_closed";
    let mut group = criterion_group(c, KEY);

    let ours = CircuitBreaker::new("closed", window_100()).expect("a valid configuration");
    group.bench_function("resilient", |b| {
        b.iter(|| {
            // The permit's atomics are side effects: nothing here can be optimised away.
            ours.try_acquire().expect("closed").record_success();
        })
    });

    let recloser = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .build();
    group.bench_function("recloser", |b| {
        b.iter(|| recloser.call(|| Ok::<u64, ()>(black_box(1))))
    });

    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter(|| failsafe.call(|| Ok::<u64, ()>(black_box(1))))
    });

    let mut tower_resilience = tower_resilience_breaker();
    bench_async!(group, rt, "tower_resilience", |i| {
        tower_resilience.ready().await.expect("ready").call(i).await
    });

    let atomic = AtomicU64::new(0);
    group.bench_function("fetch_add", |b| {
        b.iter(|| black_box(&atomic).fetch_add(1, Ordering::Relaxed))
    });
    group.finish();

    let mut out = Group::new(1, "Breaker, closed state, success", Unit::Nanos);
    collect(
        dir,
        KEY,
        &mut out,
        &[
            ("resilient", "resilient: `try_acquire` + `record_success`"),
            ("recloser", "recloser 1.4: `call`"),
            ("failsafe", "failsafe 1.3: `call`"),
            (
                "tower_resilience",
                "tower-resilience 0.13 breaker: `ready` + `call` (async)",
            ),
            ("fetch_add", "floor: one uncontended `AtomicU64::fetch_add`"),
        ],
    );
    out.notes.push(
        "Each breaker judges a failure rate of 50 % over its last 100 calls (failsafe: its default \
         policy, success rate over a time window or consecutive failures). The async entry runs \
         on a current-thread runtime, `iters` calls per `block_on`."
            .to_owned(),
    );
    out
}

/// The full policy the attribute builds (timeout, 3 retries, breaker, bulkhead), programmatic.
pub fn full_policy(registry: &Registry, name: &str) -> Policy {
    Policy::builder(name)
        .timeout(Duration::from_secs(1))
        .retries(3)
        .breaker(name)
        .bulkhead(name)
        .build_in(registry)
        .expect("a valid policy")
}

/// Group 3 without the attribute: our full policy vs a tower stack doing the same job.
pub fn tower_stack(c: &mut Criterion, dir: &Path, rt: &Runtime, extra: &[(&str, &str)]) -> Group {
    const KEY: &str = "g3_tower";
    let mut group = criterion_group(c, KEY);
    let registry = Registry::new();

    let policy = full_policy(&registry, "g3_policy");
    bench_async!(group, rt, "resilient_policy", |i| {
        policy
            .call(|| async move { Ok::<u64, CallError>(i) })
            .await
            .unwrap_or_else(fallback_value)
    });

    // The tower stack of the same job: retry outside, then the concurrency limit, then the
    // attempt timeout; there is no breaker in tower.
    let mut stack = rt.block_on(async {
        ServiceBuilder::new()
            .retry(Attempts(3))
            .concurrency_limit(25)
            .timeout(Duration::from_secs(1))
            .service(tower::service_fn(echo))
    });
    bench_async!(group, rt, "tower_stack", |i| {
        stack
            .ready()
            .await
            .expect("ready")
            .call(i)
            .await
            .unwrap_or(0)
    });

    // The same policy as a tower layer over the bare service: the bulkhead slot is reserved in
    // `ready()`, the call runs the policy's attempts.
    let layered_policy = full_policy(&registry, "g3_layer");
    let mut layered = rt.block_on(async {
        ServiceBuilder::new()
            .layer(resilient::tower::PolicyLayer::new(layered_policy))
            .service(tower::service_fn(echo))
    });
    bench_async!(group, rt, "resilient_layer", |i| {
        layered
            .ready()
            .await
            .expect("ready")
            .call(i)
            .await
            .unwrap_or(0)
    });

    let mut breaker = tower_resilience_breaker();
    bench_async!(group, rt, "tower_resilience", |i| {
        breaker.ready().await.expect("ready").call(i).await
    });

    let mut bare = tower::service_fn(echo);
    bench_async!(group, rt, "service_fn", |i| {
        bare.ready().await.expect("ready").call(i).await
    });

    crate::groups::macro_entries::tower_group(&mut group, rt);
    group.finish();

    let mut out = Group::new(
        3,
        "Full policy (timeout, 3 retries, breaker, bulkhead, fallback) vs tower",
        Unit::Nanos,
    );
    let mut entries = extra.to_vec();
    entries.extend([
        (
            "resilient_policy",
            "resilient `Policy::call` + fallback (programmatic, same policy)",
        ),
        (
            "resilient_layer",
            "resilient `PolicyLayer` (same policy) over the bare `service_fn`",
        ),
        (
            "tower_stack",
            "tower 0.5 `ServiceBuilder`: retry(3) + concurrency_limit(25) + timeout(1 s)",
        ),
        ("tower_resilience", "tower-resilience 0.13 breaker alone"),
        ("service_fn", "floor: bare tower `service_fn`"),
    ]);
    collect(dir, KEY, &mut out, &entries);
    out.notes.push(
        "A ready call, on a current-thread runtime with the time driver; each entry awaits \
         `ready()` then `call()` (tower) or the whole policy (ours), `iters` calls per `block_on`."
            .to_owned(),
    );
    out
}

/// Group 4: the rejection of an open breaker.
pub fn open(c: &mut Criterion, dir: &Path, rt: &Runtime, extra: &[(&str, &str)]) -> Group {
    const KEY: &str = "g4_open";
    let mut group = criterion_group(c, KEY);
    let registry = Registry::new();

    let ours = open_breaker(&registry, "g4_open");
    group.bench_function("resilient", |b| {
        b.iter(|| black_box(ours.try_acquire()).is_err())
    });

    let policy = Policy::builder("g4_open")
        .breaker("g4_open")
        .build_in(&registry)
        .expect("a valid policy");
    bench_async!(group, rt, "resilient_policy_fallback", |i| {
        policy
            .call(|| async move { Ok::<u64, CallError>(i) })
            .await
            .unwrap_or_else(fallback_value)
    });

    crate::groups::macro_entries::open_group(&mut group, rt);

    let recloser = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(1)
        .open_wait(HOUR)
        .build();
    // recloser decides nothing until its ring is full: with a ring of one, the first failure
    // fills it and only the second trips the breaker.
    for _ in 0..2 {
        let _ = recloser.call(|| Err::<u64, ()>(()));
    }
    assert!(
        matches!(
            recloser.call(|| Ok::<u64, ()>(1)),
            Err(recloser::Error::Rejected)
        ),
        "group 4 measures recloser's rejection: its breaker must be open"
    );
    group.bench_function("recloser", |b| {
        b.iter(|| recloser.call(|| Ok::<u64, ()>(black_box(1))).is_err())
    });

    let failsafe = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(HOUR),
        ))
        .build();
    let _ = failsafe.call(|| Err::<u64, ()>(()));
    assert!(
        matches!(
            failsafe.call(|| Ok::<u64, ()>(1)),
            Err(failsafe::Error::Rejected)
        ),
        "group 4 measures failsafe's rejection: its breaker must be open"
    );
    group.bench_function("failsafe", |b| {
        b.iter(|| failsafe.call(|| Ok::<u64, ()>(black_box(1))).is_err())
    });

    group.bench_function("instant_now", |b| b.iter(Instant::now));
    group.finish();

    let mut out = Group::new(4, "Open breaker: rejection", Unit::Nanos);
    let mut entries = vec![
        (
            "resilient",
            "resilient: `try_acquire` → `Err(Rejection)`, no fallback",
        ),
        (
            "resilient_policy_fallback",
            "resilient `Policy::call` (breaker) + fallback (programmatic)",
        ),
    ];
    entries.extend_from_slice(extra);
    entries.extend([
        ("recloser", "recloser 1.4: `call` rejected"),
        ("failsafe", "failsafe 1.3: `call` rejected"),
        ("instant_now", "floor: one `Instant::now()`"),
    ]);
    collect(dir, KEY, &mut out, &entries);
    out
}

/// Group 5: one breaker shared by 1, 2 and all threads, closed success.
pub fn contention(run: Duration, reps: usize) -> Group {
    use crate::contention::calls_per_second;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2, cores];
    counts.sort_unstable();
    counts.dedup();

    let ours = CircuitBreaker::new("contention", window_100()).expect("a valid configuration");
    let recloser = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .build();
    let shared = AtomicU64::new(0);

    let mut out = Group::new(
        5,
        format!("Contention: one breaker, closed success ({cores} hardware threads)"),
        Unit::PerSecond,
    );
    let mut rates = Vec::new();
    for &threads in &counts {
        let rate = calls_per_second(threads, run, reps, &|| {
            // The permit's atomics are side effects: nothing here can be optimised away.
            ours.try_acquire().expect("closed").record_success();
        });
        out.push(
            &format!("resilient_{threads}"),
            format!("resilient, {threads} thread(s)"),
            rate,
        );
        rates.push(("resilient", threads, rate));
    }
    for &threads in &counts {
        let rate = calls_per_second(threads, run, reps, &|| {
            let _ = black_box(recloser.call(|| Ok::<u64, ()>(black_box(1))));
        });
        out.push(
            &format!("recloser_{threads}"),
            format!("recloser 1.4, {threads} thread(s)"),
            rate,
        );
        rates.push(("recloser", threads, rate));
    }
    for &threads in &counts {
        let rate = calls_per_second(threads, run, reps, &|| {
            black_box(&shared).fetch_add(1, Ordering::Relaxed);
        });
        out.push(
            &format!("fetch_add_{threads}"),
            format!("one shared `AtomicU64::fetch_add`, {threads} thread(s)"),
            rate,
        );
        rates.push(("fetch_add", threads, rate));
    }
    let mut scaling = String::from("Scaling (calls per second ÷ the same entry on one thread):");
    for name in ["resilient", "recloser", "fetch_add"] {
        let one = rates
            .iter()
            .find(|(n, t, _)| *n == name && *t == 1)
            .map(|r| r.2);
        for (_, threads, rate) in rates.iter().filter(|(n, t, _)| *n == name && *t > 1) {
            if let Some(one) = one {
                scaling.push_str(&format!(" {name} {threads} threads {:.2}×;", rate / one));
            }
        }
    }
    out.notes.push(scaling);
    out.notes.push(format!(
        "Each figure is the median of {reps} runs of {} ms, all threads started together.",
        run.as_millis()
    ));
    out
}

/// Group 6: heap bytes per breaker (requested bytes, as the counting allocator sees them).
pub fn memory() -> Group {
    use crate::alloc::{measure, resident_bytes};

    let mut out = Group::new(6, "Memory per breaker (count window of 100)", Unit::Bytes);

    let (one, bytes) = measure(|| CircuitBreaker::new("dependency-000000", window_100()));
    out.push(
        "resilient_one",
        "resilient: one `CircuitBreaker::new`",
        bytes as f64,
    );
    drop(one);

    // Declared in a registry: the name, the map's slot and the breaker, averaged over many so
    // the map's growth is spread as it is in a real registry.
    let declare = |registry: &Registry, count: usize| {
        for i in 0..count {
            registry
                .declare_breaker(&format!("dependency-{i:06}"), window_100())
                .expect("a valid configuration");
        }
    };
    let registry = Registry::new();
    let ((), bytes) = measure(|| declare(&registry, 1_000));
    out.push(
        "resilient_declared",
        "resilient: per breaker declared in a registry (mean of 1 000)",
        bytes as f64 / 1_000.0,
    );
    drop(registry);

    let rss_before = resident_bytes();
    let registry = Registry::new();
    let ((), bytes) = measure(|| declare(&registry, 100_000));
    let rss_after = resident_bytes();
    out.push(
        "resilient_100k",
        "resilient: 100 000 named breakers in a registry",
        bytes as f64,
    );
    out.push(
        "resilient_100k_each",
        "resilient: … per breaker",
        bytes as f64 / 100_000.0,
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        out.notes.push(format!(
            "Resident set size grew by {} while the 100 000 breakers were declared (the \
             allocator's own overhead included).",
            Unit::Bytes.format(after.saturating_sub(before) as f64)
        ));
    }
    drop(registry);

    let (recloser, bytes) = measure(|| {
        recloser::Recloser::custom()
            .error_rate(0.5)
            .closed_len(100)
            .build()
    });
    out.push(
        "recloser_one",
        "recloser 1.4: one breaker, ring of 100",
        bytes as f64,
    );
    drop(recloser);

    let (failsafe, bytes) = measure(|| failsafe::Config::new().build());
    out.push(
        "failsafe_one",
        "failsafe 1.3: one breaker, default policy",
        bytes as f64,
    );
    drop(failsafe);

    let (tower_resilience, bytes) = measure(tower_resilience_breaker);
    out.push(
        "tower_resilience_one",
        "tower-resilience 0.13: one breaker service, window of 100",
        bytes as f64,
    );
    drop(tower_resilience);

    out.notes.push(
        "Bytes requested from the allocator and still held (allocated − freed), counted by a \
         global allocator in the bench binary; the allocator's own bookkeeping is not included."
            .to_owned(),
    );
    out
}

pub mod macro_entries;
mod tracing_cost;

pub use tracing_cost::tracing_cost;
