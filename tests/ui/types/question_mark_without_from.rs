
use resilient::{Rejection, resilient};

#[derive(Debug)]
pub enum Error {
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

#[resilient(retries = 1)]
async fn parse(text: &str) -> Result<u32, Error> {
    let n: u32 = text.parse()?;
    Ok(n)
}

fn main() {}
