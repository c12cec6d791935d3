//! The smallest complete service: declare at startup, annotate, validate, map to HTTP.
use resilient::{BreakerConfig, BulkheadConfig, Rejection, registry, resilient};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PriceError {
    #[error("feature store unavailable")]
    Unavailable,
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

#[resilient(timeout = "200ms", retries = 2, breaker = "feature_store", bulkhead = "feature_store",
            fallback = cached)]
pub(crate) async fn price(sku: &str) -> Result<u32, PriceError> {
    if sku == "espresso" {
        Ok(1_999)
    } else {
        Err(PriceError::Unavailable)
    }
}

fn cached(sku: &str, error: PriceError) -> Result<u32, PriceError> {
    if sku == "latte" {
        Ok(2_499)
    } else {
        Err(error)
    }
}

/// The status a handler answers with, and `Retry-After` in whole seconds, rounded up.
fn http_status(error: &PriceError) -> (u16, Option<u64>) {
    match error {
        PriceError::Rejected(rejection) if rejection.is_timeout() => (504, None),
        PriceError::Rejected(rejection) => (
            503,
            rejection
                .retry_after()
                .map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64),
        ),
        PriceError::Unavailable => (502, None),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    registry().declare_breaker("feature_store", BreakerConfig::consecutive_failures(3))?;
    registry().declare_bulkhead("feature_store", BulkheadConfig::new(32))?;
    registry().validate()?; // a misspelled breaker name stops the deploy here
    for sku in ["espresso", "latte", "mocha", "mocha"] {
        match price(sku).await {
            Ok(cents) => println!("{sku}: 200, {cents} cents"),
            Err(error) => println!("{sku}: {:?} ({error})", http_status(&error)),
        }
    }
    Ok(())
}
