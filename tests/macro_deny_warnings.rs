//! The expansion compiles warning-free under `#![deny(warnings)]`: every shape of
//! `macro_shapes.rs`, plus the one-line bodies rustc's `unused_braces` once fired on (its
//! suggested fix did not compile, so `cargo fix` broke the build).

#![deny(warnings)]

use resilient::{Rejection, resilient};

#[path = "macro_shapes.rs"]
mod shapes;

#[derive(Debug, PartialEq)]
struct Error(Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

// One line each, as written by hand: rustfmt would spread them over three.
#[rustfmt::skip]
#[resilient(timeout = "1s")]
async fn one() -> Result<u32, Error> { Ok(1) }

#[rustfmt::skip]
#[resilient(retries = 1, backoff = "1ms")]
async fn one_retried() -> Result<u32, Error> { Ok(2) }

#[rustfmt::skip]
#[resilient(timeout = "1s", fallback = one_fallback)]
async fn one_with_fallback() -> Result<u32, Error> { Ok(3) }

fn one_fallback(error: Error) -> Result<u32, Error> {
    Err(error)
}

struct Unit;

impl Unit {
    #[rustfmt::skip]
    #[resilient(retries = 1, backoff = "1ms")]
    async fn one(&self) -> Result<u32, Error> { Ok(4) }
}

#[tokio::test(start_paused = true)]
async fn one_line_bodies_run() {
    assert_eq!(one().await, Ok(1));
    assert_eq!(one_retried().await, Ok(2));
    assert_eq!(one_with_fallback().await, Ok(3));
    assert_eq!(Unit.one().await, Ok(4));
}
