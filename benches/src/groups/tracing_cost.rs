//! Issue 4: what `resilient`'s tracing costs a call when no subscriber wants its events.

use super::*;

/// A subscriber that wants only WARN and above, from every target: installed, but not
/// interested in anything `resilient` emits per call (DEBUG span, TRACE and DEBUG events).
struct WarnOnly;

/// A subscriber that wants everything and drops it: what emitting per-call detail costs.
struct Everything;

impl tracing::Subscriber for WarnOnly {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if *meta.level() <= tracing::Level::WARN {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl tracing::Subscriber for Everything {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        black_box(event);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Issue 4: what `resilient`'s tracing costs a call when no subscriber wants its events. The
/// same call (a breaker and one retry allowed, so the step-wise driver with its span and
/// per-attempt events runs) with no subscriber, with one that wants only warnings, and with one
/// that wants everything.
pub fn tracing_cost(c: &mut Criterion, dir: &Path, rt: &Runtime) -> Group {
    const KEY: &str = "g8_tracing";
    let mut group = criterion_group(c, KEY);
    let registry = Registry::new();
    registry
        .declare_breaker("traced", window_100())
        .expect("a valid configuration");
    let policy = Policy::builder("traced")
        .retries(1)
        .breaker("traced")
        .build_in(&registry)
        .expect("a valid policy");
    let call = || policy.call(|| async { Ok::<u64, Rejection>(black_box(1)) });
    bench_async!(group, rt, "none", |_i| call().await);
    tracing::subscriber::with_default(WarnOnly, || {
        bench_async!(group, rt, "warn_only", |_i| call().await);
    });
    tracing::subscriber::with_default(Everything, || {
        bench_async!(group, rt, "everything", |_i| call().await);
    });
    group.finish();

    let mut out = Group::new(8, "tracing when nobody listens (issue 4)", Unit::Nanos);
    collect(
        dir,
        KEY,
        &mut out,
        &[
            (
                "none",
                "`Policy::call` (breaker, 1 retry allowed), no subscriber",
            ),
            (
                "warn_only",
                "same, under a subscriber that wants WARN and above",
            ),
            (
                "everything",
                "same, under a subscriber that wants every span and event",
            ),
        ],
    );
    out.notes.push(
        "A scoped subscriber (`tracing::subscriber::with_default`) on the benchmark thread; the \
         first two entries should match: the call's DEBUG span and TRACE events cost a cached \
         interest check when nobody wants them."
            .to_owned(),
    );
    out
}
