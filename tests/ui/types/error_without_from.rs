
use resilient::resilient;

#[derive(Debug)]
pub struct PricingError;

#[resilient(timeout = "2s", retries = 2)]
async fn price(sku: &str) -> Result<u32, PricingError> {
    let _ = sku;
    Err(PricingError)
}

fn main() {}
