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
use std::sync::{Arc, OnceLock};
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
    let frame = CURRENT.with(Cell::get);
    if frame.attempt == 0 {
        return None;
    }
    let key = if frame.keyed {
        // Set by the poll that made this frame current, or by an earlier ask in it.
        KEY.try_with(|slot| {
            let key = slot.take();
            slot.set(key.clone());
            key
        })
        .ok()
        .flatten()?
    } else {
        generate_key(frame)
    };
    Some(CallContext {
        attempt: frame.attempt,
        remaining: frame
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now())),
        key,
    })
}

/// A key for the current frame's call, asked for the first time in this poll: kept in [`KEY`]
/// and marked in the frame, so that the poll hands it to its call when it returns.
#[cold]
fn generate_key(frame: Frame) -> IdempotencyKey {
    let key = IdempotencyKey::generate();
    // The slot is empty here: a poll whose frame has no key empties it (see `Entered`).
    if KEY.try_with(|slot| slot.set(Some(key.clone()))).is_ok() {
        CURRENT.with(|current| {
            current.set(Frame {
                keyed: true,
                generated: true,
                ..frame
            })
        });
    }
    key
}

/// What [`context()`] reads while an attempt is polled: plain data, so that the thread-local
/// needs no destructor and entering a frame is a copy. The key, when the call has one, waits
/// in [`KEY`], which only calls with keys touch.
#[derive(Clone, Copy)]
struct Frame {
    /// 0 outside any attempt; attempts count from 1.
    attempt: u32,
    deadline: Option<Instant>,
    /// [`KEY`] holds this frame's key.
    keyed: bool,
    /// The key was generated during this poll: the call keeps it for its later attempts.
    generated: bool,
}

impl Frame {
    const NONE: Frame = Frame {
        attempt: 0,
        deadline: None,
        keyed: false,
        generated: false,
    };
}

thread_local! {
    static CURRENT: Cell<Frame> = const { Cell::new(Frame::NONE) };
    /// The key of the current frame, when it is `keyed`. Polls nest on a thread, so each poll
    /// that changes it puts the outer frame's back when it returns.
    static KEY: Cell<Option<IdempotencyKey>> = const { Cell::new(None) };
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

    /// Makes attempt `number` of this call the current context on this thread until the
    /// returned guard drops. Not generic, so that each attempt's type adds only a call to it
    /// in a debug build; always inlined where it is optimised.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(crate) fn enter(&self, number: u32) -> Entered<'_> {
        let key = self.key.get();
        let frame = Frame {
            attempt: number,
            deadline: self.deadline,
            keyed: key.is_some(),
            generated: false,
        };
        let outer = CURRENT.with(|current| current.replace(frame));
        Entered {
            scope: self,
            outer,
            // Only calls with keys, or inside one, touch the key's slot.
            outer_key: (frame.keyed || outer.keyed).then(|| swap_key(key.cloned())),
        }
    }
}

/// Puts `key` in the key's slot and returns what was there.
#[cold]
fn swap_key(key: Option<IdempotencyKey>) -> Option<IdempotencyKey> {
    KEY.try_with(|slot| slot.replace(key)).ok().flatten()
}

/// Restores the outer context when the poll returns, or unwinds: a panicking body must not
/// leave its context current for whatever the thread polls next.
pub(crate) struct Entered<'s> {
    scope: &'s CallScope,
    outer: Frame,
    /// The outer frame's key, taken out of the slot when this poll entered (`None` when the
    /// slot was not touched then).
    outer_key: Option<Option<IdempotencyKey>>,
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        // Outside any other attempt (nearly always) the constant is restored rather than the
        // copy: read back whole from the fields `enter` had just written, the copy stalled
        // on a failed store-to-load forward every call.
        let outer = if self.outer.attempt == 0 {
            Frame::NONE
        } else {
            self.outer
        };
        let ours = CURRENT.with(|current| current.replace(outer));
        if ours.keyed || self.outer_key.is_some() {
            self.leave_key(ours);
        }
    }
}

impl Entered<'_> {
    /// Puts the outer frame's key back in the slot; a key generated during this poll belongs
    /// to the whole call, so later attempts reuse it.
    #[cold]
    fn leave_key(&mut self, ours: Frame) {
        let outer_key = self.outer_key.take().flatten();
        let key = swap_key(outer_key);
        if let (true, Some(key)) = (ours.generated, key) {
            let _ = self.scope.key.set(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// The attempt future of the runtime, reduced to what these tests need: a body polled
    /// with its call's context current.
    impl CallScope {
        /// `future`, run as attempt `number` of this call: `context()` sees it while it is
        /// polled.
        fn attempt<F: Future>(&self, number: u32, future: F) -> WithContext<'_, F> {
            WithContext {
                scope: self,
                number,
                future,
            }
        }
    }

    pin_project_lite::pin_project! {
        /// A future polled with its call's context current; see `CallScope::attempt`.
        struct WithContext<'s, F> {
            scope: &'s CallScope,
            number: u32,
            #[pin]
            future: F,
        }
    }

    impl<F: Future> Future for WithContext<'_, F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let _entered = this.scope.enter(*this.number);
            this.future.poll(cx)
        }
    }

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

    /// Whether this thread's key slot is empty (as it must be outside any attempt).
    fn key_slot_is_empty() -> bool {
        KEY.with(|slot| {
            let key = slot.take();
            let empty = key.is_none();
            slot.set(key);
            empty
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_keyless_call_nested_in_a_keyed_one_draws_its_own_key_and_leaves_the_outer_one() {
        let outer = CallScope::new(IdempotencyKey::new("outer").ok(), None);
        let inner = CallScope::default();
        let key_of = || context().map(|c| c.idempotency_key().to_string());
        let (drawn, after) = outer
            .attempt(1, async {
                let drawn = inner.attempt(1, async { key_of() }).await;
                (drawn, key_of())
            })
            .await;
        let drawn = drawn.expect("the nested attempt has a context");
        assert_ne!(drawn, "outer");
        assert_eq!(after.as_deref(), Some("outer"));
        // The nested call keeps the key it drew for its next attempt.
        assert_eq!(
            inner.key.get().map(IdempotencyKey::to_string),
            Some(drawn.clone())
        );
        let retried = inner.attempt(2, async { key_of() }).await;
        assert_eq!(retried, Some(drawn));
        assert!(key_slot_is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_drawn_by_nested_keyless_calls_stay_with_their_own_calls() {
        let outer = CallScope::default();
        let inner = CallScope::default();
        let key_of = || context().map(|c| c.idempotency_key().to_string());
        let (nested, own, again) = outer
            .attempt(1, async {
                let nested = inner.attempt(1, async { key_of() }).await;
                (nested, key_of(), key_of())
            })
            .await;
        assert!(nested.is_some() && own.is_some());
        assert_ne!(nested, own);
        assert_eq!(own, again);
        assert_eq!(outer.key.get().map(IdempotencyKey::to_string), own);
        assert_eq!(inner.key.get().map(IdempotencyKey::to_string), nested);
        assert!(key_slot_is_empty());
    }

    #[test]
    fn a_panicking_keyed_attempt_leaves_no_key_behind() {
        let scope = CallScope::new(IdempotencyKey::new("mine").ok(), None);
        let mut attempt = std::pin::pin!(scope.attempt(1, async {
            assert!(context().is_some());
            panic!("the body panics");
        }));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = attempt.as_mut().poll(&mut cx);
        }));
        assert!(result.is_err());
        assert!(context().is_none());
        assert!(key_slot_is_empty());
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
