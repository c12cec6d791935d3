//! The user's own code is still linted inside the generated attempt loop.
#![deny(unused_variables)]

use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(pub Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

#[resilient(retries = 2)]
async fn price(sku: &str) -> Result<usize, Error> {
    let discount = 5;
    Ok(sku.len())
}

fn main() {}
