//! Configuration files: the shipped example, profiles, errors with their place, environment
//! overrides, other serde formats, and live reloads that keep each breaker's state and window.

mod common;

use std::time::Duration;

use common::{MS, SEC, fail, fail_n, rejection, succeed_n};
use resilient::config::FileConfig;
use resilient::{BreakerConfig, BreakerState, Jitter, Registry, SlidingWindow, TripPolicy};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/resilient.toml");

fn threshold(registry: &Registry, name: &str) -> f64 {
    match registry.get_breaker(name).unwrap().config().trip() {
        TripPolicy::FailureRate { threshold, .. } => threshold,
        other => panic!("{name} trips on {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_example_file_declares_everything_it_names() {
    let config = FileConfig::from_toml_file(EXAMPLE).unwrap();
    let registry = Registry::new();
    let report = registry.reload(&config).unwrap();
    assert_eq!(
        report.breakers_created,
        ["feature_store", "inventory", "payments", "recommendations"]
    );
    assert_eq!(report.bulkheads_created, ["feature_store", "payments"]);

    // payments ← critical ← default.
    assert_eq!(threshold(&registry, "payments"), 0.25);
    let payments = config.breaker("payments").unwrap();
    assert!(matches!(
        payments.trip(),
        TripPolicy::FailureRate {
            window: SlidingWindow::Calls(50),
            minimum_calls: 10,
            ..
        }
    ));
    assert_eq!(
        registry.get_breaker("inventory").unwrap().config().trip(),
        TripPolicy::ConsecutiveFailures(5)
    );
    assert!(matches!(
        registry.get_breaker("recommendations").unwrap().config().trip(),
        TripPolicy::FailureRate { window: SlidingWindow::Time(d), .. } if d == Duration::from_secs(60)
    ));
    let slow = registry
        .get_breaker("feature_store")
        .unwrap()
        .config()
        .slow_calls()
        .unwrap();
    assert_eq!((slow.duration, slow.rate_threshold), (500 * MS, 0.5));
    assert_eq!(
        registry.get_bulkhead("payments").unwrap().config().max_wait,
        250 * MS
    );

    // The default profile now configures breakers used without a declaration.
    let undeclared = registry.breaker("shipping").unwrap();
    assert_eq!(threshold(&registry, "shipping"), 0.5);
    assert!(undeclared.config().slow_calls().is_none());

    // Call-site overrides are kept for the call sites.
    let charge = registry.call_site_overrides("checkout::charge").unwrap();
    assert_eq!(charge.timeout, Some(5 * SEC));
    assert_eq!(charge.total_timeout, Some(12 * SEC));
    assert_eq!(charge.breaker.as_deref(), Some("payments"));
    let price = registry.call_site_overrides("checkout::price").unwrap();
    assert_eq!(price.jitter, Some(Jitter::Full));
    assert_eq!(price.backoff, Some(50 * MS));
    assert!(registry.call_site_overrides("checkout::ship").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_stays_open_across_a_reload() {
    let registry = Registry::new();
    let first = FileConfig::from_toml(
        "[breakers.db]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 3\nopen_wait = \"30s\"\n",
    )
    .unwrap();
    registry.reload(&first).unwrap();
    let breaker = registry.breaker("db").unwrap();
    fail_n(&breaker, 3);
    tokio::time::advance(10 * SEC).await;
    assert_eq!(rejection(&breaker).retry_after(), Some(20 * SEC));

    let second = FileConfig::from_toml(
        "[breakers.db]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 10\nopen_wait = \"1m\"\n",
    )
    .unwrap();
    let report = registry.reload(&second).unwrap();
    assert_eq!(report.breakers_reconfigured, ["db"]);
    assert!(report.windows_restarted.is_empty());
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        rejection(&breaker).retry_after(),
        Some(20 * SEC),
        "the current open period keeps its deadline"
    );
    assert_eq!(
        breaker.metrics().transitions,
        1,
        "no transition from the reload"
    );
    assert_eq!(
        breaker.config().trip(),
        TripPolicy::ConsecutiveFailures(10),
        "the handle follows the new configuration"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_breaker_keeps_its_window_across_a_threshold_change() {
    let registry = Registry::new();
    let toml = |threshold: f64| {
        format!(
            "[breakers.db]\nfailure_rate_threshold = {threshold}\nsliding_window_size = 10\nminimum_calls = 10\n"
        )
    };
    registry
        .reload(&FileConfig::from_toml(&toml(0.9)).unwrap())
        .unwrap();
    let breaker = registry.breaker("db").unwrap();
    succeed_n(&breaker, 4);
    fail_n(&breaker, 5); // 9 calls: below the minimum, and 55 % < 90 % anyway

    let report = registry
        .reload(&FileConfig::from_toml(&toml(0.5)).unwrap())
        .unwrap();
    assert!(report.windows_restarted.is_empty());
    assert_eq!(breaker.metrics().calls_in_window, 9, "the window survived");
    fail(&breaker); // the 10th call: 6 of 10 failed
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_new_window_size_restarts_a_closed_breakers_window() {
    let registry = Registry::new();
    let toml =
        |size: u32| format!("[breakers.db]\nsliding_window_size = {size}\nminimum_calls = 5\n");
    registry
        .reload(&FileConfig::from_toml(&toml(10)).unwrap())
        .unwrap();
    let breaker = registry.breaker("db").unwrap();
    fail_n(&breaker, 2);
    succeed_n(&breaker, 2);
    let report = registry
        .reload(&FileConfig::from_toml(&toml(20)).unwrap())
        .unwrap();
    assert_eq!(report.windows_restarted, ["db"]);
    assert_eq!(breaker.metrics().calls_in_window, 0);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_failure_predicates_set_in_code_and_leaves_other_breakers_alone() {
    #[derive(Debug)]
    struct NotFound;
    let registry = Registry::new();
    let breaker = registry
        .declare_breaker(
            "users",
            BreakerConfig::consecutive_failures(2).with_failure_predicate(|_: &NotFound| false),
        )
        .unwrap();
    registry
        .declare_breaker("other", BreakerConfig::default())
        .unwrap();
    let config = FileConfig::from_toml(
        "[breakers.users]\ntrip = \"consecutive_failures\"\nconsecutive_failures = 1\n",
    )
    .unwrap();
    let report = registry.reload(&config).unwrap();
    assert_eq!(report.not_in_file, ["other"]);
    breaker.try_acquire().unwrap().record_error(&NotFound);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "a 404 still does not count"
    );
    breaker.try_acquire().unwrap().record_error(&"timeout");
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "one failure now trips it"
    );
}

#[test]
fn environment_variables_override_single_fields() {
    let env = [
        ("RESILIENT_BREAKER_PAYMENTS_FAILURE_RATE_THRESHOLD", "0.3"),
        ("RESILIENT_BREAKER_FEATURE_STORE_OPEN_WAIT", "2m"),
        ("RESILIENT_BULKHEAD_PAYMENTS_MAX_CONCURRENT", "4"),
        ("RESILIENT_CALL_SITE_CHECKOUT__CHARGE_RETRIES", "0"),
        ("RESILIENT_CALL_SITE_CHECKOUT__PRICE_ENABLED", "false"),
        ("HOME", "/root"),
    ];
    let config = FileConfig::from_toml_file(EXAMPLE)
        .unwrap()
        .with_env(env)
        .unwrap();
    assert!(matches!(
        config.breaker("payments").unwrap().trip(),
        TripPolicy::FailureRate { threshold, window: SlidingWindow::Calls(50), .. } if threshold == 0.3
    ));
    let registry = Registry::new();
    registry.reload(&config).unwrap();
    assert_eq!(
        registry
            .get_bulkhead("payments")
            .unwrap()
            .config()
            .max_concurrent,
        4
    );
    assert_eq!(
        registry
            .call_site_overrides("checkout::charge")
            .unwrap()
            .retries,
        Some(0)
    );
    assert_eq!(
        registry
            .call_site_overrides("checkout::price")
            .unwrap()
            .enabled,
        Some(false)
    );

    let typo = FileConfig::from_toml_file(EXAMPLE)
        .unwrap()
        .with_env([("RESILIENT_BREAKER_PAYMENT_OPEN_WAIT", "1m")])
        .unwrap_err();
    assert_eq!(
        typo.origin(),
        Some("environment variable RESILIENT_BREAKER_PAYMENT_OPEN_WAIT")
    );
    assert!(
        typo.message()
            .contains("FEATURE_STORE, INVENTORY, PAYMENTS"),
        "{typo}"
    );
    let bad = FileConfig::from_toml_file(EXAMPLE)
        .unwrap()
        .with_env([("RESILIENT_BREAKER_PAYMENTS_OPEN_WAIT", "soon")])
        .unwrap_err();
    assert_eq!(bad.entry_name(), Some("breakers.payments"));
    assert_eq!(bad.field_name(), Some("open_wait"));
    assert!(bad.message().contains("invalid duration \"soon\""), "{bad}");
}

#[test]
fn errors_name_the_file_the_entry_the_field_and_the_place() {
    let path = std::env::temp_dir().join(format!("resilient-config-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[breakers.payments]\nopen_wait = \"30s\"\nhalf_open_probes = 2\nhalf_open_successes = 3\n",
    )
    .unwrap();
    let err = FileConfig::from_toml_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(err.origin(), Some(path.display().to_string().as_str()));
    assert_eq!(err.location(), Some((4, 23)));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4:23: breakers.payments: `half_open_successes` = 3 must not exceed half_open_probes",
            path.display()
        )
    );

    let missing = FileConfig::from_toml_file("/nonexistent/resilient.toml").unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/resilient.toml: cannot read")
    );

    let syntax = FileConfig::from_toml("[breakers.db\nopen_wait = 1\n").unwrap_err();
    assert_eq!(syntax.location().map(|(line, _)| line), Some(1));

    let wrong_type =
        FileConfig::from_toml("[bulkheads.db]\nmax_concurrent = \"ten\"\n").unwrap_err();
    assert_eq!(wrong_type.entry_name(), Some("bulkheads.db"));
    assert_eq!(wrong_type.field_name(), Some("max_concurrent"));
    assert_eq!(wrong_type.location(), Some((2, 18)));

    let zero = FileConfig::from_toml("[bulkheads.db]\nmax_concurrent = 0\n").unwrap_err();
    assert_eq!(
        zero.to_string(),
        "2:18: bulkheads.db: `max_concurrent` = 0 must be between 1 and 1048576"
    );

    let missing_field =
        FileConfig::from_toml("[breakers.\"a b\"]\ntrip = \"failure_count\"\nfailure_count = 5\n")
            .unwrap_err();
    assert_eq!(
        missing_field.to_string(),
        "1:1: breakers.\"a b\": `failure_count_window` is required when trip = \"failure_count\""
    );
}

#[test]
fn any_serde_format_works() {
    let json = r#"{
        "breaker_profiles": { "default": { "open_wait": "20s" } },
        "breakers": { "db": { "failure_rate_threshold": 0.4 } },
        "bulkheads": { "db": { "max_concurrent": 3 } }
    }"#;
    let config =
        FileConfig::from_deserializer(&mut serde_json::Deserializer::from_str(json)).unwrap();
    let registry = Registry::new();
    registry.reload(&config).unwrap();
    assert_eq!(threshold(&registry, "db"), 0.4);
    assert_eq!(
        registry.get_bulkhead("db").unwrap().config().max_concurrent,
        3
    );

    let bad = r#"{ "breakers": { "db": { "open_wait": 5 } } }"#;
    let err =
        FileConfig::from_deserializer(&mut serde_json::Deserializer::from_str(bad)).unwrap_err();
    assert_eq!(err.entry_name(), Some("breakers.db"));
    assert_eq!(err.field_name(), Some("open_wait"));
    assert!(err.message().contains("line 1 column"), "{err}");
}

static OVERRIDDEN_ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[resilient::resilient(name = "config_file::overridden", retries = 1, backoff = "1ms")]
async fn overridden() -> Result<(), common::TestError> {
    let attempt = OVERRIDDEN_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Err(common::TestError::Down(attempt))
}

static SINGLE_ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[resilient::resilient(name = "config_file::single", timeout = "10ms")]
async fn single(payload: String) -> Result<usize, common::TestError> {
    SINGLE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(SEC).await;
    Ok(payload.len())
}

fn overridden_attempts() -> u32 {
    OVERRIDDEN_ATTEMPTS.swap(0, std::sync::atomic::Ordering::Relaxed)
}

/// The only test here that reloads the process-wide registry, which the attribute uses.
#[tokio::test(start_paused = true)]
async fn call_site_settings_and_the_kill_switch_follow_each_reload() {
    let global = resilient::registry();
    let retry_more = "[call_sites.\"config_file::overridden\"]\nretries = 3\n\
                      [call_sites.\"config_file::single\"]\nretries = 2\n";
    global
        .reload(&FileConfig::from_toml(retry_more).unwrap())
        .unwrap();
    assert!(overridden().await.is_err());
    assert_eq!(
        overridden_attempts(),
        4,
        "the file's 3 retries, not the attribute's 1"
    );
    // Without `retries` in its attribute, a function moves its arguments into its one attempt:
    // the file's retries cannot apply, and the call ends after one attempt.
    let timed_out = single("espresso".to_owned()).await.unwrap_err();
    assert!(
        matches!(timed_out.rejection(), Some(rejection) if rejection.is_timeout()),
        "{timed_out:?}"
    );
    assert_eq!(
        SINGLE_ATTEMPTS.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let switched_off = "[call_sites.\"config_file::overridden\"]\nenabled = false\n";
    global
        .reload(&FileConfig::from_toml(switched_off).unwrap())
        .unwrap();
    assert!(overridden().await.is_err());
    assert_eq!(
        overridden_attempts(),
        1,
        "switched off: the plain call, once"
    );

    // The file is the truth: it no longer sets the retries, so the attribute's apply again.
    let switched_on = "[call_sites.\"config_file::overridden\"]\nenabled = true\n";
    global
        .reload(&FileConfig::from_toml(switched_on).unwrap())
        .unwrap();
    assert!(overridden().await.is_err());
    assert_eq!(overridden_attempts(), 2, "the attribute's 1 retry");
}

/// A variable that is not Unicode, as only a Unix environment can hold it.
#[cfg(unix)]
fn not_unicode(prefix: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    std::ffi::OsString::from_vec(bytes)
}

#[cfg(unix)]
#[test]
fn variables_that_are_not_unicode_are_ignored_unless_they_are_ours() {
    let config = || FileConfig::from_toml("[bulkheads.payments]\nmax_concurrent = 10\n").unwrap();
    let ours = |name: &str, value: std::ffi::OsString| (name.into(), value);

    let unrelated = config()
        .with_env_os([
            (not_unicode("LC_"), "x".into()),
            ("HOME".into(), not_unicode("/home/")),
            ours("RESILIENT_BULKHEAD_PAYMENTS_MAX_CONCURRENT", "4".into()),
        ])
        .expect("unrelated variables that are not Unicode are none of our business");
    assert_eq!(unrelated.bulkhead("payments").unwrap().max_concurrent, 4);

    let bad_value = config()
        .with_env_os([ours(
            "RESILIENT_BULKHEAD_PAYMENTS_MAX_CONCURRENT",
            not_unicode("4"),
        )])
        .unwrap_err();
    assert_eq!(
        bad_value.origin(),
        Some("environment variable RESILIENT_BULKHEAD_PAYMENTS_MAX_CONCURRENT")
    );
    assert!(
        bad_value.message().contains("not valid Unicode"),
        "{bad_value}"
    );

    let bad_name = config()
        .with_env_os([(not_unicode("RESILIENT_BREAKER_"), "1s".into())])
        .unwrap_err();
    assert!(
        bad_name
            .origin()
            .unwrap()
            .starts_with("environment variable RESILIENT_BREAKER_"),
        "{bad_name}"
    );
}

/// Run by `loading_survives_an_environment_that_is_not_unicode` in a child process, whose
/// environment that test controls; skipped otherwise.
#[test]
#[ignore = "a child process of loading_survives_an_environment_that_is_not_unicode"]
fn child_loads_the_file_its_parent_names() {
    let path = std::env::var("CHILD_CONFIG_PATH").expect("run by the parent test");
    let config = FileConfig::load(path).expect("the file and the environment are fine");
    assert_eq!(config.bulkhead("payments").unwrap().max_concurrent, 4);
}

#[cfg(unix)]
#[test]
fn loading_survives_an_environment_that_is_not_unicode() {
    let path = std::env::temp_dir().join(format!("resilient-env-{}.toml", std::process::id()));
    std::fs::write(&path, "[bulkheads.payments]\nmax_concurrent = 10\n").unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_loads_the_file_its_parent_names",
            "--ignored",
        ])
        .env("CHILD_CONFIG_PATH", &path)
        .env(not_unicode("UNRELATED_"), not_unicode("value"))
        .env("RESILIENT_BULKHEAD_PAYMENTS_MAX_CONCURRENT", "4")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let report = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{report}");
    assert!(report.contains("1 passed"), "{report}");
}
