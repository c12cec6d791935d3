//! The runtime's side of what the macro checks at compile time, and the dispatch tricks.

use super::site::method_name;
use super::spec::BACKOFF_MULTIPLIER;
use super::*;
use crate::backoff::Backoff;
use crate::name::MAX_NAME_LEN;

#[test]
fn the_macros_retry_limit_matches_the_runtimes() {
    // `resilient-macros` refuses `retries` above 100 at compile time, so that `policy()`
    // never meets a limit `build` would refuse.
    assert_eq!(crate::retry::MAX_RETRIES, 100);
    // Likewise `hedges` above 10, and `cache_capacity` above a million.
    assert_eq!(crate::hedge::MAX_HEDGES, 10);
    assert_eq!(crate::cache::MAX_CACHE_CAPACITY, 1_000_000);
}

#[test]
fn the_macros_backoff_defaults_match_the_runtimes() {
    let default = Backoff::default();
    assert_eq!(default.base, DEFAULT_BACKOFF);
    assert_eq!(default.max, DEFAULT_MAX_BACKOFF);
    assert!((default.multiplier - BACKOFF_MULTIPLIER).abs() < f64::EPSILON);
    assert_eq!(default.jitter, Jitter::default());
}

#[test]
// Written as the generated code writes it: the explicit borrow is what lets method
// resolution fall back to `ClassifyAny`.
#[allow(clippy::needless_borrow)]
fn transient_errors_are_asked_and_others_are_retried() {
    use std::io::{Error, ErrorKind};
    let denied = Error::from(ErrorKind::PermissionDenied);
    assert!(!(&Classify(&denied)).__resilient_classify().transient);
    assert!((&Classify(&"any error")).__resilient_classify().transient);
}

#[test]
fn retry_if_decides_and_keeps_the_hint() {
    let base = Classification {
        transient: true,
        retry_after: Some(Duration::from_secs(1)),
    };
    let decided = retry_if(&404, base, |code: &u16| *code >= 500);
    assert!(!decided.transient);
    assert_eq!(decided.retry_after, Some(Duration::from_secs(1)));
}

#[test]
fn a_method_is_named_after_its_type_without_generic_arguments() {
    assert_eq!(
        method_name("shop::{Self}::get", "shop::Users"),
        "shop::Users::get"
    );
    assert_eq!(
        method_name(
            "shop::{Self}::get",
            "shop::repo::Repo<alloc::string::String>"
        ),
        "shop::repo::Repo::get"
    );
    static SITE: CallSite = CallSite::new(Spec {
        name: "__private::tests::{Self}::get",
        breaker: None,
        bulkhead: None,
        timeout: None,
        total_timeout: None,
        retries: 0,
        backoff: None,
        max_backoff: None,
        jitter: None,
        hedge: None,
        hedges: 1,
        cache: None,
        cache_capacity: None,
    });
    assert_eq!(SITE.name(), "__private::tests::{Self}::get");
    SITE.name_after(|| "app::Orders<u8>");
    SITE.name_after(|| "app::Users");
    assert_eq!(SITE.name(), "app::Orders::get", "the first call names it");
    assert_eq!(SITE.policy().name(), "app::Orders::get");
    assert_eq!(*SITE.named().get().unwrap(), "app::Orders::get");
}

#[test]
fn a_spec_builds_the_policy_it_describes() {
    static SITE: CallSite = CallSite::new(Spec {
        name: "__private::tests::spec",
        breaker: None,
        bulkhead: None,
        timeout: Some(Duration::from_millis(250)),
        total_timeout: Some(Duration::from_secs(2)),
        retries: 3,
        backoff: Some(Duration::from_millis(20)),
        max_backoff: None,
        jitter: Some(Jitter::Equal),
        hedge: Some(Duration::from_millis(40)),
        hedges: 2,
        cache: Some(Duration::from_secs(60)),
        cache_capacity: Some(10),
    });
    let policy = SITE.policy();
    assert!(std::ptr::eq(policy, SITE.policy()), "built once");
    assert_eq!(policy.timeouts().attempt, Some(Duration::from_millis(250)));
    assert_eq!(policy.timeouts().total, Some(Duration::from_secs(2)));
    assert_eq!(policy.retry().max_retries, 3);
    let hedge = policy.hedge().expect("the spec hedges");
    assert_eq!((hedge.delay, hedge.hedges), (Duration::from_millis(40), 2));
    let backoff = policy.retry().backoff;
    assert_eq!(backoff.base, Duration::from_millis(20));
    assert_eq!(backoff.max, DEFAULT_MAX_BACKOFF);
    assert_eq!(backoff.jitter, Jitter::Equal);
}

#[test]
fn a_default_name_past_the_limit_keeps_its_end_within_it() {
    let deep = format!("{}::price", "very_deep_module::".repeat(20));
    let named = method_name(
        Box::leak(format!("{deep}::{{Self}}::get").into_boxed_str()),
        &deep,
    );
    assert!(named.len() <= MAX_NAME_LEN, "{} bytes", named.len());
    assert!(
        named.starts_with('…') && named.ends_with("::price::get"),
        "{named}"
    );
    assert!(crate::name::check_name("call site", named).is_ok());
}
