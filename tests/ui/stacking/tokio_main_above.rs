use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

#[tokio::main]
#[resilient(timeout = "2s")]
async fn main() -> Result<(), Error> {
    Ok(())
}
