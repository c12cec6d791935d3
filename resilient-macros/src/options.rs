//! The attribute's keys: parsed with darling into one typed [`Options`], then checked across
//! keys. Every problem is collected and reported at once, each at the token it is about.

use std::time::Duration;

use darling::Error;
use darling::ast::NestedMeta;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{ExprPath, Meta};

use crate::values::{
    CapacityArg, CrateArg, DurationArg, HedgesArg, JitterArg, KeyArg, NameArg, PathArg, RetriesArg,
};

/// Every key, for "did you mean" and the list in the unknown-key error.
const KEYS: &[&str] = &[
    "timeout",
    "total_timeout",
    "retries",
    "backoff",
    "max_backoff",
    "jitter",
    "retry_if",
    "hedge",
    "hedges",
    "cache",
    "cache_capacity",
    "cache_key",
    "idempotency_key",
    "breaker",
    "breaker_key",
    "bulkhead",
    "fallback",
    "name",
    "crate",
];

/// Kept in step with `resilient::retry::MAX_RETRIES` (a test of `resilient::__private` checks).
pub(crate) const MAX_RETRIES: u32 = 100;
/// Kept in step with `resilient::hedge::MAX_HEDGES` (a test of `resilient::__private` checks).
pub(crate) const MAX_HEDGES: u32 = 10;
/// Kept in step with `resilient::cache::MAX_CACHE_CAPACITY` (a test of `resilient::__private`
/// checks).
pub(crate) const MAX_CACHE_CAPACITY: usize = 1_000_000;
/// Kept in step with `resilient::__private::DEFAULT_BACKOFF` and `DEFAULT_MAX_BACKOFF`.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A value with the span of its key (for rules about the key) and of the value itself.
#[derive(Debug, Clone)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) key: Span,
    pub(crate) span: Span,
}

/// The jitter choices, as the attribute spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jitter {
    None,
    Full,
    Equal,
    Decorrelated,
}

pub(crate) const JITTERS: &[&str] = &["none", "full", "equal", "decorrelated"];

/// What one `#[resilient(...)]` asks for.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) timeout: Option<Setting<Duration>>,
    pub(crate) total_timeout: Option<Setting<Duration>>,
    pub(crate) retries: Option<Setting<u32>>,
    pub(crate) backoff: Option<Setting<Duration>>,
    pub(crate) max_backoff: Option<Setting<Duration>>,
    pub(crate) jitter: Option<Setting<Jitter>>,
    pub(crate) retry_if: Option<Setting<ExprPath>>,
    /// How long an attempt may go unanswered before a hedge starts beside it.
    pub(crate) hedge: Option<Setting<Duration>>,
    /// How many hedges (with `hedge`).
    pub(crate) hedges: Option<Setting<u32>>,
    /// How old a cached value may be and still answer a failed call.
    pub(crate) cache: Option<Setting<Duration>>,
    /// How many keys the cache keeps (with `cache`).
    pub(crate) cache_capacity: Option<Setting<usize>>,
    /// The cache's key, evaluated per call (with `cache`); the arguments by default.
    pub(crate) cache_key: Option<Setting<syn::Expr>>,
    /// The call's idempotency key (a `resilient::IdempotencyKey`), evaluated per call; one is
    /// generated when an attempt first asks otherwise.
    pub(crate) idempotency_key: Option<Setting<syn::Expr>>,
    pub(crate) breaker: Option<Setting<String>>,
    /// An expression evaluated per call: its value picks the key's breaker in the family
    /// `breaker` names.
    pub(crate) breaker_key: Option<Setting<syn::Expr>>,
    pub(crate) bulkhead: Option<Setting<String>>,
    pub(crate) fallback: Option<Setting<ExprPath>>,
    pub(crate) name: Option<Setting<String>>,
    /// The path to the `resilient` crate, when it is not `::resilient`.
    pub(crate) krate: Option<Setting<syn::Path>>,
    /// `retries` was written, even if its value was refused.
    retries_given: bool,
    /// The settings as written, `timeout = "2s", retries = 3`, for the call site's description.
    pub(crate) written: String,
}

impl Options {
    /// Parses the attribute's arguments, reporting every problem at once.
    pub(crate) fn parse(args: TokenStream) -> darling::Result<Options> {
        if args.is_empty() {
            return Err(Error::custom(
                "`#[resilient]` needs at least one setting, such as `#[resilient(timeout = \"2s\", retries = 3)]`",
            ));
        }
        let items = NestedMeta::parse_meta_list(args)?;
        let mut errors = Error::accumulator();
        let written = items
            .iter()
            .map(|item| written(&item.to_token_stream().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut options = Options {
            written,
            ..Options::default()
        };
        for item in items {
            match item {
                NestedMeta::Meta(meta) => options.set(&meta, &mut errors),
                NestedMeta::Lit(lit) => errors.push(at(
                    &lit,
                    "expected `key = value`, such as `timeout = \"2s\"`, not a bare value",
                )),
            }
        }
        options.check_rules(&mut errors);
        errors.finish_with(options)
    }

    /// The plain breaker's name: none when `breaker` names a family (with `breaker_key`).
    pub(crate) fn plain_breaker(&self) -> Option<&Setting<String>> {
        self.breaker.as_ref().filter(|_| self.breaker_key.is_none())
    }

    /// Attempts after the first: 0 without `retries`.
    pub(crate) fn retries(&self) -> u32 {
        self.retries.as_ref().map_or(0, |retries| retries.value)
    }

    fn set(&mut self, meta: &Meta, errors: &mut darling::error::Accumulator) {
        let path = meta.path();
        let key = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect::<Vec<_>>()
            .join("::");
        match key.as_str() {
            "timeout" => set(&mut self.timeout, meta, errors, DurationArg::get),
            "total_timeout" => set(&mut self.total_timeout, meta, errors, DurationArg::get),
            "retries" => {
                self.retries_given = true;
                set(&mut self.retries, meta, errors, RetriesArg::get);
            }
            "backoff" => set(&mut self.backoff, meta, errors, DurationArg::get),
            "max_backoff" => set(&mut self.max_backoff, meta, errors, DurationArg::get),
            "jitter" => set(&mut self.jitter, meta, errors, JitterArg::get),
            "retry_if" => set(&mut self.retry_if, meta, errors, PathArg::get),
            "hedge" => set(&mut self.hedge, meta, errors, DurationArg::get),
            "hedges" => set(&mut self.hedges, meta, errors, HedgesArg::get),
            "cache" => set(&mut self.cache, meta, errors, DurationArg::get),
            "cache_capacity" => set(&mut self.cache_capacity, meta, errors, CapacityArg::get),
            "cache_key" => set(&mut self.cache_key, meta, errors, KeyArg::get),
            "idempotency_key" => set(&mut self.idempotency_key, meta, errors, KeyArg::get),
            "breaker" => set(&mut self.breaker, meta, errors, NameArg::get),
            "breaker_key" => set(&mut self.breaker_key, meta, errors, KeyArg::get),
            "bulkhead" => set(&mut self.bulkhead, meta, errors, NameArg::get),
            "fallback" => set(&mut self.fallback, meta, errors, PathArg::get),
            "name" => set(&mut self.name, meta, errors, NameArg::get),
            "crate" => set(&mut self.krate, meta, errors, CrateArg::get),
            _ => {
                let unknown = Error::unknown_field_with_alts(&key, KEYS);
                errors.push(at(
                    path,
                    format!("{unknown}\nthe keys are: {}", KEYS.join(", ")),
                ));
            }
        }
    }

    /// Whether attempts run side by side (`hedge`): each then needs arguments of its own.
    pub(crate) fn hedged(&self) -> bool {
        self.hedge.is_some()
    }

    /// The rules across keys.
    fn check_rules(&self, errors: &mut darling::error::Accumulator) {
        for (given, key) in [
            (
                self.cache_capacity.as_ref().map(|s| s.key),
                "cache_capacity",
            ),
            (self.cache_key.as_ref().map(|s| s.key), "cache_key"),
        ] {
            if let (Some(span), None) = (given, &self.cache) {
                errors.push(at_span(
                    span,
                    format!(
                        "`{key}` shapes the stale-while-failing cache, which needs `cache`, the age up to which a cached value may answer a failed call: add `cache = \"5m\"` (or another age)"
                    ),
                ));
            }
        }
        if let (Some(hedges), None) = (&self.hedges, &self.hedge) {
            errors.push(at_span(
                hedges.key,
                "`hedges` needs `hedge`, the delay after which a slow attempt gets a hedge: add `hedge = \"50ms\"` (or another delay)",
            ));
        }

        if let (Some(timeout), Some(total)) = (&self.timeout, &self.total_timeout)
            && timeout.value > total.value
        {
            errors.push(at_span(
                timeout.span,
                format!(
                    "`timeout` ({:?}) is longer than `total_timeout` ({:?}): no attempt could use all of it; shorten `timeout` or lengthen `total_timeout`",
                    timeout.value, total.value
                ),
            ));
        }
        self.check_retry_keys(errors);
        if let (Some(key), None) = (&self.breaker_key, &self.breaker) {
            errors.push(at_span(
                key.key,
                "`breaker_key` picks a breaker in the family `breaker` names: add `breaker = \"upstream\"`",
            ));
        }
        let base = self.backoff.as_ref().map_or(DEFAULT_BACKOFF, |b| b.value);
        match (&self.backoff, &self.max_backoff) {
            (_, Some(max)) if max.value < base => errors.push(at_span(
                max.span,
                format!(
                    "`max_backoff` ({:?}) is below the first backoff delay ({base:?}{}); raise `max_backoff` or lower `backoff`",
                    max.value,
                    if self.backoff.is_some() { "" } else { ", the default `backoff`" },
                ),
            )),
            (Some(backoff), None) if backoff.value > DEFAULT_MAX_BACKOFF => errors.push(at_span(
                backoff.span,
                format!(
                    "`backoff` ({:?}) is above the default `max_backoff` ({DEFAULT_MAX_BACKOFF:?}); set `max_backoff` as well",
                    backoff.value
                ),
            )),
            _ => {}
        }
    }

    /// `backoff`, `max_backoff`, `jitter` and `retry_if` shape retries, so they need some.
    fn check_retry_keys(&self, errors: &mut darling::error::Accumulator) {
        let retry_keys = [
            ("backoff", self.backoff.as_ref().map(|k| k.key)),
            ("max_backoff", self.max_backoff.as_ref().map(|k| k.key)),
            ("jitter", self.jitter.as_ref().map(|k| k.key)),
            ("retry_if", self.retry_if.as_ref().map(|k| k.key)),
        ];
        for (name, key) in retry_keys {
            let Some(key) = key else { continue };
            let message = match &self.retries {
                // A `retries` that failed to parse has its own error already.
                None if self.retries_given => continue,
                None => format!(
                    "`{name}` needs `retries`: it shapes retries, and without `retries` there are none; add `retries = 3` (or another count) or remove `{name}`"
                ),
                Some(retries) if retries.value == 0 => format!(
                    "`{name}` has no effect with `retries = 0`: raise `retries` or remove `{name}`"
                ),
                Some(_) => continue,
            };
            errors.push(at_span(key, message));
        }
    }
}

/// One setting as a person writes it: `fallback = Self::cached`, not `Self :: cached`.
fn written(tokens: &str) -> String {
    tokens
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
}

/// An error whose caret covers all of `tokens` (darling's `with_span` keeps only the first).
pub(crate) fn at(tokens: &impl quote::ToTokens, message: impl std::fmt::Display) -> Error {
    syn::Error::new_spanned(tokens, message).into()
}

/// An error at `span`.
pub(crate) fn at_span(span: Span, message: impl std::fmt::Display) -> Error {
    syn::Error::new(span, message).into()
}

/// Records one key's value, refusing a second occurrence.
fn set<T>(
    slot: &mut Option<Setting<T>>,
    meta: &Meta,
    errors: &mut darling::error::Accumulator,
    parse: impl FnOnce(&Meta) -> darling::Result<T>,
) {
    let key = meta.path();
    if slot.is_some() {
        errors.push(at(
            key,
            format!(
                "`{}` is given twice; keep one",
                key.get_ident().map(ToString::to_string).unwrap_or_default()
            ),
        ));
        return;
    }
    if let Some(value) = errors.handle(parse(meta)) {
        let span = match meta {
            Meta::NameValue(pair) => pair.value.span(),
            _ => meta.span(),
        };
        *slot = Some(Setting {
            value,
            key: key.span(),
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(args: TokenStream) -> Vec<String> {
        match Options::parse(args) {
            Ok(options) => panic!("accepted: {options:?}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_breaker_key_makes_the_breaker_a_family() {
        let options = Options::parse(quote!(breaker = "hosts", breaker_key = req.host())).unwrap();
        assert_eq!(options.breaker.as_ref().unwrap().value, "hosts");
        assert!(
            options.plain_breaker().is_none(),
            "no plain breaker named `hosts`"
        );
        let key = options.breaker_key.unwrap().value;
        assert_eq!(quote!(#key).to_string(), "req . host ()");
        let plain = Options::parse(quote!(breaker = "db")).unwrap();
        assert_eq!(plain.plain_breaker().unwrap().value, "db");
    }

    #[test]
    fn a_breaker_key_needs_a_breaker() {
        let found = errors(quote!(breaker_key = host));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("`breaker_key` picks a breaker in the family"));
    }

    #[test]
    fn parses_every_key() {
        let options = Options::parse(quote! {
            timeout = "250ms", total_timeout = "2s", retries = 3, backoff = "50ms",
            max_backoff = "1s", jitter = "equal", retry_if = is_transient,
            breaker = "db", bulkhead = "db_pool", fallback = Self::cached, name = "svc::get"
        })
        .unwrap();
        assert_eq!(options.timeout.unwrap().value, Duration::from_millis(250));
        assert_eq!(options.total_timeout.unwrap().value, Duration::from_secs(2));
        assert_eq!(options.retries.unwrap().value, 3);
        assert_eq!(options.jitter.unwrap().value, Jitter::Equal);
        assert_eq!(options.breaker.unwrap().value, "db");
        assert_eq!(options.name.unwrap().value, "svc::get");
        assert!(options.fallback.is_some() && options.retry_if.is_some());
        assert!(
            options
                .written
                .starts_with("timeout = \"250ms\", total_timeout = \"2s\"")
        );
        assert!(
            options
                .written
                .ends_with("fallback = Self::cached, name = \"svc::get\"")
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let found = errors(quote! {
            timout = "2s", retries = "3", breaker = "", timeout = "3s", total_timeout = "2s",
            jitter = full, fallback = || 0
        });
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("Did you mean `timeout`"), "{}", found[0]);
        assert!(found[1].contains("write `retries = 3` without quotes"));
        assert!(found[2].contains("must not be empty"));
        assert!(found[3].contains("not a closure"));
        assert!(found[4].contains("longer than `total_timeout`"));
        // `jitter` without usable `retries` is not reported: `retries` itself was wrong.
    }

    #[test]
    fn names_follow_the_runtime_naming_rule() {
        let long = "x".repeat(257);
        let found = errors(quote! {
            breaker = "a\tb", bulkhead = " pool", name = #long
        });
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("a breaker's name must not contain control characters"));
        assert!(found[1].contains("a bulkhead's name must not start or end with whitespace"));
        assert!(found[2].contains("a call site's name is longer than 256 bytes"));
        assert!(Options::parse(quote!(breaker = "feature store", name = "svc::get")).is_ok());
    }

    #[test]
    fn retry_keys_need_retries() {
        let found = errors(quote!(backoff = "1s", jitter = none));
        assert_eq!(found.len(), 2);
        assert!(found[0].starts_with("`backoff` needs `retries`"));
        let found = errors(quote!(retries = 0, retry_if = f));
        assert!(found[0].contains("no effect with `retries = 0`"));
    }

    #[test]
    fn backoff_must_fit_under_its_cap() {
        let found = errors(quote!(retries = 1, max_backoff = "50ms"));
        assert!(found[0].contains("the default `backoff`"), "{found:?}");
        let found = errors(quote!(retries = 1, backoff = "20s"));
        assert!(found[0].contains("default `max_backoff`"), "{found:?}");
        assert!(Options::parse(quote!(retries = 1, backoff = "20s", max_backoff = "1m")).is_ok());
    }

    #[test]
    fn duplicates_and_shapes_are_refused() {
        let found = errors(quote!(retries = 1, retries = 2));
        assert_eq!(found, ["`retries` is given twice; keep one"]);
        let found = errors(quote!(timeout));
        assert_eq!(found, ["`timeout` needs a value: write `timeout = \"2s\"`"]);
        let found = errors(quote!(retries = 101));
        assert!(found[0].contains("at most 100"));
        let found = errors(quote!(breaker = feature_store));
        assert_eq!(
            found,
            ["expected a string: write `breaker = \"feature_store\"`"]
        );
    }

    #[test]
    fn crate_takes_a_path_bare_or_quoted() {
        for args in [
            quote!(retries = 1, crate = my_facade::resilient),
            quote!(retries = 1, crate = "my_facade::resilient"),
        ] {
            let path = Options::parse(args).unwrap().krate.unwrap().value;
            assert_eq!(path.to_token_stream().to_string(), "my_facade :: resilient");
        }
        let found = errors(quote!(crate = "not a path"));
        assert!(found[0].contains("is not a path"), "{found:?}");
    }

    #[test]
    fn an_empty_attribute_asks_for_something() {
        assert!(errors(TokenStream::new())[0].contains("needs at least one setting"));
    }
}
