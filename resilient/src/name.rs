//! What a breaker, bulkhead or call-site name may be: one rule for every way a name comes in
//! (declarations, lookups, the policy builder, configuration files).
//!
//! Names end up in log lines and metric labels, and may come from request data, so the rule
//! refuses what would forge a log line or split a label (control characters, line breaks),
//! what cannot be told apart on a dashboard (empty, leading or trailing whitespace), and what
//! would let one name cost unbounded memory (longer than [`MAX_NAME_LEN`] bytes).

use crate::error::ConfigError;

/// The longest name, in bytes (UTF-8), that a breaker, bulkhead or call site may have.
pub const MAX_NAME_LEN: usize = 256;

// The refusal's reason is a literal: keep it in step with the limit.
const _: () = assert!(MAX_NAME_LEN == 256);

/// How much of a refused name an error repeats: enough to recognise it, never the whole of an
/// oversized one.
const SHOWN_LEN: usize = 64;

/// Checks `name` as the name of a `kind` (`"circuit breaker"`, `"bulkhead"`, ...).
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), ConfigError> {
    check_field(kind, "name", name)
}

/// Checks `name` as the value of `field` of `subject` (a policy's `breaker`, for instance).
pub(crate) fn check_field(
    subject: &str,
    field: &'static str,
    name: &str,
) -> Result<(), ConfigError> {
    match problem(name) {
        None => Ok(()),
        Some(reason) => Err(ConfigError::new(subject, field, shown(name), reason)),
    }
}

/// Why `name` is refused, if it is.
fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("is longer than 256 bytes (MAX_NAME_LEN)")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters (line breaks, tabs, escapes)")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("must not start or end with whitespace")
    } else {
        None
    }
}

/// The part of a refused name an error message repeats.
fn shown(name: &str) -> &str {
    if name.len() <= SHOWN_LEN {
        return name;
    }
    let mut end = SHOWN_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "db",
            "checkout::price",
            "feature store",
            "données",
            "a-b_c.d",
        ] {
            assert_eq!(check_name("bulkhead", name), Ok(()), "{name:?}");
        }
        assert_eq!(check_name("bulkhead", &"x".repeat(MAX_NAME_LEN)), Ok(()));
    }

    #[test]
    fn each_rule_names_its_reason() {
        let cases = [
            ("", "must not be empty"),
            (
                "\n",
                "must not contain control characters (line breaks, tabs, escapes)",
            ),
            (
                "a\tb",
                "must not contain control characters (line breaks, tabs, escapes)",
            ),
            (
                "a\u{1b}[31mb",
                "must not contain control characters (line breaks, tabs, escapes)",
            ),
            (" lead", "must not start or end with whitespace"),
            ("trail ", "must not start or end with whitespace"),
            ("\u{a0}nbsp", "must not start or end with whitespace"),
        ];
        for (name, reason) in cases {
            let error = check_name("circuit breaker", name).expect_err(name);
            assert_eq!(error.reason(), reason, "{name:?}");
            assert_eq!(error.subject(), "circuit breaker");
        }
    }

    #[test]
    fn an_oversized_name_is_refused_and_not_repeated_whole() {
        let name = "é".repeat(MAX_NAME_LEN);
        let error = check_field("policy \"p\"", "breaker", &name).unwrap_err();
        assert_eq!(error.reason(), "is longer than 256 bytes (MAX_NAME_LEN)");
        assert_eq!(error.field(), "breaker");
        assert!(error.value().len() < 2 * SHOWN_LEN, "{}", error.value());
    }
}
