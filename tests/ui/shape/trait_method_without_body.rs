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

pub trait Prices {
    #[resilient(timeout = "2s")]
    async fn price(&self, sku: &str) -> Result<u32, Error>;
}

fn main() {}
