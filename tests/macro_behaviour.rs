//! What `#[resilient]` does at run time: attempts, copies of arguments, classification,
//! timeouts, breakers, fallbacks and the call site's counters.
//!
//! Every breaker and call site here has a name no other test uses, since they all share the
//! process-wide registry.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilient::{BreakerConfig, Rejection, TimeoutKind, Transient, registry, resilient};
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
enum Error {
    Down,
    Parse(String),
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

#[derive(Debug)]
struct ParseFailure(&'static str);

impl From<ParseFailure> for Error {
    fn from(failure: ParseFailure) -> Self {
        Error::Parse(failure.0.to_owned())
    }
}

fn parse_step(attempt: u32) -> Result<(), ParseFailure> {
    if attempt == 0 {
        Err(ParseFailure("first attempt"))
    } else {
        Ok(())
    }
}

#[resilient(retries = 3, backoff = "1ms")]
async fn question_mark_and_return(attempts: &AtomicU32) -> Result<u32, Error> {
    let attempt = attempts.fetch_add(1, Ordering::SeqCst);
    // `?` converts through `From` and ends this attempt only.
    parse_step(attempt)?;
    if attempt == 1 {
        // So does `return`.
        return Err(Error::Down);
    }
    Ok(attempt)
}

#[tokio::test(start_paused = true)]
async fn question_mark_and_return_end_one_attempt_not_the_loop() {
    let attempts = AtomicU32::new(0);
    assert_eq!(question_mark_and_return(&attempts).await, Ok(2));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[resilient(retries = 2, backoff = "1ms")]
async fn always_down(attempts: &AtomicU32) -> Result<(), Error> {
    attempts.fetch_add(1, Ordering::SeqCst);
    Err(Error::Down)
}

#[tokio::test(start_paused = true)]
async fn retries_rerun_the_body_and_return_the_last_error() {
    let attempts = AtomicU32::new(0);
    assert_eq!(always_down(&attempts).await, Err(Error::Down));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "one attempt and two retries"
    );
}

/// Counts its clones in a counter of its own, so tests running in parallel do not mix.
#[derive(Debug)]
struct Counted<'a> {
    clones: &'a AtomicU32,
}

impl Clone for Counted<'_> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Counted {
            clones: self.clones,
        }
    }
}

/// Takes the argument by value, as a body that consumes it does.
fn consume(counted: Counted<'_>) -> usize {
    let Counted { clones: _ } = counted;
    1
}

#[resilient(timeout = "1s")]
async fn single_attempt(counted: Counted<'_>) -> Result<usize, Error> {
    Ok(consume(counted))
}

#[resilient(retries = 2, backoff = "1ms")]
async fn three_attempts(counted: Counted<'_>, attempts: &AtomicU32) -> Result<usize, Error> {
    let used = consume(counted);
    if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(Error::Down);
    }
    Ok(used)
}

#[resilient(fallback = keep_for_fallback_fallback)]
async fn keep_for_fallback(counted: Counted<'_>) -> Result<usize, Error> {
    consume(counted);
    Err(Error::Down)
}

fn keep_for_fallback_fallback(counted: Counted<'_>, _error: Error) -> Result<usize, Error> {
    Ok(consume(counted) + 10)
}

#[resilient(retries = 2, backoff = "1ms")]
async fn never_mentions_it(_unused: Counted<'_>, attempts: &AtomicU32) -> Result<(), Error> {
    if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(Error::Down);
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn by_value_arguments_are_cloned_only_when_needed() {
    let clones = AtomicU32::new(0);
    let attempts = AtomicU32::new(0);

    assert_eq!(single_attempt(Counted { clones: &clones }).await, Ok(1));
    assert_eq!(
        clones.load(Ordering::SeqCst),
        0,
        "one attempt, no fallback: moved"
    );

    assert_eq!(
        three_attempts(Counted { clones: &clones }, &attempts).await,
        Ok(1)
    );
    assert_eq!(clones.load(Ordering::SeqCst), 3, "one copy per attempt");

    clones.store(0, Ordering::SeqCst);
    assert_eq!(keep_for_fallback(Counted { clones: &clones }).await, Ok(11));
    assert_eq!(
        clones.load(Ordering::SeqCst),
        1,
        "the attempt's copy; the fallback gets the original"
    );

    clones.store(0, Ordering::SeqCst);
    attempts.store(0, Ordering::SeqCst);
    assert_eq!(
        never_mentions_it(Counted { clones: &clones }, &attempts).await,
        Ok(())
    );
    assert_eq!(
        clones.load(Ordering::SeqCst),
        0,
        "an argument the body never names is not copied"
    );
}

#[derive(Debug, Default)]
struct Account {
    attempts: u32,
    log: Vec<String>,
}

impl Account {
    #[resilient(retries = 3, backoff = "1ms")]
    async fn deposit(&mut self, note: &str) -> Result<u32, Error> {
        self.attempts += 1;
        self.log.push(format!("{note} #{}", self.attempts));
        if self.attempts < 3 {
            return Err(Error::Down);
        }
        Ok(self.attempts)
    }
}

#[tokio::test(start_paused = true)]
async fn mut_self_is_reborrowed_for_each_attempt() {
    let mut account = Account::default();
    assert_eq!(account.deposit("pay").await, Ok(3));
    assert_eq!(account.log, ["pay #1", "pay #2", "pay #3"]);
}

#[resilient(fallback = plain_price_fallback)]
async fn price_with_plain_fallback(sku: &str, quantity: u32) -> Result<String, Error> {
    let _ = (sku, quantity);
    Err(Error::Down)
}

fn plain_price_fallback(sku: &str, quantity: u32, error: Error) -> Result<String, Error> {
    Ok(format!("cached {sku} x{quantity} after {error:?}"))
}

#[resilient(retries = 1, backoff = "1ms", fallback = async_price_fallback)]
async fn price_with_async_fallback(sku: String) -> Result<String, Error> {
    Err(Error::Parse(sku))
}

async fn async_price_fallback(sku: String, error: Error) -> Result<String, Error> {
    tokio::task::yield_now().await;
    Ok(format!("cached {sku} after {error:?}"))
}

#[tokio::test(start_paused = true)]
async fn fallbacks_get_the_arguments_and_the_error() {
    assert_eq!(
        price_with_plain_fallback("apple", 3).await.unwrap(),
        "cached apple x3 after Down"
    );
    assert_eq!(
        price_with_async_fallback("pear".to_owned()).await.unwrap(),
        "cached pear after Parse(\"pear\")"
    );
    let metrics = registry().call_site_metrics();
    let site = metrics
        .iter()
        .find(|site| site.name.as_ref() == "macro_behaviour::price_with_async_fallback")
        .expect("the default name is the module path and the function name");
    assert_eq!((site.calls, site.retries, site.fallbacks), (1, 1, 1));
}

#[resilient(name = "macro_behaviour::announced_fallback", fallback = plain_price_fallback)]
async fn announced_fallback(sku: &str, quantity: u32) -> Result<String, Error> {
    let _ = (sku, quantity);
    Err(Error::Down)
}

#[tokio::test(start_paused = true)]
async fn a_served_fallback_is_announced_to_the_listeners() {
    let mut events = registry().subscribe();
    assert!(announced_fallback("fig", 1).await.is_ok());
    loop {
        match events.try_recv().expect("a fallback event") {
            resilient::event::Event::Fallback { call_site, error }
                if &*call_site == "macro_behaviour::announced_fallback" =>
            {
                assert!(error.ends_with("Error"), "{error}");
                break;
            }
            _ => continue, // other tests share the global registry
        }
    }
}

#[derive(Debug, PartialEq)]
enum ApiError {
    NotFound,
    Unavailable,
    Rejected(Rejection),
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::Rejected(rejection)
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        !matches!(self, ApiError::NotFound)
    }
}

#[resilient(retries = 3, backoff = "1ms")]
async fn lookup(attempts: &AtomicU32, error: fn() -> ApiError) -> Result<(), ApiError> {
    attempts.fetch_add(1, Ordering::SeqCst);
    Err(error())
}

fn only_not_found(error: &ApiError) -> bool {
    matches!(error, ApiError::NotFound)
}

#[resilient(retries = 3, backoff = "1ms", retry_if = only_not_found)]
async fn lookup_with_predicate(
    attempts: &AtomicU32,
    error: fn() -> ApiError,
) -> Result<(), ApiError> {
    attempts.fetch_add(1, Ordering::SeqCst);
    Err(error())
}

#[tokio::test(start_paused = true)]
async fn transient_decides_and_retry_if_overrides_it() {
    let attempts = AtomicU32::new(0);
    let _ = lookup(&attempts, || ApiError::NotFound).await;
    assert_eq!(
        attempts.swap(0, Ordering::SeqCst),
        1,
        "not transient: no retry"
    );
    let _ = lookup(&attempts, || ApiError::Unavailable).await;
    assert_eq!(
        attempts.swap(0, Ordering::SeqCst),
        4,
        "transient: every retry"
    );

    let _ = lookup_with_predicate(&attempts, || ApiError::Unavailable).await;
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 1, "retry_if says no");
    let _ = lookup_with_predicate(&attempts, || ApiError::NotFound).await;
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 4, "retry_if says yes");
}

#[resilient(retries = 3, backoff = "1ms")]
async fn io_call(attempts: &AtomicU32, kind: std::io::ErrorKind) -> std::io::Result<()> {
    attempts.fetch_add(1, Ordering::SeqCst);
    Err(kind.into())
}

#[tokio::test(start_paused = true)]
async fn io_errors_are_classified_by_kind() {
    let attempts = AtomicU32::new(0);
    let denied = io_call(&attempts, std::io::ErrorKind::PermissionDenied).await;
    assert_eq!(
        denied.unwrap_err().kind(),
        std::io::ErrorKind::PermissionDenied
    );
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 1);
    let _ = io_call(&attempts, std::io::ErrorKind::ConnectionReset).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[resilient(timeout = "100ms", retries = 1, backoff = "10ms", jitter = "none")]
async fn hangs() -> Result<(), Error> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_timed_out() {
    let started = Instant::now();
    let result = hangs().await;
    assert!(
        matches!(
            result,
            Err(Error::Rejected(Rejection::Timeout {
                kind: TimeoutKind::Attempt,
                ..
            }))
        ),
        "{result:?}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(210),
        "100 + 10 backoff + 100"
    );
}

#[resilient(timeout = "100ms", total_timeout = "250ms", retries = 5, backoff = "50ms", jitter = none)]
async fn hangs_within_a_total() -> Result<(), Error> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_bounds_the_whole_call() {
    let started = Instant::now();
    let result = hangs_within_a_total().await;
    assert!(
        matches!(result, Err(Error::Rejected(Rejection::Timeout { .. }))),
        "{result:?}"
    );
    // 100 ms, a 50 ms backoff, then 100 ms, which the 250 ms total cuts exactly.
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[resilient(breaker = "macro_behaviour_inventory", fallback = stock_fallback)]
async fn stock(runs: &AtomicU32, healthy: bool) -> Result<u32, Error> {
    runs.fetch_add(1, Ordering::SeqCst);
    if healthy { Ok(7) } else { Err(Error::Down) }
}

fn stock_fallback(_runs: &AtomicU32, _healthy: bool, error: Error) -> Result<u32, Error> {
    match error {
        Error::Rejected(Rejection::CircuitOpen { .. }) => Ok(0),
        other => Err(other),
    }
}

#[tokio::test(start_paused = true)]
async fn the_named_breaker_records_attempts_and_rejections_reach_the_fallback() {
    registry()
        .declare_breaker(
            "macro_behaviour_inventory",
            BreakerConfig::consecutive_failures(2).with_open_wait(Duration::from_secs(30)),
        )
        .unwrap();
    let runs = AtomicU32::new(0);
    assert_eq!(stock(&runs, true).await, Ok(7));
    assert_eq!(stock(&runs, false).await, Err(Error::Down));
    assert_eq!(stock(&runs, false).await, Err(Error::Down));
    assert_eq!(
        stock(&runs, true).await,
        Ok(0),
        "open: served by the fallback"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "the open breaker ran nothing"
    );
}

#[resilient(name = "macro_behaviour::custom_name", timeout = "1s")]
async fn renamed() -> Result<(), Error> {
    Ok(())
}

#[tokio::test]
async fn the_name_key_names_the_call_site() {
    renamed().await.unwrap();
    renamed().await.unwrap();
    let metrics = registry().call_site_metrics();
    let site = metrics
        .iter()
        .find(|site| site.name.as_ref() == "macro_behaviour::custom_name")
        .expect("registered under its name");
    assert_eq!(site.calls, 2);
}

#[test]
fn every_annotated_function_is_listed_before_it_runs() {
    let sites = registry().call_sites();
    let stock = sites
        .iter()
        .find(|site| site.info.name == "macro_behaviour::stock")
        .expect("registered at link time");
    assert_eq!(stock.info.breaker, Some("macro_behaviour_inventory"));
    assert_eq!(stock.info.bulkhead, None);
    assert_eq!(
        stock.info.options,
        "breaker = \"macro_behaviour_inventory\", fallback = stock_fallback"
    );
    assert!(
        stock.info.file.ends_with("macro_behaviour.rs"),
        "{}",
        stock.info.file
    );
    assert!(
        sites
            .iter()
            .any(|site| site.info.name == "macro_behaviour::custom_name")
    );
}
