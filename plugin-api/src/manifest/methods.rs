//! What a plugin serves: the extension points host apps find it by
//! (`[plugin] provides`) and the methods it declares (`[[methods]]`).

use super::names::{check_method, check_name};
use crate::error::{ErrorKind, RemoteError};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// Longest `[[methods]] description`.
pub const MAX_DESCRIPTION_LEN: usize = 200;

/// One `[[methods]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The method's name, as callers pass it.
    pub name: String,
    /// One line on what it does (may be empty).
    pub description: String,
}

/// Refuses a call of `method` that `plugin` does not declare, when it
/// declares any (`declared`); methods of the supervisor's own (`@…`) are
/// not the plugin's to declare. The supervisor checks its calls, a worker
/// its direct channels' calls, with the same words.
pub fn check_declared<'a>(
    plugin: &str,
    method: &str,
    declared: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<(), RemoteError> {
    let mut names = declared.clone().into_iter().peekable();
    if names.peek().is_none() || method.starts_with('@') || names.any(|name| name == method) {
        return Ok(());
    }
    let names: Vec<&str> = declared.into_iter().collect();
    Err(RemoteError::new(
        ErrorKind::UnknownMethod,
        format!(
            "plugin `{plugin}` does not declare method `{method}` (its [[methods]]: {})",
            names.join(", ")
        ),
    ))
}

/// A `[[methods]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMethod {
    name: Spanned<String>,
    description: Option<Spanned<String>>,
}

/// `[plugin] provides`, checked: plugin-style names, each listed once.
pub(super) fn extension_points(
    raw: Vec<Spanned<String>>,
) -> Result<Vec<String>, (Range<usize>, String)> {
    let mut provides: Vec<String> = Vec::new();
    for point in raw {
        let (span, point) = (point.span(), point.into_inner());
        if let Err(problem) = check_name(&point) {
            return Err((span, format!("[plugin] provides: {point:?}: {problem}")));
        }
        if provides.contains(&point) {
            return Err((
                span,
                format!("[plugin] provides: {point:?} is listed twice"),
            ));
        }
        provides.push(point);
    }
    Ok(provides)
}

/// `[[methods]]`, checked: valid names, each declared once, and one-line
/// descriptions.
pub(super) fn methods(raw: Vec<RawMethod>) -> Result<Vec<Method>, (Range<usize>, String)> {
    let mut methods: Vec<Method> = Vec::new();
    for method in raw {
        let (span, name) = (method.name.span(), method.name.into_inner());
        if let Err(problem) = check_method(&name) {
            return Err((span, format!("[[methods]] name = {name:?}: {problem}")));
        }
        if methods.iter().any(|m| m.name == name) {
            return Err((span, format!("[[methods]] name = {name:?}: declared twice")));
        }
        let description = match method.description {
            None => String::new(),
            Some(description) => {
                let (span, description) = (description.span(), description.into_inner());
                if description.contains(['\n', '\r']) || description.len() > MAX_DESCRIPTION_LEN {
                    return Err((
                        span,
                        format!(
                            "[[methods]] description of {name:?}: expected one line of at most {MAX_DESCRIPTION_LEN} bytes"
                        ),
                    ));
                }
                description
            }
        };
        methods.push(Method { name, description });
    }
    Ok(methods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{GOOD, parse, refused_at};

    #[test]
    fn extension_points_and_methods() {
        let text = format!(
            "{GOOD}provides = [\"exporter\", \"preview\"]\n\n\
             [[methods]]\nname = \"export\"\ndescription = \"Writes PDF\"\n\n\
             [[methods]]\nname = \"page.count\"\n\n\
             [config]\ndpi = 300\n[config.paper]\nsize = \"a4\"\n"
        );
        let manifest = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(manifest.provides, ["exporter", "preview"]);
        assert_eq!(
            manifest.methods,
            [
                Method {
                    name: "export".into(),
                    description: "Writes PDF".into()
                },
                Method {
                    name: "page.count".into(),
                    description: String::new()
                }
            ]
        );
        let plain = parse(GOOD).unwrap();
        assert!(plain.provides.is_empty() && plain.methods.is_empty());
    }

    #[test]
    fn bad_extension_points_and_methods_are_refused() {
        let provides = |list: &str| format!("{GOOD}provides = {list}\n");
        refused_at(
            &provides("[\"Exporter\"]"),
            8,
            "[plugin] provides: \"Exporter\": expected 1 to 64",
        );
        refused_at(&provides("[\"a\", \"a\"]"), 8, "\"a\" is listed twice");
        let method = |body: &str| format!("{GOOD}\n[[methods]]\n{body}\n");
        refused_at(&method("name = \"@event:x\""), 10, "reserved for corral");
        refused_at(&method("name = \"\""), 10, "expected 1 to 128 bytes");
        refused_at(&method("name = \"two words\""), 10, "no spaces");
        refused_at(
            &method("name = \"a\"\ndescription = \"one\\ntwo\""),
            11,
            "expected one line",
        );
        refused_at(
            &method("name = \"a\"\nsummary = \"x\""),
            11,
            "unknown field `summary`",
        );
        let twice = format!("{GOOD}\n[[methods]]\nname = \"a\"\n[[methods]]\nname = \"a\"\n");
        refused_at(&twice, 12, "[[methods]] name = \"a\": declared twice");
    }
}
