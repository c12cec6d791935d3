//! A checkout service prices carts through a feature store that is healthy, then fails hard,
//! then turns slow, then recovers. Watch the breaker fail fast while the store is down, serve
//! the last good prices from its stale-while-failing cache, pass each call's idempotency key and
//! remaining time to the store, and recover through half-open probes without a stampede.
//!
//! ```sh
//! cargo run --example checkout
//! ```

// The scenario lives in a shared file so `examples/prometheus.rs` runs the very same one.
#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use scenario::{SCHEDULE, Scenario};

/// How long each phase of the fault schedule lasts.
const PHASE: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scenario = Scenario::start(PHASE)?;
    let mut summary = Vec::new();
    for phase in &SCHEDULE {
        summary.push(scenario.run_phase(phase).await);
    }
    scenario::print_summary(&summary);
    Ok(())
}
