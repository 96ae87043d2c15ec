//! The project's TOML spec files — scenarios and steps — read one way: deserialized strictly, and
//! every error reported with the file, the line and the field, and for a value of the wrong type
//! the values the field takes.
//!
//! It knows nothing of what a scenario or a steps file means; their modules validate that.

use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Errors reading a spec file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("failed to read {kind} {file}: {source}")]
    Read {
        /// What the file is ("scenario", "steps file").
        kind: &'static str,
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is malformed (syntax, unknown or missing field, wrong type).
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// A `[table]` written once, or `[[table]]` written once per item: either way, a list.
#[derive(Debug)]
pub struct TableOrTables<T>(pub Vec<T>);

impl<T> Default for TableOrTables<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TableOrTables<T> {
    // By hand: serde's untagged enums replace an item's own error (an unknown field, say) with
    // "data did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Either<T> {
            type Value = TableOrTables<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table, or an array of tables")
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|one| TableOrTables(vec![one]))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(TableOrTables)
            }
        }

        deserializer.deserialize_any(Either(std::marker::PhantomData))
    }
}

/// Reads `file`, a `kind` of spec file ("scenario", "steps file").
pub fn read(file: &Path, kind: &'static str) -> Result<String, SpecError> {
    std::fs::read_to_string(file).map_err(|source| SpecError::Read {
        kind,
        file: file.to_owned(),
        source,
    })
}

/// Deserializes `text`, read from `file`.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SpecError> {
    toml::from_str(text).map_err(|e| SpecError::Parse {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: explain(text, &e),
    })
}

/// A TOML error's message with the field it is about (`field `checks.health`: …`) when the error
/// points at a value, and the values a boolean takes.
fn explain(text: &str, error: &toml::de::Error) -> String {
    let mut message = error.message().trim().to_owned();
    if message.ends_with("expected a boolean") {
        message.push_str(" (`true` or `false`)");
    }
    match error.span().and_then(|span| field_at(text, span.start)) {
        Some(field) if !message.contains(&format!("`{field}`")) => {
            format!("field `{field}`: {message}")
        }
        _ => message,
    }
}

/// The dotted name of the key whose value starts at `offset`: the key on that line, under the
/// nearest table header above it. `None` when `offset` is not in a `key = value` line.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = line.lines().next().unwrap_or_default();
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        });
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

/// The 1-based line holding byte `offset` of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
