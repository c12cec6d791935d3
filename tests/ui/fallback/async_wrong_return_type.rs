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

async fn cached_price(_sku: &str, _error: Error) -> Result<String, Error> {
    Ok(String::new())
}

fn main() {}
