//! Configuration from a file, environment overrides, and a live reload that keeps state.
//!
//! ```sh
//! cargo run --example config
//! RESILIENT_BREAKER_PAYMENTS_OPEN_WAIT=2m cargo run --example config
//! ```
//!
//! Reads `examples/resilient.toml`, applies the `RESILIENT_*` variables of the environment,
//! declares everything in a registry, trips the `payments` breaker, then reloads a changed
//! configuration: the open breaker stays open and a closed breaker keeps its window. Runs on
//! tokio's paused clock, so the waits take no real time.

use std::time::Duration;

use resilient::config::FileConfig;
use resilient::event::Event;
use resilient::{BreakerState, Registry, Rejection};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/resilient.toml");

#[derive(Debug)]
enum PaymentError {
    Declined,
    Rejected(Rejection),
}

impl From<Rejection> for PaymentError {
    fn from(rejection: Rejection) -> Self {
        PaymentError::Rejected(rejection)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Read the file and the environment's overrides; a mistake stops here, named.
    let config = FileConfig::load(FILE)?;
    let registry = Registry::new();
    registry.on_event(|event| {
        if let Event::StateTransition { .. } | Event::OpenTooLong { .. } = event {
            println!("    event: {event}");
        }
    });
    registry.alert_when_open_longer_than(Duration::from_secs(120));
    let report = registry.reload(&config)?;
    println!("== declared from {FILE}");
    println!("   breakers: {}", report.breakers_created.join(", "));
    println!("   bulkheads: {}", report.bulkheads_created.join(", "));
    for (name, site) in config.call_sites() {
        println!(
            "   call site {name}: timeout {:?}, retries {:?}",
            site.timeout, site.retries
        );
    }

    // 2. Traffic: payments fails until its breaker opens (critical profile: 25 % of 10 calls).
    println!("== payments goes down");
    let payments = resilient::Policy::builder("checkout::charge")
        .breaker("payments")
        .build_in(&registry)?;
    for _ in 0..10 {
        let _: Result<(), PaymentError> = payments
            .call(|| async { Err(PaymentError::Declined) })
            .await;
    }
    let charge: Result<(), PaymentError> = payments.call(|| async { Ok(()) }).await;
    if let Err(PaymentError::Rejected(rejection)) = &charge {
        println!("   next charge: {rejection}");
    }

    // Meanwhile the feature store's window fills with a few failures, below its minimum.
    let feature_store = registry.breaker("feature_store")?;
    for outcome in [true, false, false, true, false] {
        let permit = feature_store.try_acquire()?;
        if outcome {
            permit.record_success();
        } else {
            permit.record_failure();
        }
    }

    // 3. An operator lowers thresholds and reloads, with no restart.
    println!("== reload with new thresholds");
    let text = std::fs::read_to_string(FILE)?
        .replace(
            "failure_rate_threshold = 0.25",
            "failure_rate_threshold = 0.2",
        )
        .replace(
            "[breakers.feature_store]\n",
            "[breakers.feature_store]\nfailure_rate_threshold = 0.4\n",
        );
    let changed = FileConfig::from_toml(&text)?.with_env(std::env::vars())?;
    let report = registry.reload(&changed)?;
    println!(
        "   reconfigured in place: {}",
        report.breakers_reconfigured.join(", ")
    );
    let breaker = registry.breaker("payments")?;
    println!("   payments is still {} (state kept)", breaker.state());
    assert_eq!(breaker.state(), BreakerState::Open);
    let window = feature_store.metrics();
    println!(
        "   feature_store kept its window: {} calls, failure rate {:.0}%",
        window.calls_in_window,
        window.failure_rate * 100.0
    );

    // 4. The outage drags on past two minutes: the periodic check raises the alert.
    tokio::time::advance(Duration::from_secs(150)).await;
    registry.check_alerts();

    // 5. A typo is caught, with the entry, the field and the place.
    println!("== a configuration with a typo");
    let typo = "[breakers.payments]\nfailure_rate_treshold = 0.3\n";
    if let Err(error) = FileConfig::from_toml(typo) {
        println!("   refused: {error}");
    }

    // 6. Everything, as one serializable snapshot.
    println!("== snapshot");
    let snapshot = registry.snapshot();
    for breaker in &snapshot.breakers {
        println!(
            "   {:<16} {:<10} failures {:>2}  rejected {:>2}  in state for {:?}",
            breaker.name,
            breaker.state.as_str(),
            breaker.failures,
            breaker.rejected,
            breaker.time_in_state
        );
    }
    let json = serde_json::to_string(&snapshot.breakers[0])?;
    println!("   as JSON: {json}");
    Ok(())
}
