//! `#[resilient(crate = path)]`: a crate that reaches `resilient` through a facade (or a renamed
//! dependency) points the expansion at it, warning-free.

#![deny(warnings)]

/// A facade that re-exports `resilient` under another name, as a company's platform crate
/// would.
mod platform {
    pub use resilient as engine;
}

use platform::engine::{Rejection, resilient};

#[derive(Debug, PartialEq)]
enum Error {
    Down,
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

#[resilient(crate = crate::platform::engine, retries = 2, backoff = "1ms", name = "facade::bare")]
async fn through_a_path(attempts: &mut u32) -> Result<u32, Error> {
    *attempts += 1;
    if *attempts < 3 {
        Err(Error::Down)
    } else {
        Ok(*attempts)
    }
}

#[resilient(crate = "crate::platform::engine", timeout = "1s", fallback = zero)]
async fn through_a_string() -> Result<u32, Error> {
    std::future::pending().await
}

fn zero(_error: Error) -> Result<u32, Error> {
    Ok(0)
}

#[tokio::test(start_paused = true)]
async fn an_annotated_function_runs_through_the_facade() {
    let mut attempts = 0;
    assert_eq!(through_a_path(&mut attempts).await, Ok(3));
    assert_eq!(
        through_a_string().await,
        Ok(0),
        "timed out, then the fallback"
    );
    let names: Vec<_> = platform::engine::registry()
        .call_sites()
        .into_iter()
        .map(|site| site.info.name)
        .collect();
    assert!(names.contains(&"facade::bare"), "{names:?}");
}
