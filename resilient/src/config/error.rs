//! Why a configuration is refused, and where: the error type, and the positions (entry, field,
//! line and column) resolution failures carry back to the text.

use std::fmt;

use crate::error::ConfigError;

use super::parse::line_column;
use super::resolve::Level;

/// A configuration file (or environment override) `resilient` will not apply. Its `Display`
/// reads `resilient.toml:7:26: breakers.payments: `failure_rate_threshold` = 1.5 must be in
/// (0, 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfigError {
    pub(super) origin: Option<String>,
    pub(super) location: Option<(usize, usize)>,
    pub(super) entry: Option<String>,
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl FileConfigError {
    pub(super) fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    pub(super) fn new(message: impl Into<String>) -> Self {
        FileConfigError {
            origin: None,
            location: None,
            entry: None,
            field: None,
            message: message.into(),
        }
    }

    pub(super) fn entry(mut self, section: &str, name: &str) -> Self {
        self.entry = Some(format!("{section}.{}", key_text(name)));
        self
    }

    pub(super) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Where the configuration came from: the file's path, or the environment variable.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Line and column (from 1) of the offending value, where the format gives them.
    pub fn location(&self) -> Option<(usize, usize)> {
        self.location
    }

    /// The entry, as its table is written: `breakers.payments`, `breaker_profiles.default`.
    pub fn entry_name(&self) -> Option<&str> {
        self.entry.as_deref()
    }

    /// The offending field, e.g. `failure_rate_threshold`.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FileConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}:")?;
        }
        if let Some((line, column)) = self.location {
            write!(f, "{line}:{column}:")?;
        }
        if self.origin.is_some() || self.location.is_some() {
            f.write_str(" ")?;
        }
        if let Some(entry) = &self.entry {
            write!(f, "{entry}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileConfigError {}

/// A key as TOML would need it written in a dotted table name.
pub(super) fn key_text(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// A resolution failure, with the table where the offending value was written so a TOML
/// source can point at it.
pub(super) struct Failure {
    pub(super) entry: Option<Level>,
    pub(super) table: Option<Level>,
    /// Boxed: resolution errors are rare, and results carrying them stay small.
    pub(super) error: Box<FileConfigError>,
}

impl Failure {
    pub(super) fn at(entry: Level, error: FileConfigError) -> Failure {
        Failure {
            error: Box::new(error.entry(entry.0, &entry.1)),
            table: Some(entry.clone()),
            entry: Some(entry),
        }
    }

    /// Points the error at the value in `text` (or at its table when the value is not
    /// written anywhere).
    pub(super) fn locate(self, text: &str) -> FileConfigError {
        let mut error = *self.error;
        let Some((section, name)) = &self.table else {
            return error;
        };
        let Ok(document) = toml::de::DeTable::parse(text) else {
            return error;
        };
        let table = find(document.get_ref(), section)
            .and_then(|value| value.get_ref().as_table())
            .and_then(|table| find(table, name));
        let value = match (&error.field, table) {
            (Some(field), Some(table)) => table
                .get_ref()
                .as_table()
                .and_then(|table| find(table, field))
                .or(Some(table)),
            (None, table) => table,
            (Some(_), None) => None,
        };
        error.location = value.map(|value| line_column(text, value.span().start));
        error
    }
}

pub(super) fn find<'a, 'i>(
    table: &'a toml::de::DeTable<'i>,
    key: &str,
) -> Option<&'a toml::Spanned<toml::de::DeValue<'i>>> {
    table
        .iter()
        .find(|(name, _)| name.get_ref() == key)
        .map(|(_, value)| value)
}

/// What is wrong with one field of a resolved entry.
pub(super) struct Issue {
    pub(super) field: String,
    pub(super) message: String,
}

impl Issue {
    pub(super) fn new(field: &str, message: impl Into<String>) -> Issue {
        Issue {
            field: field.to_owned(),
            message: format!("`{field}` {}", message.into()),
        }
    }
}

impl From<ConfigError> for Issue {
    fn from(error: ConfigError) -> Issue {
        Issue {
            field: error.field().to_owned(),
            message: format!("`{}` = {} {}", error.field(), error.value(), error.reason()),
        }
    }
}
