//! The layer: a policy and a way to copy requests, handed to every service it wraps.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use tower_layer::Layer;

use crate::error::Rejection;
use crate::family::BreakerFamily;
use crate::policy::Policy;
use crate::retry::{Classification, Transient};

use super::classify::{Shared, by_transient, classifier};
use super::{CloneRequests, PolicyService, SendOnce};

/// A [`Layer`] that runs a service's calls through a [`Policy`]; see the [module](super).
#[derive(Clone)]
pub struct PolicyLayer<C = CloneRequests> {
    shared: Arc<Shared>,
    clone: C,
}

impl PolicyLayer {
    /// A layer running calls through `policy`, cloning requests for retries.
    pub fn new(policy: Policy) -> Self {
        PolicyLayer {
            shared: Arc::new(Shared {
                policy,
                classify: None,
                key: None,
            }),
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
            shared: self.shared,
            clone,
        }
    }

    /// Classifies the service's errors of type `E` with `classify`: whether another attempt
    /// might succeed, and how long to wait at least (a `Retry-After`). Errors of other types,
    /// and every error without this, go to the policy's
    /// [`retry_if`](crate::PolicyBuilder::retry_if) predicates.
    pub fn classify_with<E: Any>(
        mut self,
        classify: impl Fn(&E) -> Classification + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.shared).classify = Some(classifier(classify));
        self
    }

    /// Classifies the service's errors of type `E` by their [`Transient`] impl, as the
    /// `#[resilient]` attribute does for a function's error.
    pub fn transient<E: Transient + Any>(self) -> Self {
        self.classify_with(by_transient::<E>)
    }

    /// Gives each request a breaker of its own in `family`, picked by `key` (a host, a tenant,
    /// a shard): the layer's counterpart of `#[resilient(breaker = "...", breaker_key = ...)]`.
    /// The key's breaker takes the place of the policy's for that call, so build the policy
    /// without a `breaker`; a key the family refuses (every held key open, none evictable)
    /// rejects the call as an open breaker would. Since the key is only known in `call`,
    /// `poll_ready` does not answer early for an open key.
    ///
    /// ```
    /// use resilient::family::FamilyConfig;
    /// use resilient::tower::PolicyLayer;
    /// use resilient::{BreakerConfig, Policy, Registry};
    ///
    /// let registry = Registry::new();
    /// let hosts = registry.declare_breaker_family(
    ///     "upstream_hosts",
    ///     FamilyConfig::new(BreakerConfig::consecutive_failures(5)),
    /// )?;
    /// let policy = Policy::builder("upstream_client").build_in(&registry)?;
    /// let layer = PolicyLayer::new(policy)
    ///     .breaker_key(hosts, |request: &(String, String)| request.0.clone());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn breaker_key<Req, K>(
        mut self,
        family: BreakerFamily,
        key: impl Fn(&Req) -> K + Send + Sync + 'static,
    ) -> Self
    where
        Req: 'static,
        K: Hash + fmt::Debug,
    {
        let pick = move |request: &dyn Any| {
            let request = request.downcast_ref::<Req>()?;
            Some(family.breaker(&key(request)).map_err(Rejection::from))
        };
        Arc::make_mut(&mut self.shared).key = Some(Arc::new(pick));
        self
    }

    /// The policy the layer runs calls through.
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }
}

impl<C> fmt::Debug for PolicyLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for PolicyLayer<C> {
    type Service = PolicyService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService::new(inner, self.shared.clone(), self.clone.clone())
    }
}
