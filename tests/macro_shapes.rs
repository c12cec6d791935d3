//! Every function shape `#[resilient]` supports compiles, runs, and keeps its future `Send`
//! whenever the un-annotated function's future is.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use resilient::{Rejection, resilient};

#[derive(Debug, PartialEq, thiserror::Error)]
enum Error {
    #[error("down")]
    Down,
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

fn assert_send<T: Send>(_: &T) {}

/// Fails its first call, then succeeds: proves each shape really retries.
#[derive(Debug, Default)]
struct Flaky(AtomicU32);

impl Flaky {
    fn check(&self) -> Result<u32, Error> {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => Err(Error::Down),
            n => Ok(n + 1),
        }
    }
}

// Free functions: generics, lifetimes, where clauses, `impl Trait` in both positions.

#[resilient(retries = 1, backoff = "1ms")]
async fn free(flaky: &Flaky) -> Result<u32, Error> {
    flaky.check()
}

#[resilient(retries = 1, backoff = "1ms")]
async fn generic<'a, T, K>(flaky: &'a Flaky, items: &'a [T], key: K) -> Result<&'a T, Error>
where
    T: Debug + Sync,
    K: Into<usize> + Clone + Send,
{
    flaky.check()?;
    items.get(key.into()).ok_or(Error::Down)
}

#[resilient(retries = 1, backoff = "1ms")]
async fn impl_trait_argument(
    flaky: &Flaky,
    label: impl AsRef<str> + Clone + Send,
) -> Result<String, Error> {
    flaky.check()?;
    Ok(label.as_ref().to_uppercase())
}

#[resilient(retries = 1, backoff = "1ms")]
async fn impl_trait_return(flaky: &Flaky) -> Result<impl Display, Error> {
    flaky.check()
}

#[resilient(retries = 1, backoff = "1ms")]
async fn destructured(flaky: &Flaky, (left, right): (String, u32)) -> Result<String, Error> {
    flaky.check()?;
    Ok(format!("{left}{right}"))
}

#[resilient(retries = 1, backoff = "1ms")]
async fn r#type(flaky: &Flaky) -> Result<u32, Error> {
    flaky.check()
}

#[resilient(retries = 1, backoff = "1ms")]
async fn mutable_argument(flaky: &Flaky, mut text: String) -> Result<String, Error> {
    text.push('!');
    flaky.check()?;
    Ok(text)
}

#[resilient(retries = 1, backoff = "1ms")]
async fn io_alias(flaky: &Flaky) -> std::io::Result<u32> {
    flaky
        .check()
        .map_err(|_| std::io::ErrorKind::ConnectionReset.into())
}

#[resilient(retries = 1, backoff = "1ms")]
async fn anyhow_alias(flaky: &Flaky) -> anyhow::Result<u32> {
    Ok(flaky.check()?)
}

/// Visibility, docs and other attributes stay.
#[resilient(timeout = "1s")]
#[must_use = "a price is worth reading"]
#[allow(clippy::unused_async)]
pub async fn documented() -> Result<u32, Error> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn free_functions() {
    assert_eq!(free(&Flaky::default()).await, Ok(2));
    assert_eq!(generic(&Flaky::default(), &["a", "b"], 1u8).await, Ok(&"b"));
    assert_eq!(
        impl_trait_argument(&Flaky::default(), "ab").await.unwrap(),
        "AB"
    );
    assert_eq!(
        impl_trait_return(&Flaky::default())
            .await
            .unwrap()
            .to_string(),
        "2"
    );
    assert_eq!(
        destructured(&Flaky::default(), ("x".into(), 1))
            .await
            .unwrap(),
        "x1"
    );
    assert_eq!(r#type(&Flaky::default()).await, Ok(2));
    assert_eq!(
        mutable_argument(&Flaky::default(), "hi".into())
            .await
            .unwrap(),
        "hi!"
    );
    assert_eq!(io_alias(&Flaky::default()).await.unwrap(), 2);
    assert_eq!(anyhow_alias(&Flaky::default()).await.unwrap(), 2);
    assert_eq!(documented().await, Ok(1));
}

// Methods: every receiver.

#[derive(Debug, Default, Clone)]
struct Service {
    flaky: Arc<Flaky>,
    count: u32,
}

impl Service {
    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_ref(&self) -> Result<u32, Error> {
        self.flaky.check()
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_mut(&mut self) -> Result<u32, Error> {
        self.count += 1;
        self.flaky.check()
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_value(self) -> Result<Self, Error> {
        self.flaky.check()?;
        Ok(self)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_mut_value(mut self) -> Result<u32, Error> {
        self.count += 10;
        self.flaky.check()?;
        Ok(self.count)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn by_arc(self: Arc<Self>) -> Result<u32, Error> {
        let me = self;
        me.flaky.check()
    }

    #[resilient(retries = 1, backoff = "1ms", fallback = Self::cached)]
    async fn with_method_fallback(&self, key: &str) -> Result<String, Error> {
        let _ = key;
        Err(Error::Down)
    }

    #[allow(clippy::unused_async)]
    async fn cached(&self, key: &str, error: Error) -> Result<String, Error> {
        Ok(format!("{key}: cached after {error}, count {}", self.count))
    }

    /// In a method, a bare name is a method of `Self`.
    #[resilient(fallback = cached)]
    async fn bare_name_fallback(&self, key: &str) -> Result<String, Error> {
        let _ = key;
        Err(Error::Down)
    }

    /// A free function is written as a path.
    #[resilient(fallback = self::free_fallback)]
    async fn free_fallback_in_method(&self, key: &str) -> Result<String, Error> {
        let _ = key;
        Err(Error::Down)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn generic_method<T: Clone + Send + Sync>(&self, value: T) -> Result<T, Error> {
        self.flaky.check()?;
        Ok(value)
    }
}

fn free_fallback(service: &Service, key: &str, error: Error) -> Result<String, Error> {
    Ok(format!(
        "{key}: free fallback after {error}, count {}",
        service.count
    ))
}

#[tokio::test(start_paused = true)]
async fn methods() {
    let service = Service::default();
    assert_eq!(service.by_ref().await, Ok(2));
    let mut service2 = Service::default();
    assert_eq!(service2.by_mut().await, Ok(2));
    assert_eq!(service2.count, 2, "both attempts mutated the same service");
    assert!(Service::default().by_value().await.is_ok());
    assert_eq!(
        Service::default().by_mut_value().await,
        Ok(10),
        "each attempt has its own copy"
    );
    assert_eq!(Arc::new(Service::default()).by_arc().await, Ok(2));
    assert_eq!(
        service.with_method_fallback("k").await.unwrap(),
        "k: cached after down, count 0"
    );
    assert_eq!(
        service.bare_name_fallback("b").await.unwrap(),
        "b: cached after down, count 0"
    );
    assert_eq!(
        service.free_fallback_in_method("f").await.unwrap(),
        "f: free fallback after down, count 0"
    );
    assert_eq!(Service::default().generic_method(5u8).await, Ok(5));
}

/// A generic type: the call site's `static` is shared by every `T`, which it never names.
struct Repository<T>(T);

impl<T: Clone + Send + Sync> Repository<T> {
    #[resilient(retries = 1, backoff = "1ms")]
    async fn get(&self, flaky: &Flaky) -> Result<T, Error> {
        flaky.check()?;
        Ok(self.0.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn methods_of_generic_types() {
    assert_eq!(Repository(7u8).get(&Flaky::default()).await, Ok(7));
    assert_eq!(Repository("s").get(&Flaky::default()).await, Ok("s"));
}

// Async fns in trait impls, and default bodies.

trait Fetch {
    async fn fetch(&self, key: &str) -> Result<String, Error>;

    #[resilient(retries = 1, backoff = "1ms")]
    async fn fetch_twice(&self, key: &str) -> Result<String, Error> {
        let first = self.fetch(key).await?;
        Ok(first.repeat(2))
    }
}

impl Fetch for Flaky {
    #[resilient(retries = 1, backoff = "1ms")]
    async fn fetch(&self, key: &str) -> Result<String, Error> {
        self.check()?;
        Ok(key.to_owned())
    }
}

#[tokio::test(start_paused = true)]
async fn trait_impls_and_default_bodies() {
    assert_eq!(Flaky::default().fetch("a").await.unwrap(), "a");
    assert_eq!(Flaky::default().fetch_twice("b").await.unwrap(), "bb");
}

// `#[async_trait]`, whose expansion runs first.

#[async_trait]
trait Store: Send + Sync {
    async fn get(&self, key: &str) -> Result<String, Error>;
    async fn put(&mut self, key: String, value: u32) -> Result<u32, Error>;
    async fn pair(&self, pair: (u32, u32)) -> Result<u32, Error>;
}

#[derive(Default)]
struct Memory {
    flaky: Flaky,
    writes: u32,
}

impl Memory {
    fn fallback_get(&self, key: &str, error: Error) -> Result<String, Error> {
        Ok(format!(
            "{key} from cache ({error}), {} writes",
            self.writes
        ))
    }
}

#[async_trait]
impl Store for Memory {
    #[resilient(retries = 1, backoff = "1ms", fallback = Self::fallback_get)]
    async fn get(&self, key: &str) -> Result<String, Error> {
        let _ = key;
        Err(Error::Down)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn put(&mut self, key: String, value: u32) -> Result<u32, Error> {
        self.writes += 1;
        self.flaky.check()?;
        Ok(u32::try_from(key.len()).unwrap_or(0) + value)
    }

    #[resilient(retries = 1, backoff = "1ms")]
    async fn pair(&self, (a, b): (u32, u32)) -> Result<u32, Error> {
        self.flaky.check()?;
        Ok(a + b)
    }
}

#[tokio::test(start_paused = true)]
async fn async_trait_methods() {
    let mut memory = Memory::default();
    assert_eq!(
        memory.get("k").await.unwrap(),
        "k from cache (down), 0 writes"
    );
    assert_eq!(memory.put("abc".into(), 1).await, Ok(4));
    assert_eq!(memory.writes, 2);
    assert_eq!(memory.pair((1, 2)).await, Ok(3));
    let store: Box<dyn Store> = Box::new(Memory::default());
    assert_eq!(
        store.pair((2, 2)).await,
        Ok(4),
        "through a trait object too"
    );
}

#[async_trait]
trait Consume {
    async fn consume(self) -> Result<u32, Error>;
}

#[async_trait]
impl Consume for Service {
    #[resilient(retries = 1, backoff = "1ms")]
    async fn consume(mut self) -> Result<u32, Error> {
        self.count += 1;
        self.flaky.check()?;
        Ok(self.count)
    }
}

#[tokio::test(start_paused = true)]
async fn async_trait_by_value_receiver() {
    assert_eq!(
        Service::default().consume().await,
        Ok(1),
        "each attempt has its own copy"
    );
}

// `#[tracing::instrument]`, stacked in both orders.

#[resilient(retries = 1, backoff = "1ms")]
#[tracing::instrument(skip(flaky))]
async fn instrumented_inside(flaky: &Flaky, id: u32) -> Result<u32, Error> {
    tracing::info!(id, "attempt");
    flaky.check()
}

#[tracing::instrument(skip(flaky), err)]
#[resilient(retries = 1, backoff = "1ms")]
async fn instrumented_outside(flaky: &Flaky, id: String) -> Result<u32, Error> {
    tracing::info!(%id, "attempt");
    flaky.check()
}

impl Service {
    #[tracing::instrument(skip(self))]
    #[resilient(retries = 1, backoff = "1ms")]
    async fn instrumented_method(&mut self, id: u32) -> Result<u32, Error> {
        self.count += id;
        self.flaky.check()
    }
}

#[tokio::test(start_paused = true)]
async fn stacked_with_instrument() {
    assert_eq!(instrumented_inside(&Flaky::default(), 1).await, Ok(2));
    assert_eq!(
        instrumented_outside(&Flaky::default(), "a".into()).await,
        Ok(2)
    );
    let mut service = Service::default();
    assert_eq!(service.instrumented_method(5).await, Ok(2));
    assert_eq!(service.count, 10);
}

// The futures stay `Send`.

#[test]
fn futures_are_send() {
    let flaky = Flaky::default();
    let mut service = Service::default();
    let mut memory = Memory::default();
    assert_send(&free(&flaky));
    assert_send(&generic(&flaky, &[1u8], 0u8));
    assert_send(&impl_trait_argument(&flaky, "x"));
    assert_send(&destructured(&flaky, (String::new(), 0)));
    assert_send(&mutable_argument(&flaky, String::new()));
    assert_send(&anyhow_alias(&flaky));
    assert_send(&service.by_ref());
    assert_send(&service.by_mut());
    assert_send(&Service::default().by_value());
    assert_send(&Arc::new(Service::default()).by_arc());
    assert_send(&service.with_method_fallback("k"));
    assert_send(&flaky.fetch("k"));
    assert_send(&memory.put(String::new(), 1));
    assert_send(&instrumented_inside(&flaky, 1));
    assert_send(&instrumented_outside(&flaky, String::new()));
}

/// A by-value argument that is `Send` but not `Sync`: the attempt owns its copy rather than
/// borrowing the original, so the future stays `Send`.
#[resilient(retries = 1, backoff = "1ms")]
async fn send_not_sync(cell: std::cell::Cell<u32>) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(cell.get())
}

#[test]
fn a_send_but_not_sync_argument_keeps_the_future_send() {
    assert_send(&send_not_sync(std::cell::Cell::new(1)));
}

// Functions and attribute values written by `macro_rules!`.

macro_rules! getter {
    ($name:ident, $timeout:expr) => {
        #[resilient(timeout = $timeout, fallback = getter_fallback)]
        async fn $name(flaky: &Flaky, key: String) -> Result<String, Error> {
            flaky.check()?;
            Ok(key)
        }
    };
}

getter!(from_macro, "2s");

fn getter_fallback(_flaky: &Flaky, key: String, error: Error) -> Result<String, Error> {
    Ok(format!("{key} after {error}"))
}

#[tokio::test(start_paused = true)]
async fn written_by_macro_rules() {
    let flaky = Flaky::default();
    assert_eq!(
        from_macro(&flaky, "k".into()).await.unwrap(),
        "k after down"
    );
    assert_eq!(from_macro(&flaky, "k".into()).await.unwrap(), "k");
}

// What the compile errors of `tests/ui/stacking` and `tests/ui/types` suggest instead.

/// `#[resilient]` above `#[tokio::test]` (or `#[tokio::main]`) wraps the async body first.
#[resilient(retries = 1, backoff = "1ms")]
#[tokio::test(start_paused = true)]
async fn above_tokio_test() -> Result<(), Error> {
    assert_eq!(free(&Flaky::default()).await, Ok(2));
    Ok(())
}

/// A generic error type bounded by `'static`.
#[resilient(retries = 1, backoff = "1ms")]
async fn generic_error<E: From<Rejection> + 'static>(
    flaky: &Flaky,
    error: fn() -> E,
) -> Result<u32, E> {
    flaky.check().map_err(|_| error())
}

/// The boxed error the `String` error's message suggests: it has `From<Rejection>`.
#[resilient(retries = 1, backoff = "1ms")]
async fn boxed_error(flaky: &Flaky) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(flaky.check()?)
}

impl Service {
    /// A borrow of `&mut self` returned from a single attempt.
    #[resilient(timeout = "1s")]
    async fn borrowed_from_mut_self(&mut self) -> Result<&u32, Error> {
        self.count += 1;
        Ok(&self.count)
    }
}

#[tokio::test(start_paused = true)]
async fn the_suggested_alternatives_compile_and_run() {
    assert_eq!(
        generic_error(&Flaky::default(), || Error::Down).await,
        Ok(2)
    );
    assert_eq!(boxed_error(&Flaky::default()).await.unwrap(), 2);
    assert_eq!(Service::default().borrowed_from_mut_self().await, Ok(&1));
}

// Hedged functions: each attempt (hedges included) owns its copies, so every shape whose
// arguments can be shared or cloned hedges; `&mut` ones are refused (tests/ui/rules).

#[resilient(retries = 1, backoff = "1ms", hedge = "50ms")]
async fn hedged_generic<'a, T, K>(flaky: &'a Flaky, items: &'a [T], key: K) -> Result<&'a T, Error>
where
    T: Debug + Sync,
    K: Into<usize> + Clone + Send,
{
    flaky.check()?;
    items.get(key.into()).ok_or(Error::Down)
}

#[resilient(hedge = "50ms", hedges = 2)]
async fn hedged_by_value(
    flaky: &Flaky,
    mut text: String,
    (left, right): (u8, u8),
) -> Result<String, Error> {
    text.push(char::from(b'a' + left + right));
    flaky.check()?;
    Ok(text)
}

impl Service {
    #[resilient(retries = 1, backoff = "1ms", hedge = "50ms")]
    async fn hedged_by_ref(&self) -> Result<u32, Error> {
        self.flaky.check()
    }

    #[resilient(retries = 1, backoff = "1ms", hedge = "50ms")]
    async fn hedged_by_arc(self: Arc<Self>, key: &str) -> Result<String, Error> {
        self.flaky.check()?;
        Ok(key.to_owned())
    }
}

#[tokio::test(start_paused = true)]
async fn hedged_shapes_run_and_stay_send() {
    let flaky = Flaky::default();
    assert_eq!(hedged_generic(&flaky, &[7u8, 8], 1u8).await, Ok(&8));
    let once = Flaky::default();
    assert_eq!(
        hedged_by_value(&once, "x".to_owned(), (1, 2)).await,
        Err(Error::Down),
        "no retries: the first attempt's failure"
    );
    let service = Service::default();
    assert_eq!(service.hedged_by_ref().await, Ok(2));
    let shared = Arc::new(Service::default());
    assert_eq!(shared.clone().hedged_by_arc("k").await, Ok("k".to_owned()));
    assert_send(&hedged_generic(&flaky, &[1u8], 0u8));
    assert_send(&hedged_by_value(&flaky, String::new(), (0, 0)));
    assert_send(&service.hedged_by_ref());
    assert_send(&shared.hedged_by_arc("k"));
}
