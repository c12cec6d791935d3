//! Default call-site names are unique: methods are named after their type, so `Users::get` and
//! `Orders::get` in one module keep their own metrics, configuration and kill switch; and
//! `Registry::validate` reports two call sites that share a name, with both places.
//!
//! This file is its own test binary, so the annotated functions below are the only ones the
//! registry can see.

use std::sync::atomic::{AtomicU32, Ordering};

use resilient::config::FileConfig;
use resilient::{Registry, Rejection, registry, resilient};

#[derive(Debug, PartialEq)]
enum Error {
    Down,
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

/// Fails every call; counts the attempts.
#[derive(Default)]
struct Users(AtomicU32);

#[derive(Default)]
struct Orders(AtomicU32);

impl Users {
    #[resilient(retries = 2, backoff = "1ms")]
    async fn get(&self) -> Result<u32, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::Down)
    }
}

impl Orders {
    #[resilient(retries = 2, backoff = "1ms")]
    async fn get(&self) -> Result<u32, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::Down)
    }
}

const USERS: &str = "call_site_names::Users::get";
const ORDERS: &str = "call_site_names::Orders::get";

#[tokio::test(start_paused = true)]
async fn two_types_in_one_module_keep_their_own_call_sites() {
    // Configuration for one of them, applied before either runs.
    let file = FileConfig::from_toml(&format!("[call_sites.\"{ORDERS}\"]\nretries = 0\n")).unwrap();
    registry().reload(&file).unwrap();

    let pending: Vec<_> = registry()
        .call_sites()
        .into_iter()
        .filter(|site| site.info.is_name_pending())
        .map(|site| site.info.current_name())
        .collect();
    assert_eq!(
        pending,
        [
            "call_site_names::{Self}::get",
            "call_site_names::{Self}::get"
        ],
        "before their first call, the type is not known"
    );

    let (users, orders) = (Users::default(), Orders::default());
    assert_eq!(users.get().await, Err(Error::Down));
    assert_eq!(orders.get().await, Err(Error::Down));
    assert_eq!(
        users.0.load(Ordering::SeqCst),
        3,
        "the attribute's 2 retries"
    );
    assert_eq!(
        orders.0.load(Ordering::SeqCst),
        1,
        "the file's `retries = 0`, for Orders only"
    );

    // Metrics: one entry each.
    let calls = |name: &str| {
        registry()
            .call_site_metrics()
            .into_iter()
            .find(|metrics| &*metrics.name == name)
            .map(|metrics| metrics.calls)
    };
    assert_eq!((calls(USERS), calls(ORDERS)), (Some(1), Some(1)));

    // The kill switch: Users only.
    assert!(registry().bypass_call_site(USERS, true));
    assert_eq!(users.get().await, Err(Error::Down));
    assert_eq!(
        users.0.load(Ordering::SeqCst),
        4,
        "bypassed: one plain attempt"
    );
    assert_eq!(orders.get().await, Err(Error::Down));
    assert_eq!(orders.0.load(Ordering::SeqCst), 2);

    // The registry's listing sees the same names.
    let names: Vec<_> = registry()
        .call_sites()
        .into_iter()
        .map(|site| site.info.current_name())
        .filter(|name| name.ends_with("::get"))
        .collect();
    assert_eq!(names, [ORDERS, USERS]);
}

// Two functions that share a name: here by the `name` key.

#[resilient(name = "shared", timeout = "1s")]
async fn first() -> Result<u32, Error> {
    Ok(1)
}

#[resilient(name = "shared", timeout = "1s")]
async fn second() -> Result<u32, Error> {
    Ok(2)
}

#[test]
fn call_sites_sharing_a_name_fail_validation_with_both_places() {
    let error = Registry::new().validate().unwrap_err();
    assert_eq!(error.problems().len(), 1, "{error}");
    let problem = &error.problems()[0];
    let first_line = line_of("async fn first");
    let second_line = line_of("async fn second");
    assert!(
        problem.starts_with("2 call sites share the name `shared`")
            && problem.contains(&format!("tests/call_site_names.rs:{first_line}"))
            && problem.contains(&format!("tests/call_site_names.rs:{second_line}")),
        "{problem}"
    );
}

/// The line of the attribute above the function `signature` starts.
fn line_of(signature: &str) -> usize {
    let source = include_str!("call_site_names.rs");
    source
        .lines()
        .position(|line| line.starts_with(signature))
        .expect("the function is in this file")
}

#[tokio::test]
async fn the_shared_functions_run() {
    assert_eq!((first().await, second().await), (Ok(1), Ok(2)));
}
