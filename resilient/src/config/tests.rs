//! Unit tests of parsing, profiles, positions and environment overrides.

use super::*;
use crate::breaker::TripPolicy;

fn error(text: &str) -> FileConfigError {
    FileConfig::from_toml(text).expect_err("the configuration must be refused")
}

#[test]
fn profiles_merge_default_then_base_then_entry() {
    let config = FileConfig::from_toml(
        r#"
        [breaker_profiles.default]
        open_wait = "10s"
        half_open_probes = 5
        half_open_successes = 2

        [breaker_profiles.strict]
        failure_rate_threshold = 0.25
        open_wait = "20s"

        [breakers.payments]
        base = "strict"
        open_wait = "1m30s"

        [breakers.search]
        "#,
    )
    .unwrap();
    let payments = config.breaker("payments").unwrap();
    assert_eq!(payments.settings.open_wait, Duration::from_secs(90));
    assert_eq!(payments.settings.half_open_probes, 5, "from default");
    assert!(matches!(
        payments.trip(),
        TripPolicy::FailureRate { threshold, .. } if threshold == 0.25
    ));
    let search = config.breaker("search").unwrap();
    assert_eq!(
        search.settings.open_wait,
        Duration::from_secs(10),
        "default only"
    );
    assert_eq!(
        config.default_breaker().unwrap().settings.open_wait,
        Duration::from_secs(10)
    );
}

#[test]
fn an_unknown_field_is_refused_with_entry_field_and_position() {
    let err = error("[breakers.payments]\nfailure_rate = 0.5\n");
    assert_eq!(err.entry_name(), Some("breakers.payments"));
    assert_eq!(err.field_name(), Some("failure_rate"));
    assert_eq!(err.location(), Some((2, 1)));
    assert!(
        err.message().contains("unknown field `failure_rate`"),
        "{err}"
    );
    assert!(
        err.message()
            .ends_with("(did you mean `failure_rate_threshold`?)"),
        "{err}"
    );
    let top = error("[breaker.payments]\n");
    assert!(
        top.message().ends_with("(did you mean `breakers`?)"),
        "{top}"
    );
}

#[test]
fn a_bad_duration_names_the_field() {
    let err = error("[bulkheads.db]\nmax_wait = \"soon\"\n");
    assert_eq!(err.entry_name(), Some("bulkheads.db"));
    assert_eq!(err.field_name(), Some("max_wait"));
    assert_eq!(err.location(), Some((2, 12)));
    assert!(err.message().contains("invalid duration \"soon\""), "{err}");
}

#[test]
fn an_invalid_value_points_at_where_it_was_written() {
    let err = error(
        "[breaker_profiles.loose]\nfailure_rate_threshold = 1.5\n\n[breakers.db]\nbase = \"loose\"\n",
    );
    assert_eq!(err.entry_name(), Some("breakers.db"));
    assert_eq!(err.field_name(), Some("failure_rate_threshold"));
    assert_eq!(err.location(), Some((2, 26)));
    assert_eq!(
        err.to_string(),
        "2:26: breakers.db: `failure_rate_threshold` = 1.5 must be in (0, 1] (set in breaker_profiles.loose)"
    );
}

#[test]
fn a_missing_profile_and_a_cycle_are_refused() {
    let missing = error("[breakers.db]\nbase = \"strcit\"\n");
    assert_eq!(missing.field_name(), Some("base"));
    assert_eq!(missing.location(), Some((2, 8)));
    assert!(missing.message().contains("names no profile"), "{missing}");
    let cycle = error("[breaker_profiles.a]\nbase = \"b\"\n[breaker_profiles.b]\nbase = \"a\"\n");
    assert!(cycle.message().contains("cycle"), "{cycle}");
}

#[test]
fn a_field_of_another_trip_policy_is_refused() {
    let err = error("[breakers.db]\nconsecutive_failures = 5\n");
    assert_eq!(err.field_name(), Some("consecutive_failures"));
    assert!(
        err.message()
            .contains("set trip = \"consecutive_failures\""),
        "{err}"
    );
    let config = FileConfig::from_toml(
        "[breakers.db]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 5\n",
    )
    .unwrap();
    assert_eq!(
        config.breaker("db").unwrap().trip(),
        TripPolicy::ConsecutiveFailures(5)
    );
}

#[test]
fn the_environment_overrides_one_field() {
    let config = FileConfig::from_toml(
        "[breakers.\"checkout::pay\"]\n[bulkheads.db]\nmax_concurrent = 4\n[call_sites.\"a.b\"]\nretries = 1\n",
    )
    .unwrap()
    .with_env([
        ("RESILIENT_BREAKER_CHECKOUT__PAY_FAILURE_RATE_THRESHOLD", "0.3"),
        ("RESILIENT_BREAKER_CHECKOUT__PAY_OPEN_WAIT", "45s"),
        ("RESILIENT_BULKHEAD_DB_MAX_CONCURRENT", "8"),
        ("RESILIENT_CALL_SITE_A_B_BREAKER", "payments"),
        ("PATH", "/usr/bin"),
    ])
    .unwrap();
    let pay = config.breaker("checkout::pay").unwrap();
    assert_eq!(pay.settings.open_wait, Duration::from_secs(45));
    assert!(matches!(pay.trip(), TripPolicy::FailureRate { threshold, .. } if threshold == 0.3));
    assert_eq!(config.bulkhead("db").unwrap().max_concurrent, 8);
    let site = config.call_site("a.b").unwrap();
    assert_eq!(site.breaker.as_deref(), Some("payments"));
    assert_eq!(site.retries, Some(1));
}

#[test]
fn a_bad_environment_override_is_refused() {
    let config = FileConfig::from_toml("[breakers.db]\n").unwrap();
    let typo = config
        .clone()
        .with_env([("RESILIENT_BREAKER_DB_OPEN_WIAT", "1s")])
        .unwrap_err();
    assert_eq!(
        typo.origin(),
        Some("environment variable RESILIENT_BREAKER_DB_OPEN_WIAT")
    );
    assert!(typo.message().contains("names no field"), "{typo}");
    let value = config
        .clone()
        .with_env([("RESILIENT_BREAKER_DB_HALF_OPEN_PROBES", "-1")])
        .unwrap_err();
    assert_eq!(value.field_name(), Some("half_open_probes"));
    assert_eq!(value.entry_name(), Some("breakers.db"));
    let smuggled = config
        .clone()
        .with_env([(
            "RESILIENT_BREAKER_DB_OPEN_WAIT",
            "\"1s\"\nhalf_open_probes = 9",
        )])
        .unwrap_err();
    assert!(
        smuggled.message().contains("not a single value"),
        "{smuggled}"
    );
    let invalid = config
        .with_env([("RESILIENT_BREAKER_DB_FAILURE_RATE_THRESHOLD", "2")])
        .unwrap_err();
    assert_eq!(
        invalid.to_string(),
        "after environment overrides (RESILIENT_BREAKER_DB_FAILURE_RATE_THRESHOLD): breakers.db: `failure_rate_threshold` = 2.0 must be in (0, 1]"
    );
}

#[test]
fn call_site_overrides_are_validated() {
    let err = error("[call_sites.x]\ntimeout = \"3s\"\ntotal_timeout = \"2s\"\n");
    assert_eq!(err.field_name(), Some("timeout"));
    assert_eq!(err.location(), Some((2, 11)));
    let err = error("[call_sites.x]\nretries = 1000\n");
    assert_eq!(err.field_name(), Some("retries"));
    let err = error("[call_sites.x]\nbreaker = \" \"\n");
    assert_eq!(err.field_name(), Some("breaker"));
}

#[test]
fn a_latency_objective_is_written_as_a_percentile_under_a_duration() {
    let config = FileConfig::from_toml(
        r#"
        [breakers.search]
        latency_slo = "p99.9 < 300ms"
        "#,
    )
    .unwrap();
    let slo = config.breaker("search").unwrap().latency_slo().unwrap();
    assert_eq!(slo.limit, Duration::from_millis(300));
    assert!((slo.quantile - 0.999).abs() < 1e-12);
    for bad in ["p100 < 1s", "p0 < 1s", "99 < 1s", "p99 > 1s", "p99 < soon"] {
        let error = error(&format!("[breakers.search]\nlatency_slo = {bad:?}\n"));
        assert!(
            error.to_string().contains("latency objective"),
            "{bad}: {error}"
        );
    }
}
