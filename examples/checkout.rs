//! A checkout service prices carts through a feature store that is healthy, then fails hard,
//! then turns slow, then recovers. Watch the breaker fail fast while the store is down, serve
//! cached prices from the fallback, and recover through half-open probes without a stampede.
//!
//! ```sh
//! cargo run --example checkout
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient::{BreakerConfig, BulkheadConfig, Event, Rejection, SlidingWindow, registry};
use tokio::time::Instant;

/// How long each phase of the fault schedule lasts.
const PHASE: Duration = Duration::from_secs(3);
/// One checkout request every this often (200 requests per second).
const REQUEST_EVERY: Duration = Duration::from_millis(5);

/// A price in cents, and whether it came from the cache.
#[derive(Debug, Clone, Copy)]
struct Price {
    cents: u64,
    cached: bool,
}

impl Price {
    fn fresh(cents: u64) -> Self {
        Price {
            cents,
            cached: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PricingError {
    #[error("feature store unavailable")]
    Unavailable,
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

/// What the simulated feature store does right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy,
    Down,
    Slow,
}

/// An in-process stand-in for a remote feature store, following a scripted fault schedule.
struct FeatureStore {
    health: AtomicU8,
    calls: AtomicU64,
}

impl FeatureStore {
    fn set(&self, health: Health) {
        self.health.store(health as u8, Ordering::Relaxed);
    }

    fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            0 => Health::Healthy,
            1 => Health::Down,
            _ => Health::Slow,
        }
    }

    async fn fetch_price(&self, sku: &str) -> Result<Price, PricingError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.health() {
            Health::Healthy => {
                tokio::time::sleep(Duration::from_millis(4)).await;
                Ok(Price::fresh(1_000 + sku.len() as u64 * 100))
            }
            Health::Down => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Err(PricingError::Unavailable)
            }
            Health::Slow => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(Price::fresh(1_000 + sku.len() as u64 * 100))
            }
        }
    }
}

struct Checkout {
    store: Arc<FeatureStore>,
    /// Last known prices in cents, served when the store cannot answer.
    cache: Mutex<HashMap<String, u64>>,
}

impl Checkout {
    /// Prices one item: 100 ms per attempt, two retries with backoff, the `feature_store`
    /// breaker and bulkhead, and the cache as the fallback.
    #[resilient::resilient(
        timeout = "100ms",
        total_timeout = "500ms",
        retries = 2,
        backoff = "20ms",
        breaker = "feature_store",
        bulkhead = "feature_store",
        name = "checkout::price",
        fallback = Checkout::cached_price
    )]
    async fn price(&self, sku: &str) -> Result<Price, PricingError> {
        let price = self.store.fetch_price(sku).await?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(sku.to_owned(), price.cents);
        Ok(price)
    }

    /// The fallback: the last price seen, or the error if the item was never priced.
    fn cached_price(&self, sku: &str, error: PricingError) -> Result<Price, PricingError> {
        let cached = self.cache.lock().expect("cache lock").get(sku).copied();
        cached
            .map(|cents| Price {
                cents,
                cached: true,
            })
            .ok_or(error)
    }
}

/// What one phase's requests saw.
#[derive(Default)]
struct PhaseStats {
    latencies: Vec<Duration>,
    fresh: u64,
    cached: u64,
    failed: u64,
}

impl PhaseStats {
    fn percentile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    registry().declare_breaker(
        "feature_store",
        BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(20), 10)
            .with_slow_calls(Duration::from_millis(80), 0.5)
            .with_open_wait(Duration::from_millis(500))
            .with_open_wait_growth(2.0, Duration::from_secs(2))
            .with_half_open(3, 3),
    )?;
    registry().declare_bulkhead("feature_store", BulkheadConfig::new(32))?;

    let started = Instant::now();
    let clock = move || started.elapsed().as_secs_f64();
    registry().on_event(move |event| {
        if let Event::StateTransition {
            breaker,
            from,
            to,
            reason,
        } = event
        {
            println!(
                "  {:>6.2}s  breaker `{breaker}`: {from} → {to} ({reason})",
                clock()
            );
        }
    });

    let store = Arc::new(FeatureStore {
        health: AtomicU8::new(Health::Healthy as u8),
        calls: AtomicU64::new(0),
    });
    let checkout = Arc::new(Checkout {
        store: store.clone(),
        cache: Mutex::new(HashMap::new()),
    });

    let schedule = [
        ("healthy", Health::Healthy, "the store answers in ~4 ms"),
        ("outage", Health::Down, "every call fails"),
        (
            "slow",
            Health::Slow,
            "calls take 400 ms, past the 100 ms timeout",
        ),
        ("recovered", Health::Healthy, "the store is back"),
    ];
    println!(
        "checkout: 200 requests/s over 4 phases of {PHASE:?}; breaker `feature_store` opens at ≥ 50 % failures (or slow calls) over the last 20 calls\n"
    );
    let mut summary = Vec::new();
    for (phase, health, what) in schedule {
        store.set(health);
        let calls_before = store.calls.load(Ordering::Relaxed);
        let retries_before = retries_so_far();
        println!("  {:>6.2}s  ── phase `{phase}`: {what}", clock());
        let stats = run_phase(&checkout).await;
        summary.push((
            phase,
            stats,
            store.calls.load(Ordering::Relaxed) - calls_before,
            retries_so_far() - retries_before,
        ));
    }

    println!(
        "\n{:<10} {:>8} {:>7} {:>7} {:>6} {:>11} {:>8} {:>9} {:>9}",
        "phase", "requests", "fresh", "cached", "failed", "store calls", "retries", "p50", "p99"
    );
    for (phase, stats, store_calls, retries) in &summary {
        println!(
            "{:<10} {:>8} {:>7} {:>7} {:>6} {:>11} {:>8} {:>9} {:>9}",
            phase,
            stats.latencies.len(),
            stats.fresh,
            stats.cached,
            stats.failed,
            store_calls,
            retries,
            format!("{:.1?}", stats.percentile(0.5)),
            format!("{:.1?}", stats.percentile(0.99)),
        );
    }
    println!(
        "\nWhile the breaker was open, requests got cached prices at once instead of waiting on a dead store;\nafter recovery, three half-open probes closed it again."
    );
    Ok(())
}

/// Retries the `checkout::price` call site made so far.
fn retries_so_far() -> u64 {
    registry()
        .call_site_metrics()
        .into_iter()
        .find(|site| &*site.name == "checkout::price")
        .map_or(0, |site| site.retries)
}

/// Sends one request every [`REQUEST_EVERY`] for one [`PHASE`], and waits for all of them.
async fn run_phase(checkout: &Arc<Checkout>) -> PhaseStats {
    let stats = Arc::new(Mutex::new(PhaseStats::default()));
    let mut requests = Vec::new();
    let mut ticker = tokio::time::interval(REQUEST_EVERY);
    let end = Instant::now() + PHASE;
    let mut sequence = 0_usize;
    while Instant::now() < end {
        ticker.tick().await;
        sequence += 1;
        let sku = ["espresso", "grinder", "kettle", "filter"][sequence % 4];
        let (checkout, stats) = (checkout.clone(), stats.clone());
        requests.push(tokio::spawn(async move {
            let begun = Instant::now();
            let result = checkout.price(sku).await;
            let latency = begun.elapsed();
            let mut stats = stats.lock().expect("stats lock");
            stats.latencies.push(latency);
            match result {
                Ok(price) if price.cached => stats.cached += 1,
                Ok(_) => stats.fresh += 1,
                Err(_) => stats.failed += 1,
            }
        }));
    }
    for request in requests {
        request.await.expect("request task");
    }
    Arc::try_unwrap(stats)
        .ok()
        .expect("all requests finished")
        .into_inner()
        .expect("stats lock")
}
