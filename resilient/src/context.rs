//! The call context: inside an attempt, which attempt it is, how long the whole call has left,
//! and the call's idempotency key.
//!
//! A retried mutation must be applied once. The body of a [`Policy::call`](crate::Policy::call)
//! attempt reads [`context()`] and sends the key with the request (an `Idempotency-Key`
//! header, a column of a deduplicated-operations table): every retry of one logical call sends
//! the same key, so a dependency that applied the write and failed before answering can
//! recognise the retry. The remaining time can be passed on as the dependency's own deadline
//! (a gRPC deadline, a SQL statement timeout).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = resilient::Policy::builder("payments").retries(2).build()?;
//! let sent = policy
//!     .call(|| async {
//!         let context = resilient::context().expect("inside an attempt");
//!         // Send `context.idempotency_key()` with the request.
//!         Ok::<_, resilient::Rejection>(context.idempotency_key().to_string())
//!     })
//!     .await?;
//! assert_eq!(sent.len(), 36);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! The context is set while the attempt's future is polled, on the polling thread, the way a
//! `tracing` span is entered: work the body spawns onto other tasks does not see it (pass the
//! [`CallContext`] along instead).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// The longest key [`IdempotencyKey::new`] accepts, in bytes: longer than any key a service
/// would send, short enough for any header or column.
pub const MAX_KEY_LEN: usize = 255;

/// Names one logical call across all of its attempts: generated (a random UUID, version 4)
/// the first time an attempt asks for it, or supplied by the caller
/// ([`Policy::call_with_key`](crate::Policy::call_with_key)).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Arc<str>);

impl IdempotencyKey {
    /// A key of the caller's own (a request id it already has, a hash of the operation).
    /// Refuses an empty key, one longer than [`MAX_KEY_LEN`] bytes, and one with control
    /// characters (it must fit in a header).
    pub fn new(key: &str) -> Result<Self, InvalidKey> {
        if key.is_empty() {
            return Err(InvalidKey::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(InvalidKey::TooLong { len: key.len() });
        }
        if key.chars().any(char::is_control) {
            return Err(InvalidKey::ControlCharacter);
        }
        Ok(IdempotencyKey(key.into()))
    }

    /// A new random key: a UUID (version 4) in its hyphenated form.
    pub fn generate() -> Self {
        let uuid = uuid::Uuid::new_v4();
        IdempotencyKey(uuid.hyphenated().to_string().into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey")
            .field(&self.as_str())
            .finish()
    }
}

/// Why [`IdempotencyKey::new`] refused a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidKey {
    /// The key is empty: every call would share it.
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The key holds a control character (a newline, for instance), which no header allows.
    ControlCharacter,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidKey::Empty => f.write_str("an idempotency key cannot be empty"),
            InvalidKey::TooLong { len } => write!(
                f,
                "an idempotency key is at most {MAX_KEY_LEN} bytes long, not {len}"
            ),
            InvalidKey::ControlCharacter => {
                f.write_str("an idempotency key cannot hold control characters")
            }
        }
    }
}

impl std::error::Error for InvalidKey {}

/// What an attempt knows about the call it belongs to; see [`context()`].
#[derive(Debug, Clone)]
pub struct CallContext {
    attempt: u32,
    remaining: Option<Duration>,
    key: IdempotencyKey,
}

impl CallContext {
    /// This attempt's number: 1 for the first, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The time left before the call's total timeout, when it has one (zero once it has
    /// passed), as of [`context()`]'s call: pass it on as the dependency's own deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.remaining
    }

    /// The call's idempotency key: the same on every attempt of one call.
    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.key
    }
}

/// The context of the attempt being polled on this thread, or `None` outside any attempt
/// (never a panic, even from a thread-local destructor). In nested calls, the innermost
/// attempt's.
pub fn context() -> Option<CallContext> {
    // `try_with`: during thread teardown the slot may be gone, and that is "no context".
    CURRENT
        .try_with(|current| {
            let mut frame = current.take()?;
            let key = frame
                .key
                .get_or_insert_with(IdempotencyKey::generate)
                .clone();
            let context = CallContext {
                attempt: frame.attempt,
                remaining: frame
                    .deadline
                    .map(|deadline| deadline.saturating_duration_since(Instant::now())),
                key,
            };
            current.set(Some(frame));
            Some(context)
        })
        .ok()
        .flatten()
}

/// What [`context()`] reads while an attempt is polled.
struct Frame {
    attempt: u32,
    deadline: Option<Instant>,
    /// `None` until someone asks: most calls never do, and a random key costs a system call.
    key: Option<IdempotencyKey>,
}

thread_local! {
    static CURRENT: Cell<Option<Frame>> = const { Cell::new(None) };
}

/// One logical call: its deadline and its key, shared by its attempts.
#[derive(Debug, Default)]
pub(crate) struct CallScope {
    key: OnceLock<IdempotencyKey>,
    deadline: Option<Instant>,
}

impl CallScope {
    /// A call with the caller's key, or one generated on first use, and its total deadline.
    #[inline]
    pub(crate) fn new(key: Option<IdempotencyKey>, deadline: Option<Instant>) -> Self {
        CallScope {
            key: key.map_or_else(OnceLock::new, OnceLock::from),
            deadline,
        }
    }

    /// The call's total deadline.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Gives the call a key of the caller's, unless an attempt already asked for one.
    pub(crate) fn set_key(&mut self, key: IdempotencyKey) {
        if self.key.get().is_none() {
            self.key = OnceLock::from(key);
        }
    }

    /// `future`, run as attempt `number` of this call: [`context()`] sees it while it is
    /// polled.
    pub(crate) fn attempt<F: Future>(&self, number: u32, future: F) -> WithContext<'_, F> {
        WithContext {
            scope: self,
            number,
            future,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future polled with its call's context current; see [`CallScope::attempt`].
    pub(crate) struct WithContext<'s, F> {
        scope: &'s CallScope,
        number: u32,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for WithContext<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let scope = *this.scope;
        let frame = Frame {
            attempt: *this.number,
            deadline: scope.deadline,
            key: scope.key.get().cloned(),
        };
        let mut future = this.future;
        // One thread-local access for the whole poll: the guard restores the outer frame
        // through the same reference.
        let polled = CURRENT.try_with(|current| {
            let _entered = Entered {
                current,
                scope,
                outer: current.replace(Some(frame)),
            };
            future.as_mut().poll(cx)
        });
        match polled {
            Ok(polled) => polled,
            // The thread-local is gone (thread teardown): no context, as outside a call.
            Err(_) => future.poll(cx),
        }
    }
}

/// Restores the outer context when the poll returns, or unwinds: a panicking body must not
/// leave its context current for whatever the thread polls next.
struct Entered<'s> {
    current: &'s Cell<Option<Frame>>,
    scope: &'s CallScope,
    outer: Option<Frame>,
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let ours = self.current.replace(self.outer.take());
        // A key generated during this poll belongs to the whole call: later attempts reuse it.
        if let Some(key) = ours.and_then(|frame| frame.key) {
            let _ = self.scope.key.set(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_any_attempt_there_is_no_context() {
        assert!(context().is_none());
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(IdempotencyKey::new(""), Err(InvalidKey::Empty));
        assert_eq!(
            IdempotencyKey::new(&"k".repeat(MAX_KEY_LEN + 1)),
            Err(InvalidKey::TooLong {
                len: MAX_KEY_LEN + 1
            })
        );
        assert_eq!(
            IdempotencyKey::new("a\nb"),
            Err(InvalidKey::ControlCharacter)
        );
        assert_eq!(
            IdempotencyKey::new("order-42").map(|k| k.to_string()),
            Ok("order-42".to_owned())
        );
    }

    #[test]
    fn generated_keys_are_version_4_uuids_and_differ() {
        let a = IdempotencyKey::generate();
        let b = IdempotencyKey::generate();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.as_str()).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn nested_attempts_restore_the_outer_context() {
        let outer = CallScope::new(IdempotencyKey::new("outer").ok(), None);
        let inner = CallScope::new(IdempotencyKey::new("inner").ok(), None);
        let seen = outer
            .attempt(2, async {
                let before = context().map(|c| c.idempotency_key().to_string());
                let nested = inner
                    .attempt(1, async { context().map(|c| c.attempt()) })
                    .await;
                let after = context().map(|c| (c.attempt(), c.idempotency_key().to_string()));
                (before, nested, after)
            })
            .await;
        assert_eq!(
            seen,
            (
                Some("outer".to_owned()),
                Some(1),
                Some((2, "outer".to_owned()))
            )
        );
        assert!(context().is_none());
    }

    #[test]
    fn a_panicking_attempt_leaves_no_context_behind() {
        let scope = CallScope::default();
        let mut attempt = std::pin::pin!(scope.attempt(1, async {
            panic!("the body panics");
        }));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = attempt.as_mut().poll(&mut cx);
        }));
        assert!(result.is_err());
        assert!(context().is_none());
    }
}
