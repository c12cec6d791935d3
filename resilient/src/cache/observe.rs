//! Telling a caller that an answer was stale, without changing any signature: a future wrapped
//! in [`observe`] makes a thread-local slot current around each of its polls, and a stale cache
//! that serves a value while it is current writes the value's age into it.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

thread_local! {
    /// `None`: no [`Observe`] is being polled on this thread. `Some(age)`: the innermost one
    /// is, and `age` is the last stale age served during this poll (or before, in earlier
    /// polls of the same wrapper).
    static CURRENT: Cell<Option<Option<Duration>>> = const { Cell::new(None) };
}

/// Runs `future` and reports, next to its output, the age of the stale value served by the last
/// stale-while-failing cache ([`StaleCache::serve`](super::StaleCache::serve)) that served one
/// while `future` was being polled; `None` when every answer was fresh.
///
/// Only what runs inside `future`'s own polls is seen: a call in a task it spawns is not. When
/// `observe` is nested, a stale answer is reported to the innermost wrapper only.
///
/// ```
/// use std::time::Duration;
/// use resilient::{Policy, Registry, Rejection};
///
/// #[derive(Debug)]
/// struct Down;
/// impl From<Rejection> for Down {
///     fn from(_: Rejection) -> Self { Down }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let registry = Registry::new();
/// let policy = Policy::builder("quote")
///     .cache(Duration::from_secs(300))
///     .build_in(&registry)
///     .unwrap();
///
/// let fresh: Result<u32, Down> = policy.call_cached("ada", || async { Ok(42) }).await;
/// assert_eq!(fresh.unwrap(), 42);
/// tokio::time::sleep(Duration::from_secs(60)).await;
///
/// // The dependency is down: the value cached a minute ago is served, and `observe` says so.
/// let (quote, age) = resilient::cache::observe(
///     policy.call_cached("ada", || async { Err::<u32, Down>(Down) }),
/// )
/// .await;
/// assert_eq!(quote.unwrap(), 42);
/// assert_eq!(age, Some(Duration::from_secs(60)));
/// # }
/// ```
pub fn observe<F: IntoFuture>(future: F) -> Observe<F::IntoFuture> {
    Observe {
        future: future.into_future(),
        age: None,
    }
}

pin_project! {
    /// The future [`observe`] returns: `future`'s output and the age of the last stale value
    /// served inside it.
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Observe<F> {
        #[pin]
        future: F,
        age: Option<Duration>,
    }
}

impl<F: Future> Future for Observe<F> {
    type Output = (F::Output, Option<Duration>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = {
            let _current = Current::enter(this.age);
            this.future.poll(cx)
        };
        poll.map(|output| (output, *this.age))
    }
}

/// This wrapper's slot made current for one poll; dropping it (a panic included) puts the
/// outer one back and keeps what was written.
struct Current<'a> {
    age: &'a mut Option<Duration>,
    outer: Option<Option<Duration>>,
}

impl<'a> Current<'a> {
    fn enter(age: &'a mut Option<Duration>) -> Self {
        // A thread being torn down has no slot: nothing is observed there.
        let outer = CURRENT
            .try_with(|slot| slot.replace(Some(*age)))
            .ok()
            .flatten();
        Current { age, outer }
    }
}

impl Drop for Current<'_> {
    fn drop(&mut self) {
        if let Ok(Some(mine)) = CURRENT.try_with(|slot| slot.replace(self.outer)) {
            *self.age = mine;
        }
    }
}

/// Tells the observer being polled on this thread, if any, that a value `age` old was served.
pub(super) fn report(age: Duration) {
    let _ = CURRENT.try_with(|slot| {
        if slot.get().is_some() {
            slot.set(Some(Some(age)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(age: u64) -> impl Future<Output = ()> {
        std::future::poll_fn(move |_| {
            report(Duration::from_secs(age));
            Poll::Ready(())
        })
    }

    #[tokio::test]
    async fn nothing_served_reports_none() {
        let ((), age) = observe(async {}).await;
        assert_eq!(age, None);
    }

    #[tokio::test]
    async fn the_last_stale_answer_wins() {
        let ((), age) = observe(async {
            served(5).await;
            tokio::task::yield_now().await;
            served(7).await;
        })
        .await;
        assert_eq!(age, Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn a_nested_observer_takes_what_is_served_inside_it() {
        let (inner, outer) = observe(async {
            served(1).await;
            let ((), inner) = observe(async {
                tokio::task::yield_now().await;
                served(2).await;
            })
            .await;
            inner
        })
        .await;
        assert_eq!(inner, Some(Duration::from_secs(2)));
        assert_eq!(
            outer,
            Some(Duration::from_secs(1)),
            "the outer one keeps its own"
        );
    }

    #[tokio::test]
    async fn nothing_leaks_out_of_an_observer() {
        let _ = observe(served(3)).await;
        assert_eq!(CURRENT.with(Cell::get), None);
        report(Duration::from_secs(1));
        assert_eq!(CURRENT.with(Cell::get), None);
    }
}
