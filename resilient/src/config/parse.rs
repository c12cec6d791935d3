//! Parsing: from any serde deserializer to the raw tables, with a failure's path turned into
//! the entry and field it names (and a suggestion for a misspelled field).

use std::fmt;

use serde::de::Deserializer;

use crate::suggest::edit_distance;

use super::error::FileConfigError;
use super::raw::{RawBreaker, RawBulkhead, RawCallSite, RawConfig, RawTable};

/// Deserializes the raw tables, turning the path of a failure into the entry and field.
pub(super) fn deserialize_raw<'de, D>(
    deserializer: D,
    locate: impl Fn(&D::Error) -> Option<(usize, usize)>,
) -> Result<RawConfig, FileConfigError>
where
    D: Deserializer<'de>,
    D::Error: fmt::Display,
{
    serde_path_to_error::deserialize(deserializer).map_err(|failure| {
        use serde_path_to_error::Segment;
        let path: Vec<String> = failure
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(key.clone()),
                Segment::Seq { index } => Some(index.to_string()),
                Segment::Enum { variant } => Some(variant.clone()),
                Segment::Unknown => None,
            })
            .collect();
        let inner = failure.inner();
        let mut error = FileConfigError::new(plain_message(&inner.to_string()));
        error.location = locate(inner);
        // The path of an unknown key ends with the key: its table is the segment before.
        let section = path.first().filter(|_| path.len() >= 2).map(String::as_str);
        if let Some(suggestion) =
            unknown_field(&error.message).and_then(|field| suggest(&field, fields_of(section)))
        {
            error.message = format!("{} (did you mean `{suggestion}`?)", error.message);
        }
        match path.as_slice() {
            [section, name, field, ..] => error.entry(section, name).field(field.clone()),
            [section, name] => {
                let field = unknown_field(&error.message);
                let error = error.entry(section, name);
                match field {
                    Some(field) => error.field(field),
                    None => error,
                }
            }
            [section] => error.field(section.clone()),
            [] => match unknown_field(&error.message) {
                Some(field) => error.field(field),
                None => error,
            },
        }
    })
}

/// The message of a format's error without the format's own location preamble (toml writes
/// "TOML parse error at line …" and a snippet before the message; the location is reported
/// separately).
pub(super) fn plain_message(text: &str) -> String {
    if text.starts_with("TOML parse error")
        && let Some(last) = text.trim_end().lines().last()
    {
        return last.trim().to_owned();
    }
    text.trim().to_owned()
}

/// The field named by an "unknown field `x`" message.
pub(super) fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// The keys a table accepts, given its section (`None`: the top level).
pub(super) fn fields_of(section: Option<&str>) -> &'static [&'static str] {
    match section {
        None => &[
            "breaker_profiles",
            "breakers",
            "bulkhead_profiles",
            "bulkheads",
            "call_site_profiles",
            "call_sites",
        ],
        Some("breakers" | "breaker_profiles") => RawBreaker::FIELDS,
        Some("bulkheads" | "bulkhead_profiles") => RawBulkhead::FIELDS,
        Some("call_sites" | "call_site_profiles") => RawCallSite::FIELDS,
        Some(_) => &[],
    }
}

/// The accepted key closest to a misspelt one, if it is close: at most a third of its letters
/// differ, or it is the start of the key (`failure_rate` for `failure_rate_threshold`).
pub(super) fn suggest(field: &str, fields: &[&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .filter(|candidate| **candidate != field)
        .filter_map(|candidate| {
            let distance = edit_distance(field, candidate);
            let close = distance <= field.len().div_ceil(3)
                || (field.len() >= 4 && candidate.starts_with(field));
            close.then_some((distance, *candidate))
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// Line and column, from 1, of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}
