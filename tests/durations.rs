//! Every duration, from every source, is either refused by name above `MAX_DURATION` or used
//! without overflowing the clock: the builder, the breaker and bulkhead configurations, the
//! configuration file and the environment.

use std::time::Duration;

use resilient::config::FileConfig;
use resilient::{
    Backoff, BreakerConfig, BulkheadConfig, MAX_DURATION, Policy, Registry, TimeoutConfig,
};

const TOO_LONG: Duration = Duration::from_secs(365 * 24 * 3600 + 1);

#[test]
fn max_duration_is_365_days() {
    assert_eq!(MAX_DURATION, Duration::from_secs(365 * 24 * 3600));
    assert!(TOO_LONG > MAX_DURATION);
}

/// A field's name, and a builder that sets it past the limit.
type Case = (&'static str, fn() -> resilient::PolicyBuilder);

#[test]
fn the_builder_refuses_each_duration_past_the_limit_by_name() {
    let registry = Registry::new();
    let cases: [Case; 5] = [
        ("timeout", || Policy::builder("p").timeout(Duration::MAX)),
        ("total_timeout", || {
            Policy::builder("p").total_timeout(Duration::MAX)
        }),
        ("timeout", || {
            Policy::builder("p")
                .timeout(TOO_LONG)
                .total_timeout(Duration::MAX)
        }),
        ("backoff", || {
            Policy::builder("p").backoff(Backoff::constant(TOO_LONG))
        }),
        ("max_backoff", || {
            Policy::builder("p").backoff(Backoff::exponential(
                Duration::from_millis(1),
                2.0,
                Duration::MAX,
            ))
        }),
    ];
    for (field, builder) in cases {
        let err = builder().build_in(&registry).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains("365 days"), "{err}");
    }
    assert!(
        Policy::builder("p")
            .timeout(MAX_DURATION)
            .total_timeout(MAX_DURATION)
            .build_in(&registry)
            .is_ok(),
        "the limit itself is accepted"
    );
}

#[test]
fn breakers_and_bulkheads_refuse_durations_past_the_limit() {
    let open_wait = BreakerConfig::consecutive_failures(3).with_open_wait(TOO_LONG);
    assert_eq!(open_wait.validate("b").unwrap_err().field(), "open_wait");
    let max_open_wait =
        BreakerConfig::consecutive_failures(3).with_open_wait_growth(2.0, Duration::MAX);
    assert_eq!(
        max_open_wait.validate("b").unwrap_err().field(),
        "max_open_wait"
    );
    let bulkhead = BulkheadConfig::new(4).with_max_wait(Duration::MAX);
    assert_eq!(bulkhead.validate("b").unwrap_err().field(), "max_wait");
    let timeouts = TimeoutConfig {
        attempt: None,
        total: Some(TOO_LONG),
    };
    assert_eq!(timeouts.validate("p").unwrap_err().field(), "total_timeout");
}

fn file_error(text: &str) -> (Option<String>, String) {
    let err = FileConfig::from_toml(text).unwrap_err();
    (err.field_name().map(str::to_owned), err.to_string())
}

#[test]
fn a_file_refuses_every_duration_past_the_limit_by_field() {
    let cases = [
        (
            "[call_sites.\"app::get\"]\ntimeout = \"500000000000y\"\n",
            "timeout",
        ),
        (
            "[call_sites.\"app::get\"]\ntotal_timeout = \"400d\"\n",
            "total_timeout",
        ),
        ("[call_sites.\"app::get\"]\nbackoff = \"400d\"\n", "backoff"),
        (
            "[call_sites.\"app::get\"]\nmax_backoff = \"400d\"\n",
            "max_backoff",
        ),
        (
            "[breakers.db]\nopen_wait = \"500000000000y\"\n",
            "open_wait",
        ),
        ("[breakers.db]\nmax_open_wait = \"400d\"\n", "max_open_wait"),
        ("[bulkheads.db]\nmax_wait = \"400d\"\n", "max_wait"),
    ];
    for (text, field) in cases {
        let (named, message) = file_error(text);
        assert_eq!(named.as_deref(), Some(field), "{text}: {message}");
        assert!(
            message.contains("365 days") || message.contains("invalid duration"),
            "{text}: {message}"
        );
    }
}

#[test]
fn an_environment_variable_past_the_limit_is_refused_by_name() {
    let err = FileConfig::from_toml("[breakers.db]\n")
        .unwrap()
        .with_env([("RESILIENT_BREAKER_DB_OPEN_WAIT", "400d")])
        .unwrap_err();
    assert_eq!(err.field_name(), Some("open_wait"));
    assert!(err.to_string().contains("365 days"), "{err}");
}
