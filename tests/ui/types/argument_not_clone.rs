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

pub struct Request {
    pub body: Vec<u8>,
}

#[resilient(retries = 2)]
async fn send(request: Request) -> Result<usize, Error> {
    Ok(request.body.len())
}

fn main() {}
