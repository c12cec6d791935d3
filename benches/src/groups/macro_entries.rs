//! Entries that need the `#[resilient]` attribute. The attribute uses the process-wide
//! registry, so each breaker it names is declared there first with the configuration the
//! other entries use.

use super::*;
use resilient::{BulkheadConfig, registry, resilient};

/// The ready dependency, without the attribute.
async fn plain(x: u64) -> Result<u64, CallError> {
    Ok(x)
}

/// The same under a breaker only.
#[resilient(breaker = "g2_breaker")]
async fn with_breaker(x: u64) -> Result<u64, CallError> {
    Ok(x)
}

/// The same under the full attribute: timeout, 3 retries, breaker, bulkhead, fallback.
#[resilient(
    timeout = "1s",
    retries = 3,
    breaker = "g2_full",
    bulkhead = "g2_full",
    fallback = full_fallback
)]
async fn with_full(x: u64) -> Result<u64, CallError> {
    Ok(x)
}

/// The floor for `with_breaker`: the same call written by hand from the public pieces
/// (a permit, the await, the outcome), as issue 9 asks the attribute to approach.
async fn hand_written(breaker: &CircuitBreaker, x: u64) -> Result<u64, CallError> {
    let permit = breaker.try_acquire().map_err(CallError::Rejected)?;
    let result = plain(x).await;
    permit.record_result(&result);
    result
}

fn full_fallback(_x: u64, error: CallError) -> Result<u64, CallError> {
    Ok(fallback_value(error))
}

/// Under an open breaker, with a fallback.
#[resilient(breaker = "g4_attr_open", fallback = full_fallback)]
async fn rejected_with_fallback(x: u64) -> Result<u64, CallError> {
    Ok(x)
}

fn declare() {
    let registry = registry();
    for name in ["g2_breaker", "g2_full"] {
        registry
            .declare_breaker(name, window_100())
            .expect("a valid configuration");
    }
    registry
        .declare_bulkhead("g2_full", BulkheadConfig::new(25))
        .expect("a valid configuration");
}

/// The attribute's entries of group 3.
pub const TOWER_ENTRIES: &[(&str, &str)] = &[(
    "attr_full",
    "resilient `#[resilient(timeout, retries = 3, breaker, bulkhead, fallback)]`",
)];

/// The attribute's entries of group 4.
pub const OPEN_ENTRIES: &[(&str, &str)] = &[(
    "attr_fallback",
    "resilient `#[resilient(breaker, fallback)]`, breaker open",
)];

/// Adds the attribute's entries to group 3.
pub fn tower_group(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    declare();
    bench_async!(group, rt, "attr_full", |i| with_full(i).await);
}

/// Adds the attribute's entries to group 4.
pub fn open_group(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let _breaker = open_breaker(registry(), "g4_attr_open");
    bench_async!(group, rt, "attr_fallback", |i| rejected_with_fallback(i)
        .await);
}

/// Group 12: the size of each entry's future, what every caller that awaits it carries.
pub fn future_sizes() -> Group {
    declare();
    let hand = registry()
        .declare_breaker("g2_hand", window_100())
        .expect("a valid configuration");
    let mut out = Group::new(12, "Size of the annotated function's future", Unit::Bytes);
    let sizes = [
        (
            "plain",
            "plain `async fn`, no attribute",
            size_of_val(&plain(0)),
        ),
        (
            "hand_written",
            "by hand: `try_acquire`, await, `record_result`",
            size_of_val(&hand_written(&hand, 0)),
        ),
        (
            "attr_breaker",
            "`#[resilient(breaker = \"…\")]`",
            size_of_val(&with_breaker(0)),
        ),
        (
            "attr_full",
            "`#[resilient(timeout, retries = 3, breaker, bulkhead, fallback)]`",
            size_of_val(&with_full(0)),
        ),
    ];
    for (id, label, size) in sizes {
        out.push(id, label, size as f64);
    }
    out.notes
        .push("`size_of_val` of each future before its first poll, in a release build.".to_owned());
    out
}

/// Group 2: what the attribute adds to a ready async fn.
pub fn macro_group(c: &mut Criterion, dir: &Path, rt: &Runtime) -> Group {
    const KEY: &str = "g2_macro";
    declare();
    let mut group = c.benchmark_group(KEY);
    bench_async!(group, rt, "plain", |i| plain(i).await);
    bench_async!(group, rt, "attr_breaker", |i| with_breaker(i).await);
    let hand = registry()
        .declare_breaker("g2_hand", window_100())
        .expect("a valid configuration");
    bench_async!(group, rt, "hand_written", |i| hand_written(&hand, i).await);
    bench_async!(group, rt, "attr_full", |i| with_full(i).await);
    let atomic = AtomicU64::new(0);
    group.bench_function("fetch_add", |b| {
        b.iter(|| black_box(&atomic).fetch_add(1, Ordering::Relaxed))
    });
    group.finish();

    let mut out = Group::new(2, "The attribute on a ready async fn", Unit::Nanos);
    collect(
        dir,
        KEY,
        &mut out,
        &[
            ("plain", "plain `async fn`, no attribute"),
            ("attr_breaker", "`#[resilient(breaker = \"…\")]`"),
            (
                "hand_written",
                "floor for (b): the same by hand (`try_acquire`, await, `record_result`)",
            ),
            (
                "attr_full",
                "`#[resilient(timeout = \"1s\", retries = 3, breaker, bulkhead, fallback)]`",
            ),
            ("fetch_add", "floor: one uncontended `AtomicU64::fetch_add`"),
        ],
    );
    out.notes.push(
        "Awaited on a current-thread runtime with the time driver, `iters` calls per \
         `block_on`; the breakers judge 50 % over 100 calls, the bulkhead allows 25."
            .to_owned(),
    );
    out
}
