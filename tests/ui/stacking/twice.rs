use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

#[resilient(retries = 3)]
#[resilient(timeout = "2s")]
async fn price() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
