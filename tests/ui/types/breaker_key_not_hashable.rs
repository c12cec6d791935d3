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

pub struct Host(pub String);

#[resilient(breaker = "hosts", breaker_key = host)]
async fn price(host: Host) -> Result<u32, Error> {
    let _ = host.0;
    Err(Error::Down)
}

fn main() {}
