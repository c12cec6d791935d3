//! Group 9 and 10 (issue 8, item 4): what names from request data cost a registry.
//!
//! Group 9 counts heap bytes: per accepted implicit entry, and what stays allocated after a
//! million names the implicit limit refused or a million names created and removed again
//! (both should be about zero). Group 10 times lookups, and the creation of new names, while
//! another thread takes snapshots of a registry of 100 000 breakers: a snapshot must not hold
//! the map's lock while it reads the breakers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use resilient::{CircuitBreaker, Policy, Registry};

use crate::alloc::{allocations, measure};
use crate::groups::window_100;
use crate::report::{Group, Unit};

/// Names per memory measurement of a million.
const MILLION: usize = 1_000_000;

/// Writes `prefix` and `i` into `name`, reusing its allocation, so the measurement counts the
/// registry's bytes, not the names'.
fn set_name(name: &mut String, prefix: &str, i: usize) {
    name.clear();
    let _ = write!(name, "{prefix}{i:07}");
}

/// Group 9: heap bytes of implicit entries, and what refused and removed names leave behind.
pub fn memory() -> Group {
    let mut out = Group::new(
        9,
        "Registry: heap bytes of names from request data",
        Unit::Bytes,
    );
    let mut name = String::with_capacity(32);
    let limit = resilient::DEFAULT_IMPLICIT_LIMIT;

    let registry = Registry::new();
    let ((), bytes) = measure(|| {
        for i in 0..limit {
            set_name(&mut name, "user-", i);
            registry.breaker(&name).expect("under the limit");
        }
    });
    out.push(
        "implicit_breaker",
        format!("per implicit breaker, `registry.breaker(name)` (mean of {limit})"),
        bytes as f64 / limit as f64,
    );

    // Callers look names up on every request: that must not allocate (no `String` per call).
    let ((), calls) = allocations(|| {
        for _ in 0..MILLION {
            black_box(registry.breaker("user-0000007").expect("there"));
        }
    });
    out.push(
        "lookup_allocations",
        "allocations made by 1 000 000 lookups of an existing name (a count, not bytes)",
        calls as f64,
    );

    // The registry is full now; one refusal first, so what is set up once (tracing's callsite
    // registration) is not counted as retained by the million.
    set_name(&mut name, "attacker-", 0);
    assert!(registry.breaker(&name).is_err());
    let (refused, bytes) = measure(|| {
        let mut refused = 0;
        for i in 1..=MILLION {
            set_name(&mut name, "attacker-", i);
            refused += usize::from(registry.breaker(&name).is_err());
        }
        refused
    });
    assert_eq!(refused, MILLION, "every new name past the limit is refused");
    out.push(
        "refused_1m",
        "retained after 1 000 000 names refused at the limit (total)",
        bytes as f64,
    );
    drop(registry);

    let registry = Registry::new();
    let ((), bytes) = measure(|| {
        for i in 0..limit {
            set_name(&mut name, "user-", i);
            registry.bulkhead(&name).expect("under the limit");
        }
    });
    out.push(
        "implicit_bulkhead",
        format!("per implicit bulkhead, `registry.bulkhead(name)` (mean of {limit})"),
        bytes as f64 / limit as f64,
    );
    drop(registry);

    let registry = Registry::new();
    let mut policies = Vec::with_capacity(limit);
    let ((), bytes) = measure(|| {
        for i in 0..limit {
            set_name(&mut name, "user-", i);
            let policy = Policy::builder(name.as_str())
                .breaker(name.as_str())
                .build_in(&registry)
                .expect("under the limit");
            policies.push(policy);
        }
    });
    out.push(
        "implicit_policy",
        format!("per `Policy` naming a new breaker (mean of {limit}; call-site counters included)"),
        bytes as f64 / limit as f64,
    );
    drop(policies);
    drop(registry);

    let registry = Registry::new();
    set_name(&mut name, "evicted-", 0);
    registry.breaker(&name).expect("an empty registry");
    assert!(registry.remove_breaker(&name));
    let ((), bytes) = measure(|| {
        for i in 1..=MILLION {
            set_name(&mut name, "evicted-", i);
            registry.breaker(&name).expect("under the limit");
            assert!(registry.remove_breaker(&name));
        }
    });
    out.push(
        "evicted_1m",
        "retained after 1 000 000 names created then removed (total)",
        bytes as f64,
    );

    out.notes.push(
        "Bytes requested from the allocator and still held (allocated − freed) by the registry, \
         counted by the bench binary's global allocator; the names are written into one reused \
         buffer, so only the registry's own bytes count. The default implicit limit (1 000) is in \
         force: the refused million comes after 1 000 accepted names."
            .to_owned(),
    );
    out
}

/// Latencies in power-of-two buckets of nanoseconds, with the exact maximum and how many took
/// a millisecond or more.
struct Histogram {
    buckets: [u64; 64],
    count: u64,
    max: Duration,
    over_1ms: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: [0; 64],
            count: 0,
            max: Duration::ZERO,
            over_1ms: 0,
        }
    }

    fn record(&mut self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.buckets[63 - nanos.leading_zeros() as usize] += 1;
        self.count += 1;
        self.max = self.max.max(took);
        self.over_1ms += u64::from(took >= Duration::from_millis(1));
    }

    /// The upper bound of the bucket holding quantile `q`, in nanoseconds.
    fn quantile(&self, q: f64) -> f64 {
        let rank = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (bit, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (1u64 << (bit + 1)) as f64;
            }
        }
        self.max.as_nanos() as f64
    }
}

/// What the callers saw while one thread ran `busy` `rounds` times.
struct Phase {
    busy: Vec<Duration>,
    lookups: Histogram,
    creations: Histogram,
}

/// Runs `busy` `rounds` times on one thread while a second looks `existing` up in a loop and a
/// third creates and removes new names in a loop (new names need the write lock, and a writer
/// waiting makes later readers wait too: the scenario where a snapshot holding the map's lock
/// stalls every caller).
fn phase(registry: &Registry, existing: &str, rounds: usize, busy: impl Fn() + Sync) -> Phase {
    let running = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let started = Instant::now();
                busy();
                times.push(started.elapsed());
            }
            running.store(false, Ordering::Release);
            times
        });
        let creator = scope.spawn(|| {
            let mut creations = Histogram::new();
            let mut name = String::with_capacity(32);
            let mut i = 0;
            while running.load(Ordering::Acquire) {
                set_name(&mut name, "burst-", i);
                let started = Instant::now();
                registry.breaker(&name).expect("under the limit");
                creations.record(started.elapsed());
                registry.remove_breaker(&name);
                i += 1;
            }
            creations
        });
        let mut lookups = Histogram::new();
        while running.load(Ordering::Acquire) {
            let started = Instant::now();
            black_box(registry.breaker(existing).expect("declared"));
            lookups.record(started.elapsed());
        }
        let busy = worker.join().expect("the busy thread");
        Phase {
            busy,
            lookups,
            creations: creator.join().expect("the creating thread"),
        }
    })
}

/// How many shards a registry splits each map into (`resilient/src/registry/table.rs`).
const REGISTRY_SHARDS: usize = 64;

/// How long a snapshot holds a lock: the copy of the handles it guards (an `Arc` increment per
/// handle, each in a different allocation), timed here on the registry's own handles in a map
/// of the same shape, without the scheduler noise of group 10's callers. Returns the longest
/// of 21 copies of all `breakers` handles and of one shard's share of them.
fn lock_hold(registry: &Registry, breakers: usize) -> (Duration, Duration) {
    let map: HashMap<Arc<str>, CircuitBreaker> = (0..breakers)
        .map(|i| {
            let breaker = registry
                .get_breaker(&format!("dep-{i:06}"))
                .expect("declared");
            (Arc::from(breaker.name()), breaker)
        })
        .collect();
    let shard: HashMap<Arc<str>, CircuitBreaker> = map
        .iter()
        .take(breakers / REGISTRY_SHARDS)
        .map(|(name, breaker)| (name.clone(), breaker.clone()))
        .collect();
    let longest = |map: &HashMap<Arc<str>, CircuitBreaker>| {
        (0..21)
            .map(|_| {
                let started = Instant::now();
                let handles: Vec<CircuitBreaker> = map.values().cloned().collect();
                let took = started.elapsed();
                black_box(handles);
                took
            })
            .max()
            .expect("21 runs")
    };
    (longest(&map), longest(&shard))
}

/// Group 10: lookups and creations while snapshots of `breakers` breakers run back to back,
/// and, for comparison, while the same thread only burns as much processor time (the control
/// shows what the scheduler alone costs on a machine with fewer cores than threads).
pub fn snapshot_latency(breakers: usize, snapshots: usize) -> Group {
    let registry = Registry::new();
    for i in 0..breakers {
        registry
            .declare_breaker(&format!("dep-{i:06}"), window_100())
            .expect("a valid configuration");
    }
    let existing = format!("dep-{:06}", breakers / 2);
    let (copy_all, copy_shard) = lock_hold(&registry, breakers);

    let during = phase(&registry, &existing, snapshots, || {
        black_box(registry.snapshot().breakers.len());
    });
    let mut times = during.busy.clone();
    times.sort_unstable();
    let median = times[times.len() / 2];
    // The control: the same three threads, the first spinning as long as a snapshot takes
    // without touching the registry, so what the machine's scheduler costs shows apart.
    let control = phase(&registry, &existing, snapshots, || {
        let started = Instant::now();
        while started.elapsed() < median {
            black_box(0u64);
        }
    });

    let mut out = Group::new(
        10,
        format!("Registry: callers while snapshots of {breakers} breakers run"),
        Unit::Nanos,
    );
    out.push(
        "snapshot",
        format!("one `registry.snapshot()` of {breakers} breakers (median of {snapshots})"),
        median.as_nanos() as f64,
    );
    out.push(
        "copy_all",
        format!("copy of {breakers} handles: what one map lock would be held for (longest of 21)"),
        copy_all.as_nanos() as f64,
    );
    out.push(
        "copy_shard",
        format!(
            "copy of one shard's {} handles: the registry's longest lock hold in a snapshot \
             (longest of 21)",
            breakers / REGISTRY_SHARDS
        ),
        copy_shard.as_nanos() as f64,
    );
    let rows = [
        (
            "lookup",
            "lookup of an existing name",
            &during.lookups,
            &control.lookups,
        ),
        (
            "create",
            "creation of a new name",
            &during.creations,
            &control.creations,
        ),
    ];
    for (id, what, during, control) in rows {
        out.push(
            &format!("{id}_p999"),
            format!("{what} during snapshots, p99.9 (bucket bound)"),
            during.quantile(0.999),
        );
        out.push(
            &format!("{id}_max"),
            format!("{what} during snapshots, the longest"),
            during.max.as_nanos() as f64,
        );
        out.push(
            &format!("{id}_control_max"),
            format!("{what}, control (no snapshot), the longest"),
            control.max.as_nanos() as f64,
        );
        out.notes.push(format!(
            "{what}: {} calls during snapshots, {} of them ≥ 1 ms; {} calls in the control, {} \
             of them ≥ 1 ms.",
            during.count, during.over_1ms, control.count, control.over_1ms
        ));
    }
    out.notes.push(format!(
        "Three threads: one takes {snapshots} snapshots back to back (control: spins as long \
         without touching the registry), one looks up an existing name in a loop, one creates \
         and removes new names in a loop; the last two time each call. Quantiles are the upper \
         bounds of power-of-two buckets; the longest is exact and includes any time the thread \
         was descheduled, which the control measures."
    ));
    out
}
