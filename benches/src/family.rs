//! Group 11 (issue 10, item 5): what per-key breakers cost when the keys come from request
//! data. A million distinct keys go through a family with the default key limit: what stays
//! allocated must be the limit's worth of breakers, not the million's.

use std::hint::black_box;
use std::time::Instant;

use resilient::BreakerConfig;
use resilient::family::{BreakerFamily, DEFAULT_MAX_KEYS, FamilyConfig};

use crate::alloc::{allocations, measure};
use crate::report::{Group, Unit};

const MILLION: u64 = 1_000_000;

fn new_family() -> BreakerFamily {
    BreakerFamily::new("upstream", FamilyConfig::new(BreakerConfig::default()))
        .expect("the default configuration is valid")
}

/// Group 11: heap bytes per key, and what a million distinct keys leave behind.
pub fn memory() -> Group {
    let mut out = Group::new(
        11,
        "Per-key breakers: heap bytes of keys from request data",
        Unit::Bytes,
    );
    let limit = DEFAULT_MAX_KEYS as u64;

    let family = new_family();
    let started = Instant::now();
    let ((), bytes) = measure(|| {
        for key in 0..limit {
            family.breaker(&key).expect("under the limit");
        }
    });
    let unbounded = started.elapsed();
    out.push(
        "per_key",
        format!("per key, `family.breaker(&key)` with the default breaker configuration (mean of {limit})"),
        bytes as f64 / limit as f64,
    );

    let started = Instant::now();
    let ((), calls) = allocations(|| {
        for _ in 0..MILLION {
            black_box(family.breaker(&7_u64).expect("held"));
        }
    });
    let lookup = started.elapsed();
    out.push(
        "lookup_allocations",
        "allocations made by 1 000 000 lookups of a held key (a count, not bytes)",
        calls as f64,
    );
    drop(family);

    let family = new_family();
    let started = Instant::now();
    let ((), bytes) = measure(|| {
        for key in 0..MILLION {
            family.breaker(&key).expect("closed keys make room");
        }
    });
    let elapsed = started.elapsed();
    let held = family.len();
    assert!(
        held <= DEFAULT_MAX_KEYS,
        "a million keys stay within the limit"
    );
    out.push(
        "distinct_1m",
        format!("retained after 1 000 000 distinct keys at the default limit of {limit} (total)"),
        bytes as f64,
    );
    out.push(
        "distinct_1m_per_held_key",
        "the same, per key held at the end",
        bytes as f64 / held as f64,
    );
    out.notes.push(format!(
        "Bytes requested from the allocator and still held, counted by the bench binary's global \
         allocator. The million keys took {:.0} ns each, evictions included ({} evicted, {held} \
         held at the end: a full family evicts 1/64 of its limit at once); the first {limit} \
         keys, under the limit, took {:.0} ns each: creating a breaker is most of the cost. \
         A lookup of a held key took {:.0} ns (one thread; hash, shard read lock, handle clone, \
         tokio clock read).",
        elapsed.as_nanos() as f64 / MILLION as f64,
        family.snapshot().evicted,
        unbounded.as_nanos() as f64 / limit as f64,
        lookup.as_nanos() as f64 / MILLION as f64,
    ));
    out
}
