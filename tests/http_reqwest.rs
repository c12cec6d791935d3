//! HTTP classification through reqwest, against a real server on loopback: which statuses are
//! retried, which count against the breaker, and `Retry-After`.
//!
//! The server is a `TcpListener` answering raw HTTP/1.1, one canned answer per request. The
//! retry waits run on tokio's paused clock, which jumps to the next timer while the runtime is
//! idle: the virtual elapsed time is exact, and the tests take no wall-clock time waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resilient::http::{HttpError, HttpErrorKind, ResponseExt};
use resilient::{
    Backoff, BreakerConfig, BreakerState, CircuitBreaker, Policy, Registry, Transient, resilient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A server answering the n-th request with `answers[n]` (the last one from then on).
/// Returns its base URL and how many requests it received.
async fn serve(answers: &'static [&'static str]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let head = answers[n.min(answers.len() - 1)];
            tokio::spawn(async move {
                read_request_head(&mut socket).await;
                let answer =
                    format!("HTTP/1.1 {head}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

async fn read_request_head(socket: &mut tokio::net::TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
}

/// One GET, its status checked by the HTTP rule.
async fn get(client: &reqwest::Client, url: &str) -> Result<String, HttpError> {
    let response = client.get(url).send().await?.check_status()?;
    Ok(response.text().await?)
}

fn policy(registry: &Registry, breaker: BreakerConfig) -> Policy {
    registry.declare_breaker("upstream", breaker).unwrap();
    Policy::builder("fetch")
        .retries(3)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .breaker("upstream")
        .build_in(registry)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_404_is_returned_once_and_not_counted_by_the_breaker() {
    let (url, hits) = serve(&["404 Not Found"]).await;
    let registry = Registry::new();
    let policy = policy(&registry, BreakerConfig::consecutive_failures(1));
    let client = reqwest::Client::new();

    let error = policy.call(|| get(&client, &url)).await.unwrap_err();
    assert_eq!(error.status(), Some(reqwest::StatusCode::NOT_FOUND));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a 404 is never retried");
    assert_eq!(
        registry.breaker("upstream").unwrap().state(),
        BreakerState::Closed,
        "one failure would have opened it: the 404 did not count"
    );
}

#[tokio::test(start_paused = true)]
async fn a_503_is_retried_no_sooner_than_its_retry_after() {
    let (url, hits) = serve(&["503 Service Unavailable\r\nretry-after: 2", "200 OK"]).await;
    let registry = Registry::new();
    let policy = policy(&registry, BreakerConfig::consecutive_failures(5));
    let client = reqwest::Client::new();

    let started = Instant::now();
    let body = policy.call(|| get(&client, &url)).await.unwrap();
    assert_eq!(body, "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the backoff is 1 ms; only Retry-After makes it {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_500_counts_against_the_breaker_and_is_not_retried() {
    let (url, hits) = serve(&["500 Internal Server Error"]).await;
    let registry = Registry::new();
    let policy = policy(&registry, BreakerConfig::consecutive_failures(1));
    let client = reqwest::Client::new();

    let error = policy.call(|| get(&client, &url)).await.unwrap_err();
    assert_eq!(
        error.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a mutation may have applied"
    );
    assert_eq!(
        registry.breaker("upstream").unwrap().state(),
        BreakerState::Open
    );
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_call_retries_a_500() {
    let (url, hits) = serve(&["500 Internal Server Error", "200 OK"]).await;
    let registry = Registry::new();
    let policy = policy(&registry, BreakerConfig::consecutive_failures(5));
    let client = reqwest::Client::new();

    let body = policy
        .call(|| async { get(&client, &url).await.map_err(HttpError::idempotent) })
        .await
        .unwrap();
    assert_eq!(body, "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn connection_refused_is_a_transient_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let registry = Registry::new();
    let policy = policy(&registry, BreakerConfig::consecutive_failures(4));
    let client = reqwest::Client::new();
    let attempts = AtomicUsize::new(0);

    let error = policy
        .call(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            get(&client, &url)
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), &HttpErrorKind::Connect);
    assert_eq!(attempts.load(Ordering::SeqCst), 4, "retried 3 times");
    assert_eq!(
        registry.breaker("upstream").unwrap().state(),
        BreakerState::Open,
        "4 refused connections in a row are 4 failures"
    );
}

/// `reqwest::Error` as it is, recorded by hand on a breaker's permit with no predicate
/// configured: a 404 from `error_for_status` frees the permit without counting, a refused
/// connection counts.
#[tokio::test(start_paused = true)]
async fn a_breaker_judges_a_reqwest_error_by_the_http_rule() {
    let (url, _) = serve(&["404 Not Found"]).await;
    let breaker = CircuitBreaker::new("upstream", BreakerConfig::consecutive_failures(1)).unwrap();
    let client = reqwest::Client::new();

    let not_found = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert!(!not_found.is_transient());
    breaker.try_acquire().unwrap().record_error(&not_found);
    assert_eq!(breaker.state(), BreakerState::Closed);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let refused = client.get(&closed_url).send().await.unwrap_err();
    assert!(refused.is_transient());
    breaker.try_acquire().unwrap().record_error(&refused);
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// The attribute finds `HttpError`'s `Transient` impl by itself and honours `Retry-After`.
#[resilient(breaker = "http_reqwest_attribute", retries = 2)]
async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, HttpError> {
    get(client, url).await
}

#[tokio::test(start_paused = true)]
async fn the_attribute_retries_a_429_after_its_retry_after() {
    let (url, hits) = serve(&["429 Too Many Requests\r\nretry-after: 3", "200 OK"]).await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    assert_eq!(fetch(&client, &url).await.unwrap(), "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(3));
}
