//! The names a manifest holds, and their checks: plugin names (also those
//! of dependencies, extension points and `call:` grants), method names,
//! topics and topic patterns (`[events] subscribe`), and the module path
//! (`[plugin] entry`).

use crate::wire::PluginKind;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Longest method name in `[[methods]]`.
pub const MAX_METHOD_LEN: usize = 128;

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 128;

/// A plugin name, method name or topic that breaks its rules; says
/// which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not a plugin name.
    #[error("expected 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and '-', not starting with '-'")]
    Plugin,
    /// A method name too short or too long.
    #[error("expected 1 to {MAX_METHOD_LEN} bytes")]
    MethodLength,
    /// A method name starting with `@`.
    #[error("names starting with '@' are reserved for corral")]
    MethodReserved,
    /// A method name with a space or a control character.
    #[error("no spaces or control characters")]
    MethodCharacter,
    /// A topic too short or too long.
    #[error("a topic is 1 to {MAX_TOPIC_LEN} characters")]
    TopicLength,
    /// A `*` inside a topic pattern.
    #[error("`*` may only end a topic pattern")]
    TopicStar,
    /// A character topics do not take.
    #[error(
        "{character:?} is not allowed in a topic: use a-z A-Z 0-9 . _ / -{}",
        if *pattern { " (and a trailing *)" } else { "" }
    )]
    TopicCharacter {
        /// The character.
        character: char,
        /// Whether a pattern was checked (a trailing `*` allowed).
        pattern: bool,
    },
}

/// Checks a plugin name: 1 to 64 of `a-z`, `0-9` and `-`, not starting
/// with `-`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(NameError::Plugin)
    }
}

/// Checks a method name a plugin declares: 1 to 128 bytes, no spaces or
/// control characters, not starting with `@` (reserved for corral's own
/// calls, such as events).
pub fn check_method(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_METHOD_LEN {
        return Err(NameError::MethodLength);
    }
    if name.starts_with('@') {
        return Err(NameError::MethodReserved);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NameError::MethodCharacter);
    }
    Ok(())
}

/// Checks a topic name (1 to 128 of `a-z A-Z 0-9 . _ / -`); with
/// `pattern`, a trailing `*` matches any rest (`orders.*`, `*`).
pub fn check_topic(topic: &str, pattern: bool) -> Result<(), NameError> {
    let name = match topic.strip_suffix('*') {
        Some(prefix) if pattern => prefix,
        _ => topic,
    };
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(NameError::TopicLength);
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        Some('*') if pattern => Err(NameError::TopicStar),
        Some(character) => Err(NameError::TopicCharacter { character, pattern }),
        None => Ok(()),
    }
}

/// Whether topic `pattern` (from [`check_topic`] with `pattern`) matches
/// `topic`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

/// `[events] subscribe`, checked: topic patterns.
pub(super) fn subscriptions(
    raw: Vec<Spanned<String>>,
) -> Result<Vec<String>, (Range<usize>, String)> {
    let mut subscribe = Vec::new();
    for topic in raw {
        if let Err(problem) = check_topic(topic.get_ref(), true) {
            return Err((
                topic.span(),
                format!("[events] subscribe: {:?}: {problem}", topic.get_ref()),
            ));
        }
        subscribe.push(topic.into_inner());
    }
    Ok(subscribe)
}

/// `[plugin] entry`, checked: a file inside the plugin folder, a wasm
/// module exactly when `kind` is wasm.
pub(super) fn check_entry(entry: &str, kind: PluginKind) -> Result<PathBuf, String> {
    let path = Path::new(entry);
    if entry.is_empty() || entry.contains('\0') {
        return Err("expected a file name relative to the plugin folder".to_owned());
    }
    let mut normal = false;
    for component in path.components() {
        match component {
            Component::Normal(_) => normal = true,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the plugin folder, not absolute".to_owned());
            }
            Component::ParentDir => {
                return Err("must stay inside the plugin folder (no \"..\")".to_owned());
            }
        }
    }
    if !normal || entry.ends_with('/') {
        return Err("expected a file name relative to the plugin folder".to_owned());
    }
    let module = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("wasm") || extension.eq_ignore_ascii_case("wat")
        });
    let script = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension == "js" || extension == "mjs");
    match kind {
        PluginKind::Wasm if !module => {
            Err("kind = \"wasm\" needs a .wasm or .wat module".to_owned())
        }
        PluginKind::Js if !script => Err(
            "kind = \"js\" needs a JavaScript module (.js or .mjs): the bundle your build makes, e.g. dist/plugin.js"
                .to_owned(),
        ),
        PluginKind::Native if script => Err(
            "a JavaScript module, but kind = \"native\": set kind = \"js\"".to_owned(),
        ),
        PluginKind::Native if module => Err(
            "a wasm module, but kind = \"native\": set kind = \"wasm\", or name the native library"
                .to_owned(),
        ),
        _ => Ok(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::manifest::tests::{GOOD, error, parse, refused_at};

    #[test]
    fn names() {
        for good in ["a", "hello-world", "x2", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "ä", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kind_and_entry_must_agree() {
        let wasm = |entry: &str| {
            GOOD.replace("kind = \"native\"", "kind = \"wasm\"")
                .replace("libhello.so", entry)
        };
        for good in ["hello.wasm", "echo.wat", "lib/HELLO.WASM"] {
            assert_eq!(parse(&wasm(good)).unwrap().entry, Path::new(good));
        }
        refused_at(
            &wasm("libhello.so"),
            6,
            "[plugin] entry = \"libhello.so\": kind = \"wasm\" needs a .wasm or .wat module",
        );
        refused_at(&wasm("hello"), 6, "needs a .wasm or .wat module");
        for module in ["hello.wasm", "echo.wat"] {
            refused_at(
                &GOOD.replace("libhello.so", module),
                6,
                &format!("[plugin] entry = \"{module}\": a wasm module, but kind = \"native\""),
            );
        }
        // A native library may have any other name.
        for native in ["libhello.so", "libhello.so.1", "hello.plugin", "bin/hello"] {
            assert!(
                parse(&GOOD.replace("libhello.so", native)).is_ok(),
                "{native}"
            );
        }
    }

    #[test]
    fn subscriptions_and_topics() {
        let text = format!(
            "{GOOD}\n[dependencies]\nstorage = \"^1\"\n\n[permissions]\nhost = [\"kv\", \"publish\", \"call:storage\", \"log\"]\n\n[events]\nsubscribe = [\"orders.*\", \"ticks\"]\n"
        );
        let manifest = Manifest::parse(&text, Path::new("p/plugin.toml")).unwrap();
        assert_eq!(manifest.subscribe, ["orders.*", "ticks"]);
        assert!(topic_matches("orders.*", "orders.new"));
        assert!(!topic_matches("orders.*", "order"));
        assert!(topic_matches("ticks", "ticks") && !topic_matches("ticks", "ticks2"));

        for (topic, problem) in [
            ("a b", "' ' is not allowed"),
            ("a*b", "`*` may only end"),
            ("", "1 to 128"),
        ] {
            let message = error(&format!("{GOOD}\n[events]\nsubscribe = [{topic:?}]\n"));
            assert!(
                message.contains("[events] subscribe") && message.contains(problem),
                "{topic:?}: {message}"
            );
        }
        assert!(check_topic("orders.*", false).is_err());
        assert!(check_topic(&"x".repeat(129), false).is_err());
    }
}
