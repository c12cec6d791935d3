use resilient::{Rejection, resilient};

#[resilient(timeout = "2s", retries = 1)]
async fn call<E: From<Rejection> + std::fmt::Debug>(fail: bool, error: fn() -> E) -> Result<u32, E> {
    if fail { Err(error()) } else { Ok(1) }
}

fn main() {}
