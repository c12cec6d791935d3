//! Annotated functions of every shape under clippy's pedantic group: CI runs
//! `cargo clippy --all-targets -- -D warnings`, so a pedantic lint firing on generated code
//! fails the build. `forbid(unsafe_code)` proves the expansion (link-time registration
//! included) needs no exemption either. The functions also run, so this file proves they
//! work, not only that they compile.

#![warn(clippy::pedantic)]
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use resilient::{Rejection, Transient, resilient};

#[derive(Debug, PartialEq, thiserror::Error)]
enum Error {
    #[error("unavailable")]
    Unavailable,
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

impl Transient for Error {}

fn is_retryable(error: &Error) -> bool {
    matches!(error, Error::Unavailable)
}

#[resilient(
    timeout = "250ms",
    total_timeout = "2s",
    retries = 2,
    backoff = "10ms",
    max_backoff = "100ms",
    jitter = "decorrelated",
    retry_if = is_retryable,
    breaker = "macro_pedantic_store",
    bulkhead = "macro_pedantic_store",
    fallback = every_key_fallback,
    name = "macro_pedantic::every_key"
)]
async fn every_key(attempts: &AtomicU32, key: String) -> Result<usize, Error> {
    if attempts.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(Error::Unavailable);
    }
    Ok(key.len())
}

// A fallback must return the function's `Result`, even one that cannot fail.
#[allow(clippy::needless_pass_by_value, clippy::unnecessary_wraps)]
fn every_key_fallback(_attempts: &AtomicU32, key: String, _error: Error) -> Result<usize, Error> {
    Ok(key.len() * 100)
}

#[resilient(timeout = "1s")]
async fn single_attempt(value: Vec<u8>) -> Result<usize, Error> {
    tokio::task::yield_now().await;
    Ok(value.len())
}

#[resilient(retries = 1, fallback = async_fallback)]
async fn with_async_fallback(id: u64) -> Result<u64, Error> {
    let _ = id;
    Err(Error::Unavailable)
}

async fn async_fallback(id: u64, _error: Error) -> Result<u64, Error> {
    tokio::task::yield_now().await;
    Ok(id)
}

#[derive(Debug, Default, Clone)]
struct Client {
    calls: u32,
}

impl Client {
    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_mut(&mut self, path: &str) -> Result<String, Error> {
        self.calls += 1;
        tokio::task::yield_now().await;
        Ok(format!("{path}#{}", self.calls))
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_arc(self: Arc<Self>) -> Result<u32, Error> {
        tokio::task::yield_now().await;
        Ok(self.calls)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_value(mut self) -> Result<u32, Error> {
        self.calls += 1;
        tokio::task::yield_now().await;
        Ok(self.calls)
    }
}

#[async_trait]
trait Repository {
    async fn load(&self, id: u32) -> Result<String, Error>;
}

#[async_trait]
impl Repository for Client {
    #[resilient(retries = 1, backoff = "1ms")]
    #[tracing::instrument(skip(self))]
    async fn load(&self, id: u32) -> Result<String, Error> {
        tokio::task::yield_now().await;
        Ok(format!("{id}/{}", self.calls))
    }
}

#[tracing::instrument]
#[resilient(retries = 1, backoff = "1ms")]
async fn instrumented(id: u32) -> anyhow::Result<u32> {
    tokio::task::yield_now().await;
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn pedantic_functions_run() {
    let attempts = AtomicU32::new(0);
    assert_eq!(every_key(&attempts, "abc".to_owned()).await, Ok(3));
    assert_eq!(single_attempt(vec![1, 2]).await, Ok(2));
    assert_eq!(with_async_fallback(9).await, Ok(9));
    let mut client = Client::default();
    assert_eq!(client.by_mut("/a").await.unwrap(), "/a#1");
    assert_eq!(Arc::new(client.clone()).by_arc().await, Ok(1));
    assert_eq!(client.clone().by_value().await, Ok(2));
    assert_eq!(client.load(4).await.unwrap(), "4/1");
    assert_eq!(instrumented(5).await.unwrap(), 5);
}
