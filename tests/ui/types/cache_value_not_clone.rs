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

pub struct Report(String);

#[resilient(cache = "5m")]
async fn report(id: u64) -> Result<Report, Error> {
    Ok(Report(id.to_string()))
}

fn main() {}
