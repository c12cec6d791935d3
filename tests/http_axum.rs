//! `Rejection` as an axum response, served by a real axum server on loopback and read by a
//! real HTTP client: status, `Retry-After`, content type and the problem-details members.
//!
//! Real sockets run on the real clock, so these tests assert no timing.

use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resilient::{BreakerConfig, Policy, Registry, Rejection, TimeoutKind};
use serde_json::Value;

/// A service's own error type, wrapping `Rejection`: one line forwards it.
enum AppError {
    Upstream(Rejection),
}

impl From<Rejection> for AppError {
    fn from(rejection: Rejection) -> Self {
        AppError::Upstream(rejection)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Upstream(rejection) => rejection.into_response(),
        }
    }
}

/// A policy whose breaker, `payments`, is open: its one allowed failure already happened.
async fn open_breaker_policy() -> Policy {
    let registry = Registry::new();
    registry
        .declare_breaker(
            "payments",
            BreakerConfig::consecutive_failures(1).with_open_wait(Duration::from_secs(30)),
        )
        .unwrap();
    let policy = Policy::builder("charge")
        .breaker("payments")
        .build_in(&registry)
        .unwrap();
    let failed: Result<(), Rejection> = policy
        .call(|| async {
            Err(Rejection::Timeout {
                kind: TimeoutKind::Attempt,
                limit: Duration::from_secs(1),
            })
        })
        .await;
    assert!(failed.is_err());
    policy
}

async fn serve() -> String {
    let policy = open_breaker_policy().await;
    let wrapped = policy.clone();
    let app = Router::new()
        .route(
            "/open",
            get(move || async move { policy.call(|| async { Ok::<_, Rejection>("paid") }).await }),
        )
        .route(
            "/wrapped",
            get(move || async move { wrapped.call(|| async { Ok::<_, AppError>("paid") }).await }),
        )
        .route(
            "/half-open",
            get(|| async {
                Rejection::HalfOpenFull {
                    breaker: "payments".into(),
                }
            }),
        )
        .route(
            "/bulkhead",
            get(|| async {
                Rejection::BulkheadFull {
                    bulkhead: "search".into(),
                    max_concurrent: 4,
                }
            }),
        )
        .route(
            "/timeout",
            get(|| async {
                Rejection::Timeout {
                    kind: TimeoutKind::Total,
                    limit: Duration::from_secs(2),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    body: Value,
}

async fn fetch(url: &str) -> Answer {
    let response = reqwest::get(url).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value: &reqwest::header::HeaderValue| value.to_str().unwrap().to_owned())
    };
    let retry_after = header("retry-after");
    let content_type = header("content-type").unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    Answer {
        status,
        retry_after,
        content_type,
        body,
    }
}

fn assert_problem(answer: &Answer, kind: &str, status: u16, dependency: Option<&str>) {
    assert_eq!(answer.status, status);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["type"], format!("urn:resilient:{kind}"));
    assert_eq!(answer.body["status"], status);
    assert!(answer.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    match dependency {
        Some(name) => assert_eq!(answer.body["dependency"], name),
        None => assert!(answer.body.get("dependency").is_none()),
    }
}

fn retry_after_seconds(answer: &Answer) -> u64 {
    answer.retry_after.as_deref().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_open_breaker_is_a_503_with_the_time_left_rounded_up() {
    let url = serve().await;
    for path in ["/open", "/wrapped"] {
        let answer = fetch(&format!("{url}{path}")).await;
        assert_problem(&answer, "circuit-open", 503, Some("payments"));
        let seconds = retry_after_seconds(&answer);
        // Under 30 s are left, rounded up: 30, unless this test stalled for over a second.
        assert!((1..=30).contains(&seconds), "{path}: {seconds}");
    }
}

#[tokio::test]
async fn a_full_half_open_breaker_and_a_full_bulkhead_are_503s_retried_after_one_second() {
    let url = serve().await;
    let half_open = fetch(&format!("{url}/half-open")).await;
    assert_problem(&half_open, "half-open-full", 503, Some("payments"));
    assert_eq!(half_open.retry_after.as_deref(), Some("1"));

    let bulkhead = fetch(&format!("{url}/bulkhead")).await;
    assert_problem(&bulkhead, "bulkhead-full", 503, Some("search"));
    assert_eq!(bulkhead.retry_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_timeout_is_a_504_without_retry_after() {
    let url = serve().await;
    let answer = fetch(&format!("{url}/timeout")).await;
    assert_problem(&answer, "timeout", 504, None);
    assert_eq!(answer.retry_after, None);
}
