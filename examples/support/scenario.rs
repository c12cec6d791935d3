//! The checkout scenario that `examples/checkout.rs` and `examples/prometheus.rs` both run: a
//! feature store that is healthy, then fails hard, then turns slow, then recovers, and a
//! checkout service that prices carts through it behind `#[resilient]`.
//!
//! Both examples include this file with `#[path]`, so the scenario is written once. Everything
//! here that one example reaches is reached by the other too (directly or through
//! [`Scenario::run_phase`]), so neither build warns about dead code.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient::{
    BreakerConfig, BulkheadConfig, ConfigError, Event, Rejection, SlidingWindow, registry,
};
use tokio::time::Instant;

/// One checkout request every this often (200 requests per second).
const REQUEST_EVERY: Duration = Duration::from_millis(5);

/// A price in cents.
#[derive(Debug, Clone, Copy)]
struct Price {
    #[allow(dead_code)] // read by nobody: the scenario counts answers, not prices
    cents: u64,
}

impl Price {
    fn fresh(cents: u64) -> Self {
        Price { cents }
    }
}

#[derive(Debug, thiserror::Error)]
enum PricingError {
    #[error("feature store unavailable")]
    Unavailable,
    #[error("never priced, and the feature store cannot answer")]
    NeverPriced,
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

/// One step of the fault schedule.
pub struct Phase {
    pub name: &'static str,
    health: Health,
    what: &'static str,
}

/// The fault schedule: healthy, down, slow, recovered.
pub const SCHEDULE: [Phase; 4] = [
    Phase {
        name: "healthy",
        health: Health::Healthy,
        what: "the store answers in ~4 ms",
    },
    Phase {
        name: "outage",
        health: Health::Down,
        what: "every call fails",
    },
    Phase {
        name: "slow",
        health: Health::Slow,
        what: "calls take 400 ms, past the 100 ms timeout",
    },
    Phase {
        name: "recovered",
        health: Health::Healthy,
        what: "the store is back",
    },
];

/// An in-process stand-in for a remote feature store, following a scripted fault schedule.
struct FeatureStore {
    health: AtomicU8,
    calls: AtomicU64,
    /// The idempotency keys it has seen: a retry sends its call's key again, so a store that
    /// applies writes could apply each call's once.
    keys: Mutex<HashSet<String>>,
    /// Requests that came with a key seen before: retries of one call.
    repeated_keys: AtomicU64,
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

    /// Prices `sku` for the call whose idempotency key is `key`, giving up when the caller's
    /// `remaining` time runs out (as a database honours a statement timeout).
    async fn fetch_price(
        &self,
        sku: &str,
        key: &str,
        remaining: Option<Duration>,
    ) -> Result<Price, PricingError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.keys.lock().expect("keys lock").insert(key.to_owned()) {
            self.repeated_keys.fetch_add(1, Ordering::Relaxed);
        }
        let answer = self.answer(sku);
        match remaining {
            Some(remaining) => tokio::time::timeout(remaining, answer)
                .await
                .unwrap_or(Err(PricingError::Unavailable)),
            None => answer.await,
        }
    }

    async fn answer(&self, sku: &str) -> Result<Price, PricingError> {
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
}

impl Checkout {
    /// Prices one item: 100 ms per attempt, two retries with backoff, the `feature_store`
    /// breaker and bulkhead; when all that fails, the last price seen in the past minute
    /// (`cache`), and only then the fallback.
    #[resilient::resilient(
        timeout = "100ms",
        total_timeout = "500ms",
        retries = 2,
        backoff = "20ms",
        breaker = "feature_store",
        bulkhead = "feature_store",
        name = "checkout::price",
        cache = "1m",
        fallback = Checkout::never_priced
    )]
    async fn price(&self, sku: &str) -> Result<Price, PricingError> {
        // The attempt's context: its call's idempotency key (the same on every retry) and the
        // time left before the total timeout, both passed on to the store.
        let context = resilient::context().expect("an attempt has a context");
        self.store
            .fetch_price(sku, context.idempotency_key().as_str(), context.remaining())
            .await
    }

    /// The fallback, for an item the cache has no fresh price of.
    fn never_priced(&self, sku: &str, error: PricingError) -> Result<Price, PricingError> {
        let _ = (sku, error);
        Err(PricingError::NeverPriced)
    }
}

/// What one phase's requests saw.
#[derive(Default)]
struct PhaseStats {
    latencies: Vec<Duration>,
    fresh: u64,
    cached: u64,
    /// The age of the oldest cached price served.
    oldest_cached: Duration,
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

/// One finished phase, for the summary table.
pub struct PhaseReport {
    phase: &'static str,
    stats: PhaseStats,
    store_calls: u64,
    retries: u64,
    /// Store requests that repeated a call's idempotency key (its retries).
    repeated_keys: u64,
}

/// The running scenario: the store, the service in front of it, and the clock the timeline
/// is printed against.
pub struct Scenario {
    store: Arc<FeatureStore>,
    checkout: Arc<Checkout>,
    started: Instant,
    phase: Duration,
}

impl Scenario {
    /// Declares the `feature_store` breaker and bulkhead, prints breaker transitions as they
    /// happen, and prints the scenario's header. Each phase lasts `phase`.
    pub fn start(phase: Duration) -> Result<Self, ConfigError> {
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
                    started.elapsed().as_secs_f64()
                );
            }
        });

        let store = Arc::new(FeatureStore {
            health: AtomicU8::new(Health::Healthy as u8),
            calls: AtomicU64::new(0),
            keys: Mutex::new(HashSet::new()),
            repeated_keys: AtomicU64::new(0),
        });
        let checkout = Arc::new(Checkout {
            store: store.clone(),
        });
        println!(
            "checkout: 200 requests/s over {} phases of {phase:?}; breaker `feature_store` opens at ≥ 50 % failures (or slow calls) over the last 20 calls\n",
            SCHEDULE.len()
        );
        Ok(Scenario {
            store,
            checkout,
            started,
            phase,
        })
    }

    /// Prints `line` on the timeline, stamped with the seconds since the scenario started.
    pub fn log(&self, line: impl Display) {
        println!("  {:>6.2}s  {line}", self.started.elapsed().as_secs_f64());
    }

    /// Puts the store into `phase`'s health, sends one request every [`REQUEST_EVERY`] for
    /// the phase's length, and waits for all of them.
    pub async fn run_phase(&self, phase: &Phase) -> PhaseReport {
        self.store.set(phase.health);
        let calls_before = self.store.calls.load(Ordering::Relaxed);
        let repeated_before = self.store.repeated_keys.load(Ordering::Relaxed);
        let retries_before = retries_so_far();
        self.log(format_args!("── phase `{}`: {}", phase.name, phase.what));

        let stats = Arc::new(Mutex::new(PhaseStats::default()));
        let mut requests = Vec::new();
        let mut ticker = tokio::time::interval(REQUEST_EVERY);
        let end = Instant::now() + self.phase;
        let mut sequence = 0_usize;
        while Instant::now() < end {
            ticker.tick().await;
            sequence += 1;
            let sku = ["espresso", "grinder", "kettle", "filter"][sequence % 4];
            let (checkout, stats) = (self.checkout.clone(), stats.clone());
            requests.push(tokio::spawn(async move {
                let begun = Instant::now();
                // `observe` says whether the answer came from the cache, and how old it was.
                let (result, stale) = resilient::cache::observe(checkout.price(sku)).await;
                let latency = begun.elapsed();
                let mut stats = stats.lock().expect("stats lock");
                stats.latencies.push(latency);
                match (result, stale) {
                    (Ok(_), Some(age)) => {
                        stats.cached += 1;
                        stats.oldest_cached = stats.oldest_cached.max(age);
                    }
                    (Ok(_), None) => stats.fresh += 1,
                    (Err(_), _) => stats.failed += 1,
                }
            }));
        }
        for request in requests {
            request.await.expect("request task");
        }
        let stats = Arc::try_unwrap(stats)
            .ok()
            .expect("all requests finished")
            .into_inner()
            .expect("stats lock");
        PhaseReport {
            phase: phase.name,
            stats,
            store_calls: self.store.calls.load(Ordering::Relaxed) - calls_before,
            retries: retries_so_far() - retries_before,
            repeated_keys: self.store.repeated_keys.load(Ordering::Relaxed) - repeated_before,
        }
    }
}

/// Prints the per-phase table and what it shows.
pub fn print_summary(reports: &[PhaseReport]) {
    println!(
        "\n{:<10} {:>8} {:>7} {:>7} {:>10} {:>6} {:>11} {:>8} {:>9} {:>9} {:>9}",
        "phase",
        "requests",
        "fresh",
        "cached",
        "oldest",
        "failed",
        "store calls",
        "retries",
        "same key",
        "p50",
        "p99"
    );
    for report in reports {
        let stats = &report.stats;
        println!(
            "{:<10} {:>8} {:>7} {:>7} {:>10} {:>6} {:>11} {:>8} {:>9} {:>9} {:>9}",
            report.phase,
            stats.latencies.len(),
            stats.fresh,
            stats.cached,
            format!("{:.1?}", stats.oldest_cached),
            stats.failed,
            report.store_calls,
            report.retries,
            report.repeated_keys,
            format!("{:.1?}", stats.percentile(0.5)),
            format!("{:.1?}", stats.percentile(0.99)),
        );
    }
    println!(
        "\nWhile the breaker was open, requests got the last good prices from the cache at once (`cached`, at most\n`oldest` old) instead of waiting on a dead store; every retry carried its call's idempotency key (`same key`)\nand its remaining time; after recovery, three half-open probes closed the breaker again."
    );
}

/// Retries the `checkout::price` call site made so far.
fn retries_so_far() -> u64 {
    registry()
        .call_site_metrics()
        .into_iter()
        .find(|site| &*site.name == "checkout::price")
        .map_or(0, |site| site.retries)
}
