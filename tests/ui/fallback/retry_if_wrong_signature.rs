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

#[resilient(retries = 2, retry_if = is_transient)]
async fn price(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

fn is_transient(_error: &std::io::Error) -> bool {
    true
}

fn main() {}
