use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

mod platform {}

#[resilient(crate = crate::platform::engine, timeout = "2s")]
async fn price() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
