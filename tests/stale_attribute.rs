//! The stale-while-failing cache through the attribute (issue 11 §5): `cache = "5m"` keeps the
//! last good value per argument key and answers an outage with it, before the fallback, on the
//! paused clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{MS, TestError};
use resilient::cache::observe;
use resilient::{BreakerConfig, Registry, resilient};
use tokio::time::advance;

const MINUTE: Duration = Duration::from_secs(60);

static DOWN: AtomicBool = AtomicBool::new(false);
static FALLBACKS: AtomicU32 = AtomicU32::new(0);

/// The model: a price per SKU while up, a failure while down.
#[resilient(name = "stale::price", cache = "5m", cache_capacity = 100, fallback = last_resort)]
async fn price(sku: &str, quantity: u32) -> Result<u32, TestError> {
    if DOWN.load(Ordering::Relaxed) {
        return Err(TestError::Down(0));
    }
    Ok(sku.len() as u32 * 100 + quantity)
}

fn last_resort(_sku: &str, _quantity: u32, error: TestError) -> Result<u32, TestError> {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
    Err(error)
}

#[tokio::test(start_paused = true)]
async fn an_outage_after_one_success_is_answered_for_five_minutes_then_the_fallback_runs() {
    let registry = Arc::new(Registry::new());
    registry
        .scope(async {
            DOWN.store(false, Ordering::Relaxed);
            assert_eq!(observe(price("tea", 2)).await, (Ok(302), None));
            DOWN.store(true, Ordering::Relaxed);

            advance(4 * MINUTE + 59 * 1000 * MS).await;
            let (answer, age) = observe(price("tea", 2)).await;
            assert_eq!(answer, Ok(302), "the cached value, 4 min 59 s old");
            assert_eq!(age, Some(4 * MINUTE + 59 * 1000 * MS));
            advance(1000 * MS).await;
            assert_eq!(observe(price("tea", 2)).await, (Ok(302), Some(5 * MINUTE)));
            assert_eq!(
                FALLBACKS.load(Ordering::Relaxed),
                0,
                "no fallback while cached"
            );

            advance(MS).await;
            let (answer, age) = observe(price("tea", 2)).await;
            assert!(matches!(answer, Err(TestError::Down(_))), "{answer:?}");
            assert_eq!(age, None);
            assert_eq!(FALLBACKS.load(Ordering::Relaxed), 1, "then the fallback");

            let (other, _) = observe(price("tea", 3)).await;
            assert!(other.is_err(), "another key has nothing cached");
        })
        .await;
    let stats = registry
        .call_site_stats("stale::price")
        .unwrap()
        .metrics("stale::price".into());
    assert_eq!(stats.stale_served, 2);
    assert_eq!(stats.fallbacks, 2);
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

/// An error type that calls every error permanent, rejections included: only the driver
/// knows that an open breaker's rejection is an outage.
#[derive(Debug, PartialEq)]
enum Strict {
    NotFound,
    Rejected(resilient::Rejection),
}

impl From<resilient::Rejection> for Strict {
    fn from(rejection: resilient::Rejection) -> Self {
        Strict::Rejected(rejection)
    }
}

impl resilient::Transient for Strict {
    fn is_transient(&self) -> bool {
        false
    }
}

/// A permanent error on the second call, an open breaker later.
#[resilient(name = "stale::user", cache = "1m", cache_key = id, breaker = "stale::users")]
async fn user(id: u64, _trace: String) -> Result<String, Strict> {
    match LOOKUPS.fetch_add(1, Ordering::Relaxed) {
        0 => Ok(format!("user {id}")),
        _ => Err(Strict::NotFound),
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_comes_through_and_a_rejection_is_answered_from_the_cache() {
    let registry = Arc::new(Registry::new());
    let breaker = registry
        .declare_breaker("stale::users", BreakerConfig::default())
        .unwrap();
    registry
        .scope(async {
            assert_eq!(user(7, "a".into()).await, Ok("user 7".to_owned()));
            assert_eq!(
                user(7, "b".into()).await,
                Err(Strict::NotFound),
                "a permanent error is an answer, not an outage"
            );
            breaker.force_open();
            let (answer, age) = observe(user(7, "c".into())).await;
            assert_eq!(
                answer,
                Ok("user 7".to_owned()),
                "keyed by `cache_key` alone, served for the open breaker"
            );
            assert_eq!(age, Some(Duration::ZERO));
        })
        .await;
}
