//! Environment overrides: `RESILIENT_<KIND>_<NAME>_<FIELD>` variables applied over the file.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;

use super::FileConfig;
use super::error::FileConfigError;
use super::raw::RawTable;

impl FileConfig {
    /// Applies the `RESILIENT_*` environment overrides found in `vars` (pass
    /// `std::env::vars()` in a service, a list in a test) and validates the result. See the
    /// [module](crate::config) for the naming scheme.
    pub fn with_env<K, V>(
        self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<FileConfig, FileConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut raw = self.raw;
        let mut applied: HashMap<(&'static str, String), Vec<String>> = HashMap::new();
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        // Apply in a fixed order, so the outcome does not depend on the environment's order.
        vars.sort();
        for (var, value) in &vars {
            let env_error = |error: FileConfigError| FileConfigError {
                origin: Some(format!("environment variable {var}")),
                ..error
            };
            let target = if let Some(rest) = var.strip_prefix("RESILIENT_BREAKER_") {
                override_entry(&mut raw.breakers, "breakers", rest, value).map(|t| ("breakers", t))
            } else if let Some(rest) = var.strip_prefix("RESILIENT_BULKHEAD_") {
                override_entry(&mut raw.bulkheads, "bulkheads", rest, value)
                    .map(|t| ("bulkheads", t))
            } else if let Some(rest) = var.strip_prefix("RESILIENT_CALL_SITE_") {
                override_entry(&mut raw.call_sites, "call_sites", rest, value)
                    .map(|t| ("call_sites", t))
            } else {
                continue;
            };
            let (section, entry) = target.map_err(env_error)?;
            applied
                .entry((section, entry))
                .or_default()
                .push(var.clone());
        }
        Self::resolve(raw).map_err(|failure| {
            let mut error = *failure.error;
            let vars = failure
                .entry
                .and_then(|(section, name)| applied.get(&(section, name)));
            if let Some(vars) = vars {
                error.origin = Some(format!("after environment overrides ({})", vars.join(", ")));
            }
            error
        })
    }

    /// Applies the `RESILIENT_*` overrides among `vars` as the operating system gives them
    /// (pass `std::env::vars_os()`). Variables that are not Unicode are ignored unless their
    /// name starts with `RESILIENT_`: such a variable is an error naming it, since the
    /// setting it meant to make cannot be read.
    pub fn with_env_os(
        self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<FileConfig, FileConfigError> {
        let vars = unicode_vars(vars)?;
        self.with_env(vars)
    }

    /// Reads `path` and applies the process environment's overrides: the usual startup call.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<FileConfig, FileConfigError> {
        Self::from_toml_file(path)?.with_env_os(std::env::vars_os())
    }
}

/// The variables as text. `std::env::vars()` panics on the first variable that is not
/// Unicode, however unrelated to us; here only ours matter.
fn unicode_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, FileConfigError> {
    let mut unicode = Vec::new();
    for (name, value) in vars {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => unicode.push((name, value)),
            (Ok(name), Err(_)) if name.starts_with(PREFIX) => {
                return Err(FileConfigError::new("the value is not valid Unicode")
                    .with_origin(format!("environment variable {name}")));
            }
            (Err(name), _) if name.to_string_lossy().starts_with(PREFIX) => {
                return Err(FileConfigError::new("the name is not valid Unicode")
                    .with_origin(format!("environment variable {}", name.to_string_lossy())));
            }
            _ => {}
        }
    }
    Ok(unicode)
}

/// Every variable `resilient` reads starts with this.
const PREFIX: &str = "RESILIENT_";

/// An entry name as it appears in an environment variable.
pub(super) fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Applies one variable (`rest` is what follows its kind prefix) to the entry it names;
/// returns the entry's name.
pub(super) fn override_entry<R: RawTable>(
    entries: &mut BTreeMap<String, R>,
    section: &'static str,
    rest: &str,
    value: &str,
) -> Result<String, FileConfigError> {
    let kind = section.trim_end_matches('s').replace('_', " ");
    let mut matches = Vec::new();
    for name in entries.keys() {
        let field = rest
            .strip_prefix(&env_name(name))
            .and_then(|field| field.strip_prefix('_'))
            .map(str::to_ascii_lowercase);
        if let Some(field) = field.filter(|field| R::FIELDS.contains(&field.as_str())) {
            matches.push((name.clone(), field));
        }
    }
    let (name, field) = match matches.len() {
        1 => matches.remove(0),
        0 => {
            let names: Vec<_> = entries.keys().map(|name| env_name(name)).collect();
            return Err(FileConfigError::new(format!(
                "names no field of a {kind} in the file: <NAME> must be one of [{}] and <FIELD> one of [{}]",
                names.join(", "),
                R::FIELDS
                    .iter()
                    .map(|field| field.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        _ => {
            let names: Vec<_> = matches.iter().map(|(name, _)| name.as_str()).collect();
            return Err(FileConfigError::new(format!(
                "is ambiguous: it could set a field of the {kind}s {}",
                names.join(", ")
            )));
        }
    };
    let parsed: R = parse_value(&field, value).map_err(|message| {
        FileConfigError::new(message)
            .entry(section, &name)
            .field(&field)
    })?;
    entries
        .get_mut(&name)
        .expect("the name was found among the entries")
        .overlay(&parsed);
    Ok(name)
}

/// Reads `value` as the TOML value of `field`: as written (numbers, booleans), else as a
/// string (durations, names).
pub(super) fn parse_value<R: RawTable>(field: &str, value: &str) -> Result<R, String> {
    let parse = |literal: &str| -> Result<Result<R, toml::de::Error>, toml::de::Error> {
        let text = format!("{field} = {literal}");
        let document = toml::Deserializer::parse(&text)?;
        Ok(R::deserialize(document))
    };
    let quoted = toml::Value::String(value.to_owned()).to_string();
    let parsed = match parse(value) {
        Ok(Ok(parsed)) => parsed,
        // Valid TOML of the wrong type: a string may still be what the field wants.
        Ok(Err(typed)) => match parse(&quoted) {
            Ok(Ok(parsed)) => parsed,
            _ => return Err(typed.message().to_owned()),
        },
        // Not a TOML value: take it as a string.
        Err(_) => match parse(&quoted) {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(error)) | Err(error) => return Err(error.message().to_owned()),
        },
    };
    // A value with a newline could smuggle in other keys: exactly one field may be set.
    let set = R::FIELDS.iter().filter(|name| parsed.is_set(name)).count();
    if set != 1 {
        return Err(format!("{value:?} is not a single value"));
    }
    Ok(parsed)
}
