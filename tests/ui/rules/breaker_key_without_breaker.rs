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

#[resilient(breaker_key = host, retries = 1)]
async fn price(host: &str) -> Result<u32, Error> {
    let _ = host;
    Err(Error::Down)
}

fn main() {}
