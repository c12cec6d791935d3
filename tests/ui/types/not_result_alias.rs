use resilient::resilient;

/// An alias the macro cannot see through: the compiler reports it at the return type.
pub type Answer = Option<u32>;

#[resilient(timeout = "2s")]
async fn price(sku: &str) -> Answer {
    let _ = sku;
    None
}

fn main() {}
