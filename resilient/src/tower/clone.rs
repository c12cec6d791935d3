//! How a request is copied for a retry, after tower's `retry::Policy::clone_request`.

/// Copies a request before it is sent, so that a retry has one to send. `None`: this request
/// cannot be copied (a streaming body, say) and is sent once.
///
/// Implemented by [`CloneRequests`], [`SendOnce`] and any `Fn(&Req) -> Option<Req>`:
///
/// ```
/// # use resilient::tower::CloneRequest;
/// // Small bodies are kept and resent; large ones are sent once.
/// let copy = |body: &Vec<u8>| (body.len() <= 64 * 1024).then(|| body.clone());
/// assert!(copy.clone_request(&vec![0; 16]).is_some());
/// ```
pub trait CloneRequest<Req> {
    /// A copy of `request` to send on a retry, or `None` to send it once.
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

/// Copies requests with their `Clone` impl; the [`PolicyLayer`](super::PolicyLayer)'s default.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequests;

impl<Req: Clone> CloneRequest<Req> for CloneRequests {
    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Never copies: every request is sent once, for requests that cannot be cloned.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOnce;

impl<Req> CloneRequest<Req> for SendOnce {
    fn clone_request(&self, _: &Req) -> Option<Req> {
        None
    }
}

impl<Req, F> CloneRequest<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self(request)
    }
}
