//! A family's state for dashboards and metrics, with bounded label cardinality.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{BreakerState, CircuitBreaker};

/// The most open keys a [`FamilySnapshot`] names; the rest are only counted, so a metrics
/// label per open key stays bounded however many keys fail.
pub const MAX_LISTED_OPEN_KEYS: usize = 20;

/// One open key of a family.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct OpenKey {
    /// The key's breaker name, `family["key"]`.
    pub breaker: Arc<str>,
    /// Open, half-open or forced open.
    pub state: BreakerState,
    /// Time left of the open wait, for an open breaker (serialized as seconds).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "retry_after_seconds",
            serialize_with = "crate::snapshot::optional_seconds"
        )
    )]
    pub retry_after: Option<Duration>,
}

/// A point-in-time view of a [`BreakerFamily`](super::BreakerFamily).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FamilySnapshot {
    /// The family's name.
    pub name: Arc<str>,
    /// Keys held.
    pub keys: usize,
    /// The key limit.
    pub max_keys: usize,
    /// Keys whose breaker is open, half-open or forced open.
    pub open_keys: usize,
    /// At most [`MAX_LISTED_OPEN_KEYS`] of them, by name.
    pub listed_open: Vec<OpenKey>,
    /// Open keys not listed.
    pub unlisted_open: usize,
    /// Keys dropped (idle, or to make room) since the family was made.
    pub evicted: u64,
    /// New keys refused because no held key could be dropped.
    pub refused: u64,
}

impl FamilySnapshot {
    pub(super) fn new(
        name: Arc<str>,
        keys: usize,
        max_keys: usize,
        mut open: Vec<CircuitBreaker>,
        evicted: u64,
        refused: u64,
    ) -> Self {
        let open_keys = open.len();
        open.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        open.truncate(MAX_LISTED_OPEN_KEYS);
        let listed_open = open
            .iter()
            .map(|breaker| {
                let metrics = breaker.metrics();
                OpenKey {
                    breaker: metrics.name,
                    state: metrics.state,
                    retry_after: metrics.retry_after,
                }
            })
            .collect::<Vec<_>>();
        FamilySnapshot {
            name,
            keys,
            max_keys,
            open_keys,
            unlisted_open: open_keys - listed_open.len(),
            listed_open,
            evicted,
            refused,
        }
    }
}
