//! [`ManifestError`]: a manifest (or another corral TOML file) that cannot
//! be used, naming the file, the line and column, and what is expected;
//! and the helpers that find the line, column and `[table] key` of a byte
//! offset in the text.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A manifest (or another corral TOML file, such as `corral.toml`) that
/// cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ManifestError {
    /// An error about the text at `span` (byte offsets) of `text`, the
    /// contents of `path`.
    pub fn at(path: &Path, text: &str, span: Option<Range<usize>>, message: String) -> Self {
        Self {
            path: path.to_owned(),
            position: span.map(|span| line_column(text, span.start)),
            message,
        }
    }

    /// A TOML syntax or type error in `text` (the contents of `path`),
    /// with the `[table] key` it is about when that can be told.
    pub fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = match error.span().and_then(|span| key_at(text, span.start)) {
            Some(key) if !error.message().contains("unknown field") => {
                format!("{key}: {}", error.message())
            }
            _ => error.message().to_owned(),
        };
        Self::at(path, text, error.span(), message)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// The `[table] key` whose value stands at `offset`, if the line there is
/// a `key = value` line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    Some(format!("{table} {}", key.trim()).trim_start().to_owned())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{GOOD, error};

    #[test]
    fn columns_count_characters() {
        let text = GOOD.replace("name = \"hello\"", "name = \"héllo\"\n# ünïcödé\nx = 1");
        let message = error(&text);
        assert!(
            message.starts_with("plugins/hello/plugin.toml:5:1: unknown field `x`"),
            "{message}"
        );
        assert_eq!(line_column("aé=", 3), (1, 3));
        assert_eq!(line_column("aé=", 2), (1, 2), "inside a character");
        assert_eq!(line_column("a\nb", 99), (2, 2));
    }
}
