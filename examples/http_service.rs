//! An axum service whose handler calls a real upstream over HTTP, both in this process, each on
//! its own loopback port. The upstream answers, then goes down, then turns slow, then comes
//! back; a client of the service prints what it saw in each phase: fresh prices, prices from
//! the fallback's cache, and `503` with `Retry-After` while the breaker protects the upstream.
//!
//! ```sh
//! cargo run --example http_service
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resilient::http::{HttpError, HttpErrorKind, ResponseExt};
use resilient::{BreakerConfig, registry, resilient};

/// What the upstream does in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Healthy,
    Down,
    Slow,
}

/// The phases the client walks through, and how long each lasts.
const PHASES: [(&str, Mode, Duration); 4] = [
    ("healthy", Mode::Healthy, Duration::from_secs(2)),
    ("upstream down", Mode::Down, Duration::from_secs(3)),
    ("upstream slow", Mode::Slow, Duration::from_secs(3)),
    ("recovered", Mode::Healthy, Duration::from_secs(3)),
];

// ---------------------------------------------------------------------------------------------
// The upstream: a price service that fails on command.

static MODE: AtomicU8 = AtomicU8::new(Mode::Healthy as u8);

async fn upstream_price(Path(sku): Path<String>) -> Response {
    match MODE.load(Ordering::Relaxed) {
        mode if mode == Mode::Down as u8 => {
            (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response()
        }
        mode => {
            if mode == Mode::Slow as u8 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let cents = 1_000 + sku.len() as u32 * 111;
            cents.to_string().into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The service: its handler calls the upstream through `#[resilient]`.

#[derive(Clone)]
struct Service {
    http: reqwest::Client,
    upstream: SocketAddr,
    /// The last good price per SKU, for the fallback.
    cache: Arc<Mutex<HashMap<String, u32>>>,
}

/// A price, and whether it came from the cache.
struct Price {
    cents: u32,
    cached: bool,
}

impl Service {
    /// `HttpError` classifies what the upstream answers (the `reqwest` feature): 503, 429 and
    /// connection failures are retried and count against the breaker, a 404 would not.
    #[resilient(timeout = "300ms", retries = 1, backoff = "50ms", breaker = "upstream_prices",
                fallback = cached_price)]
    async fn price(&self, sku: &str) -> Result<Price, HttpError> {
        let url = format!("http://{}/price/{sku}", self.upstream);
        let response = self.http.get(url).send().await?.check_status()?;
        let text = response.text().await?;
        let cents = text
            .parse()
            .map_err(|error| HttpError::new(HttpErrorKind::Local).with_source(error))?;
        self.cache.lock().unwrap().insert(sku.to_owned(), cents);
        Ok(Price {
            cents,
            cached: false,
        })
    }

    fn cached_price(&self, sku: &str, error: HttpError) -> Result<Price, HttpError> {
        match self.cache.lock().unwrap().get(sku) {
            Some(&cents) => Ok(Price {
                cents,
                cached: true,
            }),
            None => Err(error),
        }
    }
}

async fn price_handler(State(service): State<Service>, Path(sku): Path<String>) -> Response {
    match service.price(&sku).await {
        Ok(Price {
            cents,
            cached: false,
        }) => cents.to_string().into_response(),
        Ok(Price {
            cents,
            cached: true,
        }) => ([("x-served-from", "cache")], cents.to_string()).into_response(),
        // The `axum` feature: 503 with `Retry-After` (or 504), as `application/problem+json`.
        Err(error) => match error.rejection() {
            Some(rejection) => rejection.clone().into_response(),
            None => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Wiring, and the client that reports what it sees.

async fn serve(router: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(address)
}

/// What the client saw in one phase, by kind of answer.
#[derive(Debug, Default)]
struct Seen {
    fresh: u32,
    cached: u32,
    unavailable: u32,
    retry_after: Option<String>,
    other: u32,
}

async fn observe(http: &reqwest::Client, service: SocketAddr, sku: &str, seen: &mut Seen) {
    let Ok(response) = http
        .get(format!("http://{service}/price/{sku}"))
        .send()
        .await
    else {
        seen.other += 1;
        return;
    };
    let from_cache = response.headers().contains_key("x-served-from");
    match response.status() {
        StatusCode::OK if from_cache => seen.cached += 1,
        StatusCode::OK => seen.fresh += 1,
        StatusCode::SERVICE_UNAVAILABLE => {
            seen.unavailable += 1;
            let retry_after = response.headers().get(header::RETRY_AFTER);
            seen.retry_after = retry_after.and_then(|value| value.to_str().ok().map(str::to_owned));
        }
        _ => seen.other += 1,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    registry().declare_breaker(
        "upstream_prices",
        BreakerConfig::consecutive_failures(3).with_open_wait(Duration::from_secs(1)),
    )?;
    registry().validate()?;

    let upstream = serve(axum::Router::new().route("/price/{sku}", get(upstream_price))).await?;
    let service = Service {
        http: reqwest::Client::new(),
        upstream,
        cache: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/price/{sku}", get(price_handler))
        .with_state(service);
    let service = serve(router).await?;
    println!("upstream on {upstream}, service on {service}\n");

    let client = reqwest::Client::new();
    for (phase, mode, length) in PHASES {
        MODE.store(mode as u8, Ordering::Relaxed);
        let mut espresso = Seen::default(); // priced in the first phase, so cached afterwards
        let mut matcha = Seen::default(); // first asked for once the upstream is down: no cache
        let end = tokio::time::Instant::now() + length;
        while tokio::time::Instant::now() < end {
            observe(&client, service, "espresso", &mut espresso).await;
            if phase != "healthy" {
                observe(&client, service, "matcha", &mut matcha).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let breaker = registry().get_breaker("upstream_prices");
        let state = breaker.map(|breaker| breaker.state().to_string());
        println!("{phase:>14}: breaker {}", state.unwrap_or_default());
        for (sku, seen) in [("espresso", &espresso), ("matcha", &matcha)] {
            if seen.fresh + seen.cached + seen.unavailable + seen.other == 0 {
                continue;
            }
            println!(
                "{:>14}  {sku:<8} 200 fresh: {:>3}   200 from cache: {:>3}   503: {:>3}{}   other: {}",
                "",
                seen.fresh,
                seen.cached,
                seen.unavailable,
                seen.retry_after
                    .as_ref()
                    .map(|after| format!(" (Retry-After: {after})"))
                    .unwrap_or_default(),
                seen.other,
            );
        }
    }
    Ok(())
}
