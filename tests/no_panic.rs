//! No input panics: arbitrary configuration text, environment values and durations go through
//! parse → validate → reload → call, and every one of them either works or is an error value.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestError;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use resilient::config::FileConfig;
use resilient::{Backoff, BreakerConfig, BulkheadConfig, Policy, Registry, resilient};

const BREAKER_FIELDS: &[&str] = &[
    "base",
    "trip",
    "failure_rate_threshold",
    "sliding_window_type",
    "sliding_window_size",
    "sliding_window_duration",
    "minimum_calls",
    "consecutive_failures",
    "failure_count",
    "failure_count_window",
    "slow_call_duration",
    "slow_call_rate_threshold",
    "open_wait",
    "open_wait_multiplier",
    "max_open_wait",
    "half_open_probes",
    "half_open_successes",
    "max_half_open",
];
const BULKHEAD_FIELDS: &[&str] = &["base", "max_concurrent", "max_wait"];
const CALL_SITE_FIELDS: &[&str] = &[
    "base",
    "enabled",
    "timeout",
    "total_timeout",
    "retries",
    "backoff",
    "max_backoff",
    "jitter",
    "breaker",
    "bulkhead",
    "cache",
    "cache_capacity",
];

/// Values of every shape a field could be given, weighted towards the edges.
fn value() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("4294967296".to_owned()),
        Just("1e308".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("0.5".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
    ];
    let duration = prop_oneof![
        Just("500000000000y".to_owned()),
        Just("99999999999999999999s".to_owned()),
        Just("365d".to_owned()),
        Just("366d".to_owned()),
        Just("0s".to_owned()),
        Just("1ns".to_owned()),
        Just("1.5s".to_owned()),
        Just("off".to_owned()),
        (
            any::<u64>(),
            prop_oneof![
                Just("ns"),
                Just("ms"),
                Just("s"),
                Just("m"),
                Just("h"),
                Just("d"),
                Just("y")
            ]
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
    .prop_map(|text| toml_string(&text));
    let word = prop_oneof![
        Just("\"count\"".to_owned()),
        Just("\"time\"".to_owned()),
        Just("\"consecutive_failures\"".to_owned()),
        Just("\"failure_count\"".to_owned()),
        Just("\"full\"".to_owned()),
        Just("\"decorrelated\"".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        "\\PC{0,12}".prop_map(|text| toml_string(&text)),
    ];
    prop_oneof![number, duration, word]
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A name as request data might produce it: plain, empty, with control characters or
/// padding, or long.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => Just("db".to_owned()),
        20 => Just("no_panic::guarded".to_owned()),
        1 => Just(String::new()),
        1 => Just(" padded ".to_owned()),
        1 => Just("line\nbreak".to_owned()),
        1 => Just("x".repeat(300)),
        1 => "\\PC{1,10}",
    ]
}

/// A value of the type `field` takes, mostly; sometimes any value at all.
fn value_for(field: &'static str) -> BoxedStrategy<String> {
    let typed = if field.ends_with("threshold") || field.ends_with("multiplier") {
        prop_oneof![
            Just("0.5".to_owned()),
            Just("1.0".to_owned()),
            (0.0..3.0f64).prop_map(|x| format!("{x:?}"))
        ]
        .boxed()
    } else if field == "enabled" {
        any::<bool>().prop_map(|b| b.to_string()).boxed()
    } else if field == "trip" {
        prop_oneof![
            Just("\"failure_rate\""),
            Just("\"consecutive_failures\""),
            Just("\"failure_count\"")
        ]
        .prop_map(str::to_owned)
        .boxed()
    } else if field == "sliding_window_type" {
        prop_oneof![Just("\"count\""), Just("\"time\"")]
            .prop_map(str::to_owned)
            .boxed()
    } else if field == "jitter" {
        prop_oneof![
            Just("\"none\""),
            Just("\"full\""),
            Just("\"equal\""),
            Just("\"decorrelated\"")
        ]
        .prop_map(str::to_owned)
        .boxed()
    } else if matches!(field, "breaker" | "bulkhead" | "base") {
        name().prop_map(|name| toml_string(&name)).boxed()
    } else if field.contains("wait")
        || field.contains("timeout")
        || field.contains("backoff")
        || field.contains("duration")
        || field.ends_with("window")
        || field == "max_half_open"
        || field == "cache"
    {
        prop_oneof![
            12 => (1..5_000u64).prop_map(|ms| format!("\"{ms}ms\"")),
            2 => prop_oneof![Just("\"500000000000y\""), Just("\"366d\""), Just("\"365d\"")]
                .prop_map(str::to_owned),
            1 => value(),
        ]
        .boxed()
    } else {
        prop_oneof![12 => (1..12u64).prop_map(|n| n.to_string()), 1 => value()].boxed()
    };
    prop_oneof![30 => typed, 1 => value()].boxed()
}

fn table(section: &'static str, fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        name(),
        // A map: TOML refuses a key written twice, and that is not what is under test.
        proptest::collection::btree_map(proptest::sample::select(fields), Just(()), 0..6)
            .prop_flat_map(|fields| {
                fields
                    .into_keys()
                    .map(|field| (Just(field), value_for(field)))
                    .collect::<Vec<_>>()
            }),
    )
        .prop_map(move |(name, fields)| {
            let mut text = format!("[{section}.{}]\n", toml_string(&name));
            for (field, value) in fields {
                text.push_str(&format!("{field} = {value}\n"));
            }
            text
        })
}

/// Configuration text: mostly well-formed tables with hostile values, some plain noise.
fn config_text() -> impl Strategy<Value = String> {
    let tables = proptest::collection::vec(
        prop_oneof![
            table("breakers", BREAKER_FIELDS),
            table("breaker_profiles", BREAKER_FIELDS),
            table("bulkheads", BULKHEAD_FIELDS),
            table("bulkhead_profiles", BULKHEAD_FIELDS),
            table("call_sites", CALL_SITE_FIELDS),
            table("call_site_profiles", CALL_SITE_FIELDS),
        ],
        0..5,
    )
    .prop_map(|tables| {
        // One table per header: TOML refuses a table written twice.
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<_> = tables
            .into_iter()
            .filter(|table| seen.insert(table.lines().next().map(str::to_owned)))
            .collect();
        unique.concat()
    });
    prop_oneof![9 => tables, 1 => "\\PC{0,200}"]
}

/// One table for what `guarded` uses, so that most cases reach the call.
fn guarded_table() -> impl Strategy<Value = String> {
    let fields = |fields: &'static [&'static str]| {
        proptest::collection::btree_map(proptest::sample::select(&fields[1..]), Just(()), 1..4)
            .prop_flat_map(|fields| {
                fields
                    .into_keys()
                    .map(|field| (Just(field), value_for(field)))
                    .collect::<Vec<_>>()
            })
    };
    let table = |header: &'static str, fields: Vec<(&'static str, String)>| {
        let mut text = format!("{header}\n");
        for (field, value) in fields {
            text.push_str(&format!("{field} = {value}\n"));
        }
        text
    };
    prop_oneof![
        fields(CALL_SITE_FIELDS).prop_map(move |f| table("[call_sites.\"no_panic::guarded\"]", f)),
        fields(BREAKER_FIELDS).prop_map(move |f| table("[breakers.db]", f)),
        fields(BULKHEAD_FIELDS).prop_map(move |f| table("[bulkheads.db]", f)),
    ]
}

fn env_var() -> impl Strategy<Value = (String, String)> {
    let prefix = prop_oneof![
        Just("RESILIENT_BREAKER_DB_"),
        Just("RESILIENT_BULKHEAD_DB_"),
        Just("RESILIENT_CALL_SITE_NO_PANIC__GUARDED_"),
        Just("RESILIENT_"),
    ];
    let field =
        proptest::sample::select([BREAKER_FIELDS, BULKHEAD_FIELDS, CALL_SITE_FIELDS].concat());
    (
        prefix,
        field.prop_flat_map(|field| (Just(field), value_for(field))),
    )
        .prop_map(|(prefix, (field, value))| {
            let value = value.trim_matches('"').to_owned();
            (format!("{prefix}{}", field.to_ascii_uppercase()), value)
        })
}

#[resilient(
    name = "no_panic::guarded",
    breaker = "db",
    bulkhead = "db",
    retries = 2,
    backoff = "1ms"
)]
async fn guarded() -> Result<u32, TestError> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Err(TestError::Down(0))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Parse, validate, reload, call: any step may refuse, none may panic.
fn run_the_file(text: &str, env: &[(String, String)]) {
    let Ok(config) = FileConfig::from_toml(text) else {
        return;
    };
    let Ok(config) = config.with_env(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) else {
        return;
    };
    let registry = Arc::new(Registry::new());
    let _ = registry.validate();
    if registry.reload(&config).is_err() {
        return;
    }
    let calls = async {
        for _ in 0..3 {
            let _ = guarded().await;
            tokio::time::advance(Duration::from_secs(1)).await;
        }
    };
    paused_runtime().block_on(registry.scope(calls));
    let _ = registry.snapshot();
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::MAX),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_secs(365 * 24 * 3600)),
        1 => Just(Duration::from_secs(365 * 24 * 3600 + 1)),
        1 => any::<u64>().prop_map(Duration::from_nanos),
        1 => any::<u64>().prop_map(Duration::from_secs),
        30 => (1..10_000u64).prop_map(Duration::from_millis),
    ]
}

/// Every duration a builder takes, from anywhere in its range.
fn run_the_builder(durations: [Duration; 8]) {
    let [
        timeout,
        total,
        backoff,
        max_backoff,
        open_wait,
        max_open_wait,
        max_wait,
        slow,
    ] = durations;
    let registry = Registry::new();
    let breaker = BreakerConfig::default()
        .with_open_wait(open_wait)
        .with_open_wait_growth(2.0, max_open_wait)
        .with_slow_calls(slow, 0.5);
    let _ = registry.declare_breaker("b", breaker);
    let _ = registry.declare_bulkhead("b", BulkheadConfig::new(1).with_max_wait(max_wait));
    let built = Policy::builder("p")
        .timeout(timeout)
        .total_timeout(total)
        .retries(2)
        .backoff(Backoff::exponential(backoff, 2.0, max_backoff))
        .build_in(&registry);
    let Ok(policy) = built else {
        return;
    };
    paused_runtime().block_on(async {
        let _ = policy
            .call(|| async {
                tokio::time::sleep(Duration::from_millis(3)).await;
                Err::<(), _>(TestError::Down(0))
            })
            .await;
    });
}

/// A fixed seed: the same cases on every run and every machine.
fn config(seed: u64, cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(8, 2000))]
    #[test]
    fn no_configuration_text_or_environment_panics(
        text in config_text(),
        env in proptest::collection::vec(env_var(), 0..4),
    ) {
        run_the_file(&text, &env);
    }
}

proptest! {
    #![proptest_config(config(10, 2000))]
    #[test]
    fn no_setting_of_what_a_call_uses_panics(
        text in guarded_table(),
        env in proptest::collection::vec(env_var(), 0..2),
    ) {
        run_the_file(&text, &env);
    }
}

proptest! {
    #![proptest_config(config(9, 1000))]
    #[test]
    fn no_duration_given_to_a_builder_panics(durations in proptest::array::uniform8(duration())) {
        run_the_builder(durations);
    }
}
