//! A registry standing in for the global one while a future runs: how a test gives annotated
//! functions breakers, bulkheads and call-site settings of their own.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use super::Registry;

thread_local! {
    /// The registry of the scope being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Registry>>> = const { RefCell::new(None) };
}

/// Set by the first scope ever entered, so that a service that never scopes pays one relaxed
/// load per call, not a thread-local lookup.
static SCOPES_USED: AtomicBool = AtomicBool::new(false);

/// The registry of the scope being polled, if any.
pub(crate) fn scoped() -> Option<Arc<Registry>> {
    if !SCOPES_USED.load(Ordering::Relaxed) {
        return None;
    }
    CURRENT.with(|current| current.borrow().clone())
}

impl Registry {
    /// Runs `future` with this registry in place of the global one for every `#[resilient]`
    /// call it polls: their breakers, bulkheads, call-site counters and configuration-file
    /// settings come from this registry. Meant for tests, which can then run in parallel
    /// with the same breaker names:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use resilient::{BreakerConfig, Registry};
    ///
    /// # async fn test() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Arc::new(Registry::new());
    /// registry.declare_breaker("payments", BreakerConfig::consecutive_failures(1))?;
    /// registry.scope(async {
    ///     // call annotated functions here; `breaker = "payments"` is the one above
    /// }).await;
    /// # Ok(()) }
    /// ```
    ///
    /// The scope covers what the future itself polls: a task it spawns runs outside it, unless
    /// that task's future is scoped too. A call site builds one policy per registry it runs
    /// in and keeps it for the life of the process (a few hundred bytes), which is why this is
    /// for tests and not for per-request registries.
    pub fn scope<F: Future>(self: &Arc<Self>, future: F) -> Scoped<F> {
        SCOPES_USED.store(true, Ordering::Relaxed);
        Scoped {
            registry: self.clone(),
            future: Box::pin(future),
        }
    }
}

/// A future running with its own [`Registry`]; see [`Registry::scope`].
#[must_use = "futures do nothing unless polled"]
pub struct Scoped<F> {
    registry: Arc<Registry>,
    future: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _restore = Enter::new(this.registry.clone());
        this.future.as_mut().poll(cx)
    }
}

/// Makes a registry current for one poll; the one before comes back on drop, also when the
/// poll panics, and nested scopes restore each other in order.
struct Enter {
    previous: Option<Arc<Registry>>,
}

impl Enter {
    fn new(registry: Arc<Registry>) -> Enter {
        let previous = CURRENT.with(|current| current.borrow_mut().replace(registry));
        Enter { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}
