//! Link-time registration of annotated functions: `Registry::call_sites` lists them and
//! `Registry::validate` catches a breaker or bulkhead name nobody declared.
//!
//! This file is its own test binary, so the annotated functions below are the only ones the
//! registry can see.

use resilient::{BreakerConfig, BulkheadConfig, Registry, Rejection, resilient};

#[derive(Debug)]
pub struct Error(pub Rejection);

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error(rejection)
    }
}

#[resilient(name = "orders::list", breaker = "orders_db", bulkhead = "orders_db")]
pub async fn list_orders() -> Result<u32, Error> {
    Ok(1)
}

#[resilient(name = "pricing::quote", timeout = "2s", breaker = "featur_store")]
pub async fn quote() -> Result<u32, Error> {
    Ok(2)
}

fn declare_all_but_the_typo(registry: &Registry) {
    registry
        .declare_breaker("orders_db", BreakerConfig::default())
        .unwrap();
    registry
        .declare_bulkhead("orders_db", BulkheadConfig::default())
        .unwrap();
    registry
        .declare_breaker("feature_store", BreakerConfig::default())
        .unwrap();
}

#[test]
fn every_annotated_function_is_listed_with_what_it_declared() {
    let registry = Registry::new();
    let sites = registry.call_sites();
    let names: Vec<_> = sites.iter().map(|site| site.info.name).collect();
    assert_eq!(names, ["orders::list", "pricing::quote"]);
    let quote = &sites[1];
    assert_eq!(quote.info.breaker, Some("featur_store"));
    assert_eq!(quote.info.bulkhead, None);
    assert!(
        quote.info.options.contains("timeout = \"2s\""),
        "{}",
        quote.info.options
    );
    assert!(quote.info.file.ends_with("validate.rs"));
    assert_eq!(quote.metrics, None, "it has not run in this registry");
}

#[test]
fn a_misspelled_breaker_fails_validation_with_a_suggestion() {
    let registry = Registry::new();
    declare_all_but_the_typo(&registry);
    let error = registry.validate().unwrap_err();
    assert_eq!(error.problems().len(), 1, "{error}");
    let problem = &error.problems()[0];
    assert!(
        problem.contains("`pricing::quote`")
            && problem.contains("breaker `featur_store`, which was never declared")
            && problem.contains("did you mean `feature_store`?"),
        "{problem}"
    );
}

#[test]
fn undeclared_names_are_all_reported_at_once() {
    let registry = Registry::new();
    let error = registry.validate().unwrap_err();
    assert_eq!(error.problems().len(), 3, "{error}");
    assert!(error.to_string().starts_with("3 problem(s)"));
}

#[test]
fn names_created_with_defaults_on_first_use_still_count_as_undeclared() {
    let registry = Registry::new();
    declare_all_but_the_typo(&registry);
    // Using the misspelled name creates it with the default configuration...
    let _ = registry.breaker("featur_store").unwrap();
    // ...which is exactly what validation is there to catch.
    assert!(registry.validate().is_err());
    registry
        .declare_breaker("featur_store", BreakerConfig::default())
        .unwrap();
    assert_eq!(registry.validate(), Ok(()));
}

#[test]
fn a_configuration_file_declares_names_even_ones_already_in_use() {
    let registry = Registry::new();
    declare_all_but_the_typo(&registry);
    // In use with the default configuration first, then declared by a reloaded file.
    let _ = registry.breaker("featur_store").unwrap();
    let file = resilient::config::FileConfig::from_toml("[breakers.featur_store]\n").unwrap();
    registry.reload(&file).unwrap();
    assert_eq!(registry.validate(), Ok(()));
}
