//! Helpers shared by the integration tests: an error type that absorbs rejections, shortcuts
//! for driving a breaker by hand, a deterministic pseudo-random generator, and a tracing
//! subscriber that records events.

// Each test binary compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use resilient::{
    BreakerState, CircuitBreaker, Policy, PolicyBuilder, Registry, Rejection, Transient,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

pub const MS: Duration = Duration::from_millis(1);
pub const SEC: Duration = Duration::from_secs(1);

/// A dependency's error as a service would define it: its own failures, plus whatever
/// `resilient` refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TestError {
    /// The dependency failed; the number tells attempts apart.
    Down(u32),
    /// A failure that retrying cannot fix (a 404, a validation error).
    Fatal,
    /// Transient, and the dependency asked us to wait this long.
    RateLimited(Duration),
    Rejected(Rejection),
}

impl From<Rejection> for TestError {
    fn from(rejection: Rejection) -> Self {
        TestError::Rejected(rejection)
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for TestError {}

impl Transient for TestError {
    fn is_transient(&self) -> bool {
        !matches!(self, TestError::Fatal)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TestError::RateLimited(wait) => Some(*wait),
            TestError::Rejected(rejection) => rejection.retry_after(),
            _ => None,
        }
    }
}

impl TestError {
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            TestError::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// A policy in a registry of its own, for a test that needs nothing else from the registry.
pub fn build(builder: PolicyBuilder) -> Policy {
    builder
        .build_in(&Registry::new())
        .expect("the test's policy is valid")
}

/// One successful call through `breaker`; panics if the breaker refuses it.
pub fn succeed(breaker: &CircuitBreaker) {
    breaker
        .try_acquire()
        .expect("breaker should admit the call")
        .record_success();
}

/// One failed call through `breaker`; panics if the breaker refuses it.
pub fn fail(breaker: &CircuitBreaker) {
    breaker
        .try_acquire()
        .expect("breaker should admit the call")
        .record_failure();
}

/// Runs `n` failed calls through `breaker`.
pub fn fail_n(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        fail(breaker);
    }
}

/// Runs `n` successful calls through `breaker`.
pub fn succeed_n(breaker: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        succeed(breaker);
    }
}

/// The rejection `breaker` answers right now; panics if it admits the call.
pub fn rejection(breaker: &CircuitBreaker) -> Rejection {
    match breaker.try_acquire() {
        Ok(permit) => panic!(
            "expected a rejection from {:?}, got {permit:?}",
            breaker.state()
        ),
        Err(rejection) => rejection,
    }
}

/// Asserts that the next caller is refused because `breaker` is open, and that it lets a
/// probe through in exactly `left`. The caller comes first: some transitions (half-open past
/// `max_half_open`) happen only when someone asks.
pub fn assert_open_for(breaker: &CircuitBreaker, left: Duration) {
    assert_eq!(rejection(breaker).retry_after(), Some(left));
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// SplitMix64: the tests' own deterministic choices (which call to cancel, how long a call
/// takes), so every run takes the same path.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One event a [`Capture`] saw: its level, target, and message plus fields as text.
#[derive(Debug, Clone)]
pub struct Captured {
    pub level: Level,
    pub target: String,
    pub text: String,
}

/// What one thread's capture holds: its events, and the spans it opened.
#[derive(Default)]
struct Log {
    events: Vec<Captured>,
    spans: Vec<CapturedSpan>,
}

/// A span a [`Capture`] saw open.
#[derive(Debug, Clone)]
pub struct CapturedSpan {
    pub id: u64,
    pub name: &'static str,
    pub target: String,
    pub level: Level,
    pub fields: String,
}

thread_local! {
    static CAPTURING: RefCell<Option<Arc<Mutex<Log>>>> = const { RefCell::new(None) };
}

static NEXT_SPAN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Records the events of the current thread until dropped.
///
/// One process-wide subscriber routes each event to the capture of the thread that emitted it.
/// A scoped subscriber per test would be flaky: tracing caches each call site's interest when
/// it is first hit, and a test running in parallel with no subscriber would cache "never".
pub struct Capture {
    log: Arc<Mutex<Log>>,
}

impl Capture {
    pub fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Router)
                .expect("no other global subscriber in the test binaries");
        });
        let log = Arc::new(Mutex::new(Log::default()));
        CAPTURING.with(|capturing| *capturing.borrow_mut() = Some(log.clone()));
        Capture { log }
    }

    /// The events, each with `parent=<span id>` in its text when it had an explicit parent.
    pub fn events(&self) -> Vec<Captured> {
        self.log.lock().unwrap().events.clone()
    }

    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.log.lock().unwrap().spans.clone()
    }

    pub fn warnings(&self) -> Vec<Captured> {
        self.events()
            .into_iter()
            .filter(|event| event.level == Level::WARN)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.with(|capturing| *capturing.borrow_mut() = None);
    }
}

struct TextVisitor<'a>(&'a mut String);

impl Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

struct Router;

impl Subscriber for Router {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = NEXT_SPAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CAPTURING.with(|capturing| {
            if let Some(log) = capturing.borrow().as_ref() {
                let mut fields = String::new();
                attributes.record(&mut TextVisitor(&mut fields));
                let metadata = attributes.metadata();
                log.lock().unwrap().spans.push(CapturedSpan {
                    id,
                    name: metadata.name(),
                    target: metadata.target().to_owned(),
                    level: *metadata.level(),
                    fields,
                });
            }
        });
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        CAPTURING.with(|capturing| {
            if let Some(log) = capturing.borrow().as_ref() {
                let mut text = String::new();
                event.record(&mut TextVisitor(&mut text));
                if let Some(parent) = event.parent() {
                    use std::fmt::Write;
                    let _ = write!(text, "parent={}", parent.into_u64());
                }
                log.lock().unwrap().events.push(Captured {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_owned(),
                    text,
                });
            }
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Records when each attempt of a call started, on tokio's clock.
#[derive(Clone, Default)]
pub struct Attempts(Arc<Mutex<Vec<tokio::time::Instant>>>);

impl Attempts {
    /// Marks an attempt as started now; returns its number, from 1.
    pub fn start(&self) -> u32 {
        let mut started = self.0.lock().unwrap();
        started.push(tokio::time::Instant::now());
        started.len() as u32
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The time between one attempt's start and the next's.
    pub fn gaps(&self) -> Vec<Duration> {
        let started = self.0.lock().unwrap();
        started.windows(2).map(|w| w[1] - w[0]).collect()
    }
}
