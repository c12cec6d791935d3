//! A `mut` argument the body never mutates is still reported, at the signature, although each
//! attempt works on its own copy.
#![deny(unused_mut)]

use resilient::{Rejection, resilient};

#[derive(Debug)]
pub struct Error(pub Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

#[resilient(retries = 2)]
async fn send(mut body: String) -> Result<usize, Error> {
    Ok(body.len())
}

fn main() {}
