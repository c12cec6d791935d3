//! Durations as the attribute writes them: `"250ms"`, `"2s"`, `"1m30s"`.
//!
//! A duration is one or more whole numbers, each followed by a unit, largest unit first. No
//! spaces, signs or decimals: `"1.5s"` is written `"1s500ms"`, so every accepted string means
//! exactly one number of nanoseconds.

use std::time::Duration;

/// The units, largest first, with their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

/// `resilient::MAX_DURATION` in nanoseconds; the runtime refuses longer durations from every
/// other source, so the attribute refuses them at compile time.
const MAX_NANOS: u128 = 365 * 24 * 3_600_000_000_000;

/// Why a string is not a duration; the message completes "`timeout = "…"` …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not the `<number><unit>…` shape; says what is wrong.
    Malformed(String),
    /// Parses, but is zero.
    Zero,
    /// Parses, but is longer than the runtime's `MAX_DURATION` (365 days).
    TooLong,
}

impl DurationError {
    pub(crate) fn message(&self, text: &str) -> String {
        const SHAPE: &str = "write whole numbers with units, largest first, such as \"250ms\", \"2s\" or \"1m30s\" (units: h, m, s, ms, us, ns)";
        match self {
            DurationError::Malformed(reason) => {
                format!("\"{text}\" is not a duration: {reason}; {SHAPE}")
            }
            DurationError::Zero => {
                format!(
                    "a duration of zero is refused: \"{text}\" would time out (or back off) at once; give a positive duration or leave the key out"
                )
            }
            DurationError::TooLong => format!(
                "\"{text}\" is too long: a duration may be at most 365 days (resilient::MAX_DURATION)"
            ),
        }
    }
}

/// Parses `text` into a positive duration.
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(malformed("it is empty"));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    let mut previous_unit: Option<u128> = None;
    let mut overflow = false;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(malformed(&unexpected(rest)));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len() - after.trim_start_matches(char::is_alphabetic).len();
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(malformed(&match after.chars().next() {
                Some('.' | ',') => {
                    "decimals are not accepted (write \"1s500ms\", not \"1.5s\")".to_owned()
                }
                Some(_) => unexpected(after),
                None => format!("`{number}` has no unit"),
            }));
        }
        let Some(&(_, length)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(malformed(&format!("`{unit}` is not a unit")));
        };
        // Compared by length, not by name: `us` and `µs` are one unit.
        if previous_unit.is_some_and(|previous| length >= previous) {
            return Err(malformed(&format!(
                "`{unit}` comes after a smaller or equal unit"
            )));
        }
        previous_unit = Some(length);
        match number
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(length))
            .and_then(|n| n.checked_add(total))
        {
            Some(sum) => total = sum,
            None => overflow = true,
        }
        rest = after;
    }
    if overflow || total > MAX_NANOS {
        return Err(DurationError::TooLong);
    }
    if total == 0 {
        return Err(DurationError::Zero);
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::TooLong)?;
    Ok(Duration::from_nanos(nanos))
}

fn malformed(reason: &str) -> DurationError {
    DurationError::Malformed(reason.to_owned())
}

fn unexpected(rest: &str) -> String {
    match rest.chars().next() {
        Some(c) if c.is_whitespace() => "spaces are not accepted".to_owned(),
        Some('-') => "a duration cannot be negative".to_owned(),
        Some(c) => format!("unexpected `{c}`"),
        None => "it ends too early".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_every_unit_and_combinations() {
        assert_eq!(parse("250ms"), Ok(ms(250)));
        assert_eq!(parse("2s"), Ok(ms(2000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1s500ms"), Ok(ms(1500)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("0s5ms"), Ok(ms(5)));
    }

    #[test]
    fn refuses_malformed_strings_with_a_reason() {
        let reason = |text| match parse(text) {
            Err(DurationError::Malformed(reason)) => reason,
            other => panic!("{text:?} gave {other:?}"),
        };
        assert_eq!(reason(""), "it is empty");
        assert_eq!(reason("2"), "`2` has no unit");
        assert!(reason("1.5s").contains("decimals"));
        assert_eq!(reason("2 s"), "spaces are not accepted");
        assert_eq!(reason("-2s"), "a duration cannot be negative");
        assert_eq!(reason("2sec"), "`sec` is not a unit");
        assert_eq!(reason("s"), "unexpected `s`");
        assert!(reason("30s1m").contains("after a smaller or equal unit"));
        assert!(reason("1s1s").contains("after a smaller or equal unit"));
        assert!(reason("1us1µs").contains("after a smaller or equal unit"));
    }

    #[test]
    fn refuses_zero_and_more_than_a_year() {
        assert_eq!(parse("0ms"), Err(DurationError::Zero));
        assert_eq!(parse("0h0s"), Err(DurationError::Zero));
        assert_eq!(parse("6000000h"), Err(DurationError::TooLong));
        assert_eq!(
            parse("99999999999999999999999999999999999999999h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(parse("8760h"), Ok(Duration::from_secs(365 * 24 * 3600)));
        assert_eq!(parse("8760h1ns"), Err(DurationError::TooLong));
        assert!(
            DurationError::TooLong
                .message("8761h")
                .contains("at most 365 days")
        );
    }

    #[test]
    fn messages_name_the_string_and_the_fix() {
        let message = parse("2 s").unwrap_err().message("2 s");
        assert!(message.starts_with("\"2 s\" is not a duration: spaces"));
        assert!(message.contains("\"1m30s\""));
    }
}
