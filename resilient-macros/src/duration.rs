//! Durations as the attribute writes them, in the grammar configuration files use: `humantime`,
//! the parser `resilient::config` reads files with, run at compile time on the trimmed text
//! (`"250ms"`, `"1.5s"`, `"2 seconds"`, `"1m 30s"`). One grammar means a value can move between
//! the attribute and a file unchanged; README's "Durations" section documents it once.
//!
//! On top of the grammar the attribute refuses what the runtime would refuse later: zero, and
//! more than 365 days (`resilient::MAX_DURATION`).

use std::time::Duration;

/// `resilient::MAX_DURATION`; the runtime refuses longer durations from every other source, so
/// the attribute refuses them at compile time.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a string is not a duration; the message completes "`timeout = "…"` …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not in the grammar; says what is wrong.
    Malformed(String),
    /// Parses, but is zero.
    Zero,
    /// Parses, but is longer than the runtime's `MAX_DURATION` (365 days).
    TooLong,
}

impl DurationError {
    pub(crate) fn message(&self, text: &str) -> String {
        const SHAPE: &str = "write numbers with units, such as \"250ms\", \"1.5s\", \"2 seconds\" or \"1m 30s\" (units: ns, us, ms, s, m, h, d and their long forms, as in configuration files)";
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

/// Parses `text` into a positive duration of at most 365 days.
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let duration = humantime::parse_duration(trimmed).map_err(|error| explain(trimmed, &error))?;
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong);
    }
    if duration.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(duration)
}

/// humantime's error in words that point at the text (its own give byte offsets).
fn explain(text: &str, error: &humantime::DurationError) -> DurationError {
    use humantime::DurationError as E;
    let at = |offset: usize| {
        let rest = text.get(offset..).unwrap_or_default();
        match rest.chars().next() {
            Some('-') => "a duration cannot be negative".to_owned(),
            Some(c) => format!("unexpected `{c}`"),
            None => "it ends too early".to_owned(),
        }
    };
    let reason = match error {
        E::Empty => "it is empty".to_owned(),
        E::InvalidCharacter(offset) | E::NumberExpected(offset) => at(*offset),
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => format!("`{value}` has no unit"),
        E::UnknownUnit { unit, .. } => format!("`{unit}` is not a unit"),
        E::NumberOverflow => return DurationError::TooLong,
    };
    DurationError::Malformed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_what_configuration_files_accept() {
        assert_eq!(parse("250ms"), Ok(ms(250)));
        assert_eq!(parse("2s"), Ok(ms(2000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1m 30s"), Ok(ms(90_000)));
        assert_eq!(parse("30s1m"), Ok(ms(90_000)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("2 seconds"), Ok(ms(2000)));
        assert_eq!(parse("2sec"), Ok(ms(2000)));
        assert_eq!(parse(" 2s "), Ok(ms(2000)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        for text in ["250ms", "1.5s", "2 seconds", "1m 30s", "3 days"] {
            assert_eq!(
                parse(text).ok(),
                humantime::parse_duration(text).ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_malformed_strings_with_a_reason() {
        let reason = |text| match parse(text) {
            Err(DurationError::Malformed(reason)) => reason,
            other => panic!("{text:?} gave {other:?}"),
        };
        assert_eq!(reason(""), "it is empty");
        assert_eq!(reason("  "), "it is empty");
        assert_eq!(reason("2"), "`2` has no unit");
        assert_eq!(reason("-2s"), "a duration cannot be negative");
        assert_eq!(reason("2 fortnights"), "`fortnights` is not a unit");
        assert_eq!(reason("s"), "unexpected `s`");
        assert_eq!(reason("2s!"), "unexpected `!`");
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
        assert_eq!(parse("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse("365d"), Ok(MAX_DURATION));
        assert_eq!(parse("8760h1ns"), Err(DurationError::TooLong));
        assert_eq!(parse("1y"), Err(DurationError::TooLong), "365.25 days");
        assert!(
            DurationError::TooLong
                .message("8761h")
                .contains("at most 365 days")
        );
    }

    #[test]
    fn messages_name_the_string_and_the_fix() {
        let message = parse("2 fortnights").unwrap_err().message("2 fortnights");
        assert!(message.starts_with("\"2 fortnights\" is not a duration: `fortnights`"));
        assert!(message.contains("\"2 seconds\""));
    }
}
