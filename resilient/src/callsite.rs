//! Call sites: each annotated function (and each programmatic [`Policy`](crate::Policy)) counts
//! its calls, retries and fallbacks, keeps a latency histogram, and can be switched off by an
//! operator so that it makes the plain call.
//!
//! Counting stays cheap enough for the hot path: a plain load and store per call on the calling
//! thread's own stripe of a striped counter, so threads calling one function never share a
//! counter's cache line. Latency needs two clock readings, so it is sampled: one call in
//! [`LATENCY_SAMPLE_EVERY`] per thread is timed (a thread-local countdown, no shared write).
//! Percentiles from a sample are estimates; at the traffic where they matter the sample is
//! thousands of calls.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::counter::StripedCounter;

/// One call in this many (per thread) is timed for the latency histogram.
pub const LATENCY_SAMPLE_EVERY: u32 = 32;

thread_local! {
    static SAMPLE_COUNTDOWN: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread's next call should be timed.
pub(crate) fn sample_latency() -> bool {
    SAMPLE_COUNTDOWN.with(|countdown| {
        let left = countdown.get();
        if left == 0 {
            countdown.set(LATENCY_SAMPLE_EVERY - 1);
            true
        } else {
            countdown.set(left - 1);
            false
        }
    })
}

/// Sub-buckets per power of two: bucket bounds grow by 2^(1/8), so a percentile read from the
/// histogram is within 9 % of the true value.
const SUB_BUCKETS: usize = 8;
/// Powers of two covered, from 1 µs to 2^28 µs (about 4.5 minutes); longer calls land in the
/// last bucket.
const OCTAVES: usize = 28;
const BUCKETS: usize = SUB_BUCKETS * OCTAVES + 1;

/// A lock-free latency histogram with logarithmic buckets (1 µs to minutes, ≤ 9 % error).
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let index = bucket_of(latency);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The latency at quantile `q` (0.5 for the median), as the upper bound of its bucket;
    /// `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper_bound(index));
            }
        }
        Some(upper_bound(BUCKETS - 1))
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

/// The bucket of a latency: bucket `i` holds latencies up to `2^(i/8)` µs.
fn bucket_of(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    let index = (micros.log2() * SUB_BUCKETS as f64).ceil() as usize;
    index.min(BUCKETS - 1)
}

fn upper_bound(index: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf(index as f64 / SUB_BUCKETS as f64) / 1e6)
}

/// What one call site counts.
#[derive(Debug)]
pub struct CallSiteStats {
    // Striped, as every call (or, in an outage, every failed call) bumps them, from every
    // thread: a shared atomic would be one contended line per call site.
    calls: StripedCounter,
    retries: StripedCounter,
    hedges: AtomicU64,
    fallbacks: StripedCounter,
    stale_served: StripedCounter,
    bypassed: AtomicBool,
    latency: LatencyHistogram,
    /// What [`start_timer`](Self::start_timer) measures from, on tokio's clock.
    epoch: tokio::time::Instant,
}

impl Default for CallSiteStats {
    fn default() -> Self {
        CallSiteStats {
            calls: StripedCounter::default(),
            retries: StripedCounter::default(),
            hedges: AtomicU64::default(),
            fallbacks: StripedCounter::default(),
            stale_served: StripedCounter::default(),
            bypassed: AtomicBool::default(),
            latency: LatencyHistogram::default(),
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl CallSiteStats {
    /// Starts timing a call if it is one of the sampled ones: nanoseconds since this call
    /// site's epoch plus one, or 0 for a call not timed. A plain integer rather than an
    /// `Option<Instant>`, whose `None` is a 4-byte write that a later 16-byte copy of the
    /// enclosing future cannot forward from (a stall of several nanoseconds on every call).
    #[inline]
    pub(crate) fn start_timer(&self) -> u64 {
        if sample_latency() {
            self.nanos_since_epoch().saturating_add(1)
        } else {
            0
        }
    }

    /// Records the latency of a call timed by [`start_timer`](Self::start_timer).
    #[inline]
    pub(crate) fn stop_timer(&self, started: u64) {
        if started != 0 {
            let elapsed = self.nanos_since_epoch().saturating_sub(started - 1);
            self.latency.record(Duration::from_nanos(elapsed));
        }
    }

    fn nanos_since_epoch(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(crate) fn record_call(&self) {
        self.calls.increment();
    }

    pub(crate) fn record_retry(&self) {
        self.retries.increment();
    }

    pub(crate) fn record_hedge(&self) {
        self.hedges.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a fallback served.
    pub fn record_fallback(&self) {
        self.fallbacks.increment();
    }

    /// Counts a stale cached value served after a failure (see [`crate::cache`]).
    pub(crate) fn record_stale_served(&self) {
        self.stale_served.increment();
    }

    /// Whether an operator switched this call site's policies off: calls then run once, plain,
    /// with no timeout, retry, breaker or bulkhead.
    pub fn is_bypassed(&self) -> bool {
        self.bypassed.load(Ordering::Relaxed)
    }

    /// Switches this call site's policies off (`true`) or back on.
    pub fn set_bypassed(&self, bypassed: bool) {
        self.bypassed.store(bypassed, Ordering::Relaxed);
    }

    /// The latency histogram (sampled: see [`LATENCY_SAMPLE_EVERY`]).
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// A point-in-time view under `name`.
    pub fn metrics(&self, name: Arc<str>) -> CallSiteMetrics {
        CallSiteMetrics {
            name,
            calls: self.calls.get(),
            retries: self.retries.get(),
            hedges: self.hedges.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.get(),
            stale_served: self.stale_served.get(),
            bypassed: self.is_bypassed(),
            latency_samples: self.latency.count(),
            p50: self.latency.quantile(0.5),
            p90: self.latency.quantile(0.9),
            p99: self.latency.quantile(0.99),
        }
    }
}

/// A call site's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CallSiteMetrics {
    /// The call site's name.
    pub name: Arc<str>,
    /// Calls started.
    pub calls: u64,
    /// Retries made.
    pub retries: u64,
    /// Hedges started (see [`hedge`](crate::hedge)).
    pub hedges: u64,
    /// Fallbacks served.
    pub fallbacks: u64,
    /// Stale cached values served after a failure (see [`crate::cache`]).
    pub stale_served: u64,
    /// Whether its policies are switched off.
    pub bypassed: bool,
    /// Calls timed for the histogram.
    pub latency_samples: u64,
    /// Median latency of the sampled calls.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "p50_seconds",
            serialize_with = "crate::snapshot::optional_seconds"
        )
    )]
    pub p50: Option<Duration>,
    /// 90th percentile.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "p90_seconds",
            serialize_with = "crate::snapshot::optional_seconds"
        )
    )]
    pub p90: Option<Duration>,
    /// 99th percentile.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "p99_seconds",
            serialize_with = "crate::snapshot::optional_seconds"
        )
    )]
    pub p99: Option<Duration>,
}

/// A call site as written in the source. `#[resilient]` registers one per annotated function
/// at link time, so [`Registry::call_sites`](crate::Registry::call_sites) lists them all and
/// [`Registry::validate`](crate::Registry::validate) can check the names they use before the
/// first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallSiteInfo {
    /// The call site's name as declared: the `name` key, or the module path and function name,
    /// `shop::{Self}::get` for a method until it first runs (see
    /// [`current_name`](Self::current_name)).
    pub name: &'static str,
    /// The breaker it names, if any.
    pub breaker: Option<&'static str>,
    /// The bulkhead it names, if any.
    pub bulkhead: Option<&'static str>,
    /// The per-key breaker family it names (`breaker` with `breaker_key`), if any; its
    /// `breaker` is then `None`.
    pub breaker_family: Option<&'static str>,
    /// The attribute's options as written, e.g. `timeout = "2s", retries = 3`.
    pub options: &'static str,
    /// Where the annotated function is.
    pub file: &'static str,
    /// The line of the annotated function.
    pub line: u32,
    /// A method's name with its type, once its first call named it.
    named: Option<&'static OnceLock<&'static str>>,
}

impl CallSiteInfo {
    /// A call site description; the attribute builds these in constant context.
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        breaker: Option<&'static str>,
        bulkhead: Option<&'static str>,
        options: &'static str,
        file: &'static str,
        line: u32,
        named: Option<&'static OnceLock<&'static str>>,
    ) -> Self {
        CallSiteInfo {
            name,
            breaker,
            bulkhead,
            breaker_family: None,
            options,
            file,
            line,
            named,
        }
    }

    /// The same call site, naming the per-key breaker family `family` (`breaker_key`).
    #[doc(hidden)]
    pub const fn with_breaker_family(mut self, family: &'static str) -> Self {
        self.breaker_family = Some(family);
        self
    }

    /// The name its metrics, configuration (`[call_sites."…"]`) and kill switch use: the `name`
    /// key or `module::function`, and for a method without a `name` key, the type's path and
    /// the method's name (`shop::Users::get`) once the method has run. Until then a method's
    /// name holds the placeholder `{Self}`.
    pub fn current_name(&self) -> &'static str {
        self.named
            .and_then(|named| named.get().copied())
            .unwrap_or(self.name)
    }

    /// Whether its name still waits for its first call to name its type.
    pub fn is_name_pending(&self) -> bool {
        self.current_name()
            .contains(crate::__private::SELF_PLACEHOLDER)
    }
}

inventory::collect!(CallSiteInfo);

/// Every annotated function linked into this program, sorted by name.
pub fn annotated_call_sites() -> Vec<&'static CallSiteInfo> {
    let mut all: Vec<_> = inventory::iter::<CallSiteInfo>.into_iter().collect();
    all.sort_by_key(|site| (site.current_name(), site.file, site.line));
    all
}

/// Whether an `#[resilient]` attribute names breaker `name`: such names are bounded by the
/// program's code, so the registry's implicit limit never refuses them.
pub(crate) fn names_breaker(name: &str) -> bool {
    inventory::iter::<CallSiteInfo>
        .into_iter()
        .any(|site| site.breaker == Some(name))
}

/// Whether an `#[resilient]` attribute names breaker family `name` (see [`names_breaker`]).
pub(crate) fn names_breaker_family(name: &str) -> bool {
    inventory::iter::<CallSiteInfo>
        .into_iter()
        .any(|site| site.breaker_family == Some(name))
}

/// Whether an `#[resilient]` attribute names bulkhead `name` (see [`names_breaker`]).
pub(crate) fn names_bulkhead(name: &str) -> bool {
    inventory::iter::<CallSiteInfo>
        .into_iter()
        .any(|site| site.bulkhead == Some(name))
}

/// Whether `name` is the name of an `#[resilient]` function (see [`names_breaker`]).
pub(crate) fn is_annotated(name: &str) -> bool {
    inventory::iter::<CallSiteInfo>
        .into_iter()
        .any(|site| site.current_name() == name)
}

/// An annotated call site with its counters (absent until it first ran).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallSiteDescription {
    /// What the attribute declared.
    pub info: CallSiteInfo,
    /// Its counters, once it has run.
    pub metrics: Option<CallSiteMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = CallSiteStats::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        stats.record_call();
                        stats.record_retry();
                        stats.record_fallback();
                        stats.record_stale_served();
                    }
                });
            }
        });
        let metrics = stats.metrics("site".into());
        assert_eq!(
            (
                metrics.calls,
                metrics.retries,
                metrics.fallbacks,
                metrics.stale_served
            ),
            (4000, 4000, 4000, 4000)
        );
    }

    #[test]
    fn quantiles_land_within_the_bucket_error() {
        let histogram = LatencyHistogram::default();
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let p50 = histogram.quantile(0.5).unwrap().as_secs_f64() * 1e3;
        let p99 = histogram.quantile(0.99).unwrap().as_secs_f64() * 1e3;
        assert!((50.0..=50.0 * 1.1).contains(&p50), "p50 = {p50}");
        assert!((99.0..=99.0 * 1.1).contains(&p99), "p99 = {p99}");
        assert_eq!(histogram.count(), 100);
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn extremes_stay_in_range() {
        let histogram = LatencyHistogram::default();
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_secs(3600));
        assert_eq!(histogram.quantile(0.0), Some(upper_bound(0)));
        assert_eq!(histogram.quantile(1.0), Some(upper_bound(BUCKETS - 1)));
    }

    #[test]
    fn one_call_in_thirty_two_is_sampled() {
        let sampled = (0..320).filter(|_| sample_latency()).count();
        assert_eq!(sampled, 10);
    }
}
