//! Every Rust block of `README.md`, in a context that compiles it. `tests/readme.rs` checks
//! that each block still stands here line for line, so the README cannot drift from code that
//! builds. The blocks are written as the README shows them, hence no rustfmt here.
#![allow(dead_code, unused_variables, unused_mut, clippy::all)]

#[rustfmt::skip]
mod intro {
    use resilient::{Rejection, resilient};

    #[derive(Debug)]
    pub struct Price;
    #[derive(Debug)]
    pub enum PricingError { Unavailable, Rejected(Rejection) }
    impl From<Rejection> for PricingError {
        fn from(rejection: Rejection) -> Self { PricingError::Rejected(rejection) }
    }
    pub struct Store;
    impl Store {
        pub async fn price(&self, _sku: &str) -> Result<Price, PricingError> { Err(PricingError::Unavailable) }
    }
    pub struct Pricing { store: Store }
    impl Pricing {
        fn cached_price(&self, _sku: &str, error: PricingError) -> Result<Price, PricingError> { Err(error) }

        #[resilient(timeout = "2s", retries = 3, breaker = "feature_store", fallback = cached_price)]
        async fn price(&self, sku: &str) -> Result<Price, PricingError> { self.store.price(sku).await }
    }
}

#[rustfmt::skip]
mod the_attribute {
    use resilient::{Rejection, resilient};

    #[derive(Debug, thiserror::Error)]
    enum PricingError {
        #[error("feature store unavailable")]
        Unavailable,
        #[error(transparent)]
        Rejected(#[from] Rejection),
    }

    impl Pricing {
        #[resilient(timeout = "2s", retries = 3, breaker = "feature_store", fallback = cached_price)]
        async fn price(&self, sku: &str) -> Result<Price, PricingError> {
            self.store.price(sku).await // `?` and `return` end this attempt, not the retry loop
        }

        // Same arguments, then the error; same return type; `async` or not.
        fn cached_price(&self, sku: &str, error: PricingError) -> Result<Price, PricingError> {
            self.cache.get(sku).ok_or(error)
        }
    }

    #[derive(Debug, Clone, Copy)]
    pub struct Price;
    pub struct Store;
    impl Store {
        async fn price(&self, _sku: &str) -> Result<Price, PricingError> { Err(PricingError::Unavailable) }
    }
    pub struct Cache;
    impl Cache {
        fn get(&self, _sku: &str) -> Option<Price> { None }
    }
    pub struct Pricing { store: Store, cache: Cache }
}

// `examples/quickstart.rs` is the README's quick start itself; its `price` serves the testing
// recipe below.
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[rustfmt::skip]
mod testing {
    use std::sync::Arc;

    use resilient::{BreakerConfig, Registry};

    use super::quickstart::price;

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_serves_the_cached_price() {
        let registry = Arc::new(Registry::new());
        registry.declare_breaker("feature_store", BreakerConfig::default()).unwrap().force_open();
        let latte = registry.scope(price("latte")).await; // the quick start's `price`
        assert_eq!(latte.unwrap(), 2_499, "served by the fallback");
    }
}

#[rustfmt::skip]
mod configuration {
    fn load() -> Result<(), Box<dyn std::error::Error>> {
        use resilient::config::FileConfig;

        let config = FileConfig::load("resilient.toml")?;  // the file, then RESILIENT_* variables
        resilient::registry().reload(&config)?;
        Ok(())
    }
}

#[rustfmt::skip]
mod validation {
    use resilient::{BreakerConfig, registry};

    fn at_startup() -> Result<(), Box<dyn std::error::Error>> {
        registry().declare_breaker("feature_store", BreakerConfig::default())?;
        registry().validate()?; // at startup: a typo in a breaker name stops the deploy
        Ok(())
    }
}

#[rustfmt::skip]
mod programmatic_api {
    async fn run() -> Result<(), Box<dyn std::error::Error>> {
        use std::time::Duration;
        use resilient::{BreakerConfig, BulkheadConfig, Policy, Rejection, SlidingWindow, registry};

        #[derive(Debug, thiserror::Error)]
        enum PricingError {
            #[error("feature store unavailable")]
            Unavailable,
            #[error(transparent)]
            Rejected(#[from] Rejection),
        }

        // At startup: declare each dependency once.
        registry().declare_breaker(
            "feature_store",
            BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(20), 10)
                .with_open_wait(Duration::from_secs(5)),
        )?;
        registry().declare_bulkhead("feature_store", BulkheadConfig::new(64))?;

        // Once per call site: build the policy.
        let policy = Policy::builder("checkout::price")
            .timeout(Duration::from_millis(250))
            .retries(2)
            .breaker("feature_store")
            .bulkhead("feature_store")
            .build()?;

        // Per call: `call` takes a closure producing one attempt's future.
        let price: Result<u64, PricingError> = policy.call(|| async { Ok(1299) }).await;
        Ok(())
    }
}

#[rustfmt::skip]
mod observability {
    fn page(_message: String) {}

    fn snapshot() -> Result<(), Box<dyn std::error::Error>> {
        let snapshot = resilient::registry().snapshot();
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
        Ok(())
    }

    fn export() {
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                resilient::registry().export_metrics();
            }
        });
    }

    fn listen() {
        use resilient::event::Event;

        let registry = resilient::registry();
        registry.on_event(|event| match event {
            Event::StateTransition { breaker, from, to, reason } => page(format!("{breaker}: {from} → {to}: {reason}")),
            Event::OpenTooLong { breaker, open_for, .. } => page(format!("{breaker} down for {open_for:?}")),
            _ => {}
        });
        let mut events = registry.subscribe(); // tokio::sync::broadcast::Receiver<Event>
    }

    fn steer(registry: &resilient::Registry) -> Result<(), Box<dyn std::error::Error>> {
        registry.force_open("payments")?;  // reject every call until reset
        registry.disable("payments")?;     // let every call through, record nothing
        registry.reset("payments")?;       // closed, with an empty window
        registry.bypass_call_site("checkout::charge", true); // kill switch: the plain call runs
        Ok(())
    }
}

#[rustfmt::skip]
mod grpc {
    use resilient::resilient;

    pub struct LedgerClient;
    impl LedgerClient {
        async fn balance(&self, _account: &str) -> Result<u64, tonic::Status> { Ok(0) }
    }

    #[resilient(timeout = "500ms", retries = 2, breaker = "ledger")]
    async fn balance(client: &LedgerClient, account: &str) -> Result<u64, tonic::Status> {
        client.balance(account).await
    }
}

#[rustfmt::skip]
mod http_reqwest {
    use resilient::http::{HttpError, ResponseExt};
    use resilient::resilient;

    #[resilient(breaker = "catalog", retries = 3)]
    async fn product(client: &reqwest::Client, id: u32) -> Result<String, HttpError> {
        let url = format!("http://catalog.internal/products/{id}");
        let response = client.get(url).send().await?.check_status()?;
        Ok(response.text().await?)
    }
}

#[rustfmt::skip]
mod http_axum {
    use axum::response::{IntoResponse, Response};
    use resilient::Rejection;

    enum AppError { Upstream(Rejection), NotFound }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            match self {
                AppError::Upstream(rejection) => rejection.into_response(),
                AppError::NotFound => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    }
}

#[rustfmt::skip]
mod tower_layer {
    use std::time::Duration;

    use resilient::Policy;

    #[derive(Debug)]
    pub struct PaymentsError;
    impl From<resilient::Rejection> for PaymentsError {
        fn from(_: resilient::Rejection) -> Self { PaymentsError }
    }

    async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let payments_client = tower::service_fn(|request: String| async move {
            Ok::<_, PaymentsError>(request.len())
        });
        let request = String::from("charge 12.00");
        use resilient::tower::{Error, PolicyLayer};
        use tower::{ServiceBuilder, ServiceExt};

        let policy = Policy::builder("payments_client")
            .timeout(Duration::from_secs(2))
            .retries(2)
            .breaker("payments") // the same breaker as `#[resilient(breaker = "payments")]`
            .bulkhead("payments")
            .build()?;
        let service = ServiceBuilder::new()
            .layer(PolicyLayer::new(policy)) // `.send_once()` for requests that cannot be cloned
            .service(payments_client);
        match service.oneshot(request).await {
            Ok(response) => { /* ... */ }
            Err(Error::Rejected(rejection)) => { /* open breaker, full bulkhead, timeout: 503/504 */ }
            Err(Error::Service(e)) => { /* the service's own error */ }
        }
        Ok(())
    }
}

#[rustfmt::skip]
mod per_key {
    use resilient::family::FamilyConfig;
    use resilient::{BreakerConfig, Rejection, registry, resilient};

    #[derive(Debug)]
    pub enum FetchError { Down, Rejected(Rejection) }
    impl From<Rejection> for FetchError {
        fn from(rejection: Rejection) -> Self { FetchError::Rejected(rejection) }
    }
    async fn call_host(_host: &str, _path: &str) -> Result<String, FetchError> { Err(FetchError::Down) }

    fn at_startup() -> Result<(), Box<dyn std::error::Error>> {
        let config = BreakerConfig::consecutive_failures(5);
        // At startup: `FamilyConfig::new(BreakerConfig::consecutive_failures(5))` for every key.
        registry().declare_breaker_family("upstream", FamilyConfig::new(config))?;

        // Per call: the breaker of `host`, so one bad host opens only its own breaker.
        #[resilient(breaker = "upstream", breaker_key = host, retries = 2)]
        async fn fetch(host: &str, path: &str) -> Result<String, FetchError> {
            call_host(host, path).await
        }
        Ok(())
    }
}

#[rustfmt::skip]
mod hedging {
    use resilient::{Rejection, resilient};

    #[derive(Debug)]
    pub struct Profile;
    #[derive(Debug)]
    pub enum LookupError { Down, Rejected(Rejection) }
    impl From<Rejection> for LookupError {
        fn from(rejection: Rejection) -> Self { LookupError::Rejected(rejection) }
    }
    async fn replica_lookup(_id: u64) -> Result<Profile, LookupError> { Err(LookupError::Down) }

    #[resilient(hedge = "50ms", hedges = 1, timeout = "2s", breaker = "replicas")]
    async fn lookup(id: u64) -> Result<Profile, LookupError> {
        replica_lookup(id).await
    }
}

#[rustfmt::skip]
mod call_context {
    use std::time::Duration;
    use resilient::{Policy, Rejection};

    #[derive(Debug)]
    pub struct Receipt;
    #[derive(Debug)]
    pub enum PaymentError { Declined, Rejected(Rejection) }
    impl From<Rejection> for PaymentError {
        fn from(rejection: Rejection) -> Self { PaymentError::Rejected(rejection) }
    }
    pub struct Payments;
    impl Payments {
        pub async fn charge(&self, _order: u64, _key: &str, _deadline: Option<Duration>) -> Result<Receipt, PaymentError> { Ok(Receipt) }
    }

    async fn checkout(policy: &Policy, payments: &Payments, order: u64) {
let receipt: Result<Receipt, PaymentError> = policy
    .call(|| async {
        let context = resilient::context().expect("inside an attempt");
        payments
            .charge(order, context.idempotency_key().as_str(), context.remaining())
            .await
    })
    .await;
    }
}

#[rustfmt::skip]
mod stale_while_failing {
    use std::time::Duration;
    use resilient::{Policy, Rejection};

    #[derive(Debug)]
    pub enum ModelError { Down, Rejected(Rejection) }
    impl From<Rejection> for ModelError {
        fn from(rejection: Rejection) -> Self { ModelError::Rejected(rejection) }
    }
    pub struct Model;
    impl Model {
        async fn score(&self, _user_id: u64) -> Result<f64, ModelError> { Err(ModelError::Down) }
    }

    async fn run(model: &Model, user_id: u64) -> Result<(), Box<dyn std::error::Error>> {
        let policy = Policy::builder("model::score")
            .cache(Duration::from_secs(300)) // serve values up to 5 minutes old
            .cache_capacity(10_000)          // keys kept (default 1 000)
            .build()?;

        // A success is stored under the key; an error is answered with the value stored under it.
        // `observe` tells the caller that the answer was stale, and how old, without changing types.
        let (score, stale_for) = resilient::cache::observe(
            policy.call_cached(user_id, || async move { model.score(user_id).await }),
        )
        .await;
        if let Some(age) = stale_for {
            tracing::info!(?age, "served a cached score");
        }
        Ok(())
    }
}

#[rustfmt::skip]
mod stale_attribute {
    use resilient::{Rejection, resilient};

    #[derive(Debug)]
    pub enum ModelError { Down, Rejected(Rejection) }
    impl From<Rejection> for ModelError {
        fn from(rejection: Rejection) -> Self { ModelError::Rejected(rejection) }
    }
    async fn model_score(_user_id: u64, _features: &str) -> Result<f64, ModelError> { Err(ModelError::Down) }
    fn default_score(_user_id: u64, _features: &str, _error: ModelError) -> Result<f64, ModelError> { Ok(0.5) }

    #[resilient(timeout = "800ms", breaker = "model", cache = "5m", fallback = default_score)]
    async fn score(user_id: u64, features: &str) -> Result<f64, ModelError> {
        model_score(user_id, features).await
    }
}
