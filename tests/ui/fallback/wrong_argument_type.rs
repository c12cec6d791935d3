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

#[resilient(fallback = cached_price)]
async fn price(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

fn cached_price(_sku: u64, _error: Error) -> Result<u32, Error> {
    Ok(0)
}

fn main() {}
