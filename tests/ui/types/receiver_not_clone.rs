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

pub struct Connection;

impl Connection {
    #[resilient(retries = 2)]
    async fn close(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }
}

fn main() {}
