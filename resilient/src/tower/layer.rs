//! The layer: a policy and a way to copy requests, handed to every service it wraps.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::policy::Policy;

use super::{CloneRequests, PolicyService, SendOnce};

/// A [`Layer`] that runs a service's calls through a [`Policy`]; see the [module](super).
#[derive(Clone)]
pub struct PolicyLayer<C = CloneRequests> {
    policy: Arc<Policy>,
    clone: C,
}

impl PolicyLayer {
    /// A layer running calls through `policy`, cloning requests for retries.
    pub fn new(policy: Policy) -> Self {
        PolicyLayer {
            policy: Arc::new(policy),
            clone: CloneRequests,
        }
    }
}

impl<C> PolicyLayer<C> {
    /// Sends every request once: no retries, whatever the policy says.
    pub fn send_once(self) -> PolicyLayer<SendOnce> {
        self.clone_requests_with(SendOnce)
    }

    /// Copies requests for retries with `clone`; a request it declines (`None`) is sent once.
    pub fn clone_requests_with<D>(self, clone: D) -> PolicyLayer<D> {
        PolicyLayer {
            policy: self.policy,
            clone,
        }
    }

    /// The policy the layer runs calls through.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<C> fmt::Debug for PolicyLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for PolicyLayer<C> {
    type Service = PolicyService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService::new(inner, self.policy.clone(), self.clone.clone())
    }
}
