use resilient::resilient;

#[resilient(timeout = "2s")]
async fn price(sku: &str) -> Result<u32, String> {
    Err(format!("no price for {sku}"))
}

fn main() {}
