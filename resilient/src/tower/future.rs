//! The response future: the call running, or an open breaker's answer, ready at once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Rejection;

use super::Error;

pub(super) type Running<R, E> = Pin<Box<dyn Future<Output = Result<R, Error<E>>> + Send>>;

/// The response future of a [`PolicyService`](super::PolicyService): the call running, or
/// the open breaker's rejection, ready at once.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<R, E> {
    pub(super) state: State<R, E>,
}

pub(super) enum State<R, E> {
    Rejected(Option<Rejection>),
    Running(Running<R, E>),
}

impl<R, E> Future for ResponseFuture<R, E> {
    type Output = Result<R, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Running(call) => call.as_mut().poll(cx),
            // Polled again after it answered: the rejection was taken, as a fused future's
            // would be; pending keeps the contract without a panic.
            State::Rejected(rejection) => match rejection.take() {
                Some(rejection) => Poll::Ready(Err(Error::Rejected(rejection))),
                None => Poll::Pending,
            },
        }
    }
}

impl<R, E> fmt::Debug for ResponseFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Rejected(rejection) => f.debug_tuple("Rejected").field(rejection).finish(),
            State::Running(_) => f.write_str("Running"),
        }
    }
}
