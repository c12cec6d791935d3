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

#[resilient(hedges = 2)]
async fn price(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

fn main() {}
