use resilient::{Rejection, resilient};

#[derive(Debug)]
pub enum Error {
    Down,
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

#[resilient(cache_capacity = 10, cache_key = sku)]
async fn price(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

#[resilient(cache = "5m")]
async fn pair((left, right): (u32, u32)) -> Result<u32, Error> {
    Ok(left + right)
}

#[resilient(cache = "5m", cache_capacity = 0)]
async fn quote(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

fn main() {}
