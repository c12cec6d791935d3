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

#[resilient(timeout = "2s")]
async fn price(sku: &str) -> Option<u32> {
    let _ = sku;
    None
}

fn main() {}
