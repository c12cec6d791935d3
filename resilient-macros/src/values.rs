//! Each key's value: a [`FromMeta`] parser per kind of value, each error at the value and
//! saying what to write instead.

use std::time::Duration;

use darling::{Error, FromMeta};
use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprPath, Lit, Meta};

use crate::duration;
use crate::options::{JITTERS, Jitter, MAX_CACHE_CAPACITY, MAX_HEDGES, MAX_RETRIES, at, at_span};

/// Parses a `key = value` item with `T`'s [`FromMeta`], explaining the other shapes.
fn value<T: FromMeta>(meta: &Meta, example: &str) -> darling::Result<T> {
    let key = meta
        .path()
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    match meta {
        Meta::NameValue(pair) => T::from_expr(unwrap_group(&pair.value)),
        Meta::Path(path) => Err(at(
            path,
            format!("`{key}` needs a value: write `{key} = {example}`"),
        )),
        Meta::List(list) => Err(at(
            list,
            format!("write `{key} = {example}`, not `{key}(...)`"),
        )),
    }
}

/// Values produced by `macro_rules` arrive wrapped in invisible groups.
fn unwrap_group(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => unwrap_group(&group.expr),
        Expr::Paren(paren) => unwrap_group(&paren.expr),
        other => other,
    }
}

/// What a value is, for "expected X, found Y".
fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a boolean",
            _ => "a literal",
        },
        Expr::Path(_) => "a path",
        Expr::Closure(_) => "a closure",
        _ => "an expression",
    }
}

fn expected(what: &str, example: &str, found: &Expr) -> Error {
    at(
        found,
        format!(
            "expected {what}, such as `{example}`; found {}",
            describe(found)
        ),
    )
}

/// `timeout`, `total_timeout`, `backoff`, `max_backoff`: a string such as `"2s"`.
pub(crate) struct DurationArg(Duration);

impl DurationArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<Duration> {
        value::<DurationArg>(meta, "\"2s\"").map(|arg| arg.0)
    }
}

impl FromMeta for DurationArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => duration::parse(&text.value())
                .map(DurationArg)
                .map_err(|error| at(text, error.message(&text.value()))),
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => Err(at(
                int,
                format!(
                    "expected a duration string with a unit, such as `\"{0}s\"` or `\"{0}ms\"`; found an integer",
                    int.base10_digits()
                ),
            )),
            other => Err(expected("a duration string", "\"2s\"", other)),
        }
    }
}

/// `hedges`: a whole number from 1 to [`MAX_HEDGES`].
pub(crate) struct HedgesArg(u32);

impl HedgesArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<u32> {
        value::<HedgesArg>(meta, "2").map(|arg| arg.0)
    }
}

impl FromMeta for HedgesArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        let Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) = expr
        else {
            return Err(expected("an integer", "hedges = 2", expr));
        };
        match int.base10_parse::<u32>() {
            Ok(n) if int.suffix().is_empty() && (1..=MAX_HEDGES).contains(&n) => Ok(HedgesArg(n)),
            _ => Err(at(
                int,
                format!(
                    "`hedges` counts the hedges beside an attempt, from 1 to {MAX_HEDGES}: each one is another call to the dependency"
                ),
            )),
        }
    }
}

/// `retries`: a whole number, at most [`MAX_RETRIES`].
pub(crate) struct RetriesArg(u32);

impl RetriesArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<u32> {
        value::<RetriesArg>(meta, "3").map(|arg| arg.0)
    }
}

impl FromMeta for RetriesArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        let too_many = || {
            at(
                expr,
                format!(
                    "`retries` is at most {MAX_RETRIES}: more retries only add load to a dependency that keeps failing"
                ),
            )
        };
        let negative = || {
            at(
                expr,
                "`retries` counts the attempts after the first: it cannot be negative",
            )
        };
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => {
                if !int.suffix().is_empty() {
                    return Err(at(
                        int,
                        format!(
                            "write `retries = {}` without a type suffix",
                            int.base10_digits()
                        ),
                    ));
                }
                if int.base10_digits().starts_with('-') {
                    return Err(negative());
                }
                match int.base10_parse::<u32>() {
                    Ok(n) if n <= MAX_RETRIES => Ok(RetriesArg(n)),
                    _ => Err(too_many()),
                }
            }
            Expr::Unary(_) => Err(negative()),
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => Err(at(
                text,
                format!(
                    "expected an integer, such as `retries = 3`; found a string (write `retries = {}` without quotes)",
                    text.value()
                ),
            )),
            other => Err(expected("an integer", "retries = 3", other)),
        }
    }
}

/// `breaker`, `bulkhead`, `name`: a non-blank string.
pub(crate) struct NameArg(String);

impl NameArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<String> {
        let key = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let example = if key == "name" {
            "\"checkout::price\""
        } else {
            "\"feature_store\""
        };
        let arg = value::<NameArg>(meta, example).map_err(|error| match meta {
            // A bare identifier is the likeliest slip: say so with the quoted form.
            Meta::NameValue(pair) if matches!(unwrap_group(&pair.value), Expr::Path(_)) => {
                let written = pair.value.to_token_stream().to_string();
                at(
                    &pair.value,
                    format!("expected a string: write `{key} = \"{written}\"`"),
                )
            }
            _ => error,
        })?;
        if arg.0.trim().is_empty() {
            let what = match key.as_str() {
                "breaker" => "a breaker's name",
                "bulkhead" => "a bulkhead's name",
                _ => "a call site's name",
            };
            return Err(at_span(
                name_value_span(meta),
                format!("{what} must not be empty: write `{key} = {example}`"),
            ));
        }
        // The runtime's naming rule (`resilient::MAX_NAME_LEN` and what it documents): a name
        // it would refuse must not compile, or the call site would fail on its first call.
        if let Some(problem) = name_problem(&arg.0) {
            let what = match key.as_str() {
                "breaker" => "a breaker's name",
                "bulkhead" => "a bulkhead's name",
                _ => "a call site's name",
            };
            return Err(at_span(
                name_value_span(meta),
                format!("{what} {problem}: names end up in log lines and metric labels"),
            ));
        }
        Ok(arg.0)
    }
}

/// The longest name the runtime accepts, in bytes (`resilient::MAX_NAME_LEN`).
const MAX_NAME_LEN: usize = 256;

/// Why the runtime would refuse a non-blank `name`, if it would.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_NAME_LEN {
        Some("is longer than 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters (line breaks, tabs, escapes)")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("must not start or end with whitespace")
    } else {
        None
    }
}

fn name_value_span(meta: &Meta) -> Span {
    match meta {
        Meta::NameValue(pair) => pair.value.span(),
        other => other.span(),
    }
}

impl FromMeta for NameArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => Ok(NameArg(text.value())),
            other => Err(expected("a string", "\"feature_store\"", other)),
        }
    }
}

/// `jitter`: `none`, `full`, `equal` or `decorrelated`, bare or quoted.
pub(crate) struct JitterArg(Jitter);

impl JitterArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<Jitter> {
        value::<JitterArg>(meta, "full").map(|arg| arg.0)
    }

    fn named(name: &str, written: &impl quote::ToTokens) -> darling::Result<Self> {
        Ok(JitterArg(match name {
            "none" => Jitter::None,
            "full" => Jitter::Full,
            "equal" => Jitter::Equal,
            "decorrelated" => Jitter::Decorrelated,
            _ => {
                let unknown = Error::unknown_value_with_alts(name, JITTERS);
                return Err(at(
                    written,
                    format!("{unknown}\n`jitter` is one of: {}", JITTERS.join(", ")),
                ));
            }
        }))
    }
}

impl FromMeta for JitterArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => JitterArg::named(&text.value(), text),
            Expr::Path(path) if path.path.get_ident().is_some() => {
                let ident = path.path.get_ident().map(ToString::to_string);
                JitterArg::named(&ident.unwrap_or_default(), path)
            }
            other => Err(expected(
                "`none`, `full`, `equal` or `decorrelated`",
                "jitter = full",
                other,
            )),
        }
    }
}

/// `crate`: the path to `resilient` for a renamed dependency or a facade that re-exports it,
/// written as a path or, as serde and tokio accept, a string holding one.
pub(crate) struct CrateArg(syn::Path);

impl CrateArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<syn::Path> {
        value::<CrateArg>(meta, "my_facade::resilient").map(|arg| arg.0)
    }
}

impl FromMeta for CrateArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Path(path) if path.qself.is_none() => Ok(CrateArg(path.path.clone())),
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => text.parse::<syn::Path>().map(CrateArg).map_err(|_| {
                at(
                    text,
                    format!(
                        "\"{}\" is not a path: write the path to `resilient`, such as `crate = my_facade::resilient`",
                        text.value()
                    ),
                )
            }),
            other => Err(expected(
                "a path to the `resilient` crate",
                "crate = my_facade::resilient",
                other,
            )),
        }
    }
}

/// `breaker_key`: any expression, evaluated per call before the body runs.
pub(crate) struct KeyArg;

impl KeyArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<Expr> {
        let key = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match meta {
            Meta::NameValue(pair) => Ok(pair.value.clone()),
            _ => Err(Error::custom(format!(
                "expected `{key} = <expression>`, such as `{key} = host`"
            ))
            .with_span(meta)),
        }
    }
}

/// `cache_capacity`: a whole number from 1 to [`MAX_CACHE_CAPACITY`].
pub(crate) struct CapacityArg(usize);

impl CapacityArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<usize> {
        value::<CapacityArg>(meta, "1000").map(|arg| arg.0)
    }
}

impl FromMeta for CapacityArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        let Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) = expr
        else {
            return Err(expected("an integer", "cache_capacity = 1000", expr));
        };
        match int.base10_parse::<usize>() {
            Ok(n) if int.suffix().is_empty() && (1..=MAX_CACHE_CAPACITY).contains(&n) => {
                Ok(CapacityArg(n))
            }
            _ => Err(at(
                int,
                format!(
                    "`cache_capacity` counts the keys the cache keeps, from 1 to {MAX_CACHE_CAPACITY}"
                ),
            )),
        }
    }
}

/// `fallback`, `retry_if`: a path to a function.
pub(crate) struct PathArg(ExprPath);

impl PathArg {
    pub(crate) fn get(meta: &Meta) -> darling::Result<ExprPath> {
        let key = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let example = if key == "fallback" {
            "cached_price"
        } else {
            "is_transient"
        };
        value::<PathArg>(meta, example)
            .map(|arg| arg.0)
            .map_err(|error| match meta {
                Meta::NameValue(pair) => path_error(&key, example, unwrap_group(&pair.value)),
                _ => error,
            })
    }
}

/// The explanation for a value that is not a path, by what it is instead.
fn path_error(key: &str, example: &str, value: &Expr) -> Error {
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => format!(
            "expected a path to a function, not a string: write `{key} = {}`",
            text.value()
        ),
        Expr::Closure(_) => format!(
            "expected a path to a function, not a closure: move the code into a function and write `{key} = {example}`"
        ),
        Expr::Call(_) | Expr::MethodCall(_) => format!(
            "expected a path to a function, not a call: write `{key} = {example}` and `#[resilient]` calls it"
        ),
        other => format!(
            "expected a path to a function, such as `{key} = {example}`; found {}",
            describe(other)
        ),
    };
    at(value, message)
}

impl FromMeta for PathArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Path(path) => Ok(PathArg(path.clone())),
            other => Err(expected("a path to a function", "cached_price", other)),
        }
    }
}
