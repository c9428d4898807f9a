//! Admin overrides of plugins' settings: corral.toml's
//! `[plugins.NAME.config]` laid over the `[config]` defaults of each
//! plugin's manifest. An override may only change keys the plugin
//! declares, to a value of the same type, so that a typo or a wrong type
//! is an error that names the key instead of a setting silently ignored.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

/// An override corral.toml may not make, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OverrideError {
    /// A key the plugin's `[config]` does not declare.
    #[error(
        "corral.toml [plugins.{plugin}.config] {key}: plugin `{plugin}` has no such setting (its [config{table}] declares: {known})"
    )]
    Unknown {
        plugin: String,
        /// The key, dotted from `[plugins.NAME.config]`.
        key: String,
        /// The table of the plugin's `[config]` it would be in (`.paper`).
        table: String,
        /// The keys that table declares, or `none`.
        known: String,
    },
    /// A value of another type than the default's.
    #[error(
        "corral.toml [plugins.{plugin}.config] {key} = {value}: expected {expected} like the default ({default})"
    )]
    Type {
        plugin: String,
        key: String,
        value: String,
        /// `an integer`, `a string`, ...
        expected: String,
        default: String,
    },
    /// The merged settings cannot be written as TOML.
    #[error("[config]: {0}")]
    Render(String),
}

/// The overrides in force, by plugin name; replaced when corral.toml
/// changes.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    by_plugin: RwLock<BTreeMap<String, toml::Table>>,
}

impl Overrides {
    pub(crate) fn new(by_plugin: BTreeMap<String, toml::Table>) -> Self {
        Self {
            by_plugin: RwLock::new(by_plugin),
        }
    }

    /// Plugin `plugin`'s effective settings, as TOML text: `defaults` (its
    /// manifest's `[config]`) with this file's overrides applied.
    pub(crate) fn effective(
        &self,
        plugin: &str,
        defaults: &toml::Table,
    ) -> Result<String, OverrideError> {
        let by_plugin = self
            .by_plugin
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let config = match by_plugin.get(plugin) {
            None => defaults.clone(),
            Some(overrides) => merge(defaults, overrides, &Place { plugin, keys: "" })?,
        };
        toml::to_string(&config).map_err(|error| OverrideError::Render(error.to_string()))
    }

    /// Puts `by_plugin` in force; returns the plugins whose overrides
    /// changed (came, went or differ).
    pub(crate) fn replace(&self, by_plugin: BTreeMap<String, toml::Table>) -> Vec<String> {
        let mut current = self
            .by_plugin
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = current
            .keys()
            .chain(by_plugin.keys())
            .filter(|name| current.get(*name) != by_plugin.get(*name))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        *current = by_plugin;
        changed
    }

    /// The plugins that have overrides.
    pub(crate) fn names(&self) -> Vec<String> {
        let by_plugin = self
            .by_plugin
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        by_plugin.keys().cloned().collect()
    }
}

/// Where in the overrides a merge is, for messages.
struct Place<'a> {
    plugin: &'a str,
    /// The dotted keys of the tables above, each followed by a dot.
    keys: &'a str,
}

/// `defaults` with `overrides` laid over them, tables merged key by key.
fn merge(
    defaults: &toml::Table,
    overrides: &toml::Table,
    place: &Place<'_>,
) -> Result<toml::Table, OverrideError> {
    let Place { plugin, keys } = place;
    let mut merged = defaults.clone();
    for (key, value) in overrides {
        let Some(default) = defaults.get(key) else {
            let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(OverrideError::Unknown {
                plugin: (*plugin).to_owned(),
                key: format!("{keys}{key}"),
                table: keys
                    .strip_suffix('.')
                    .map_or_else(String::new, |keys| format!(".{keys}")),
                known,
            });
        };
        let value = match (default, value) {
            (toml::Value::Table(default), toml::Value::Table(value)) => {
                let keys = format!("{keys}{key}.");
                toml::Value::Table(merge(
                    default,
                    value,
                    &Place {
                        plugin,
                        keys: &keys,
                    },
                )?)
            }
            // An integer where a float is expected is no surprise.
            (toml::Value::Float(_), toml::Value::Integer(n)) => toml::Value::Float(*n as f64),
            (default, value) if default.type_str() == value.type_str() => value.clone(),
            (default, value) => {
                return Err(OverrideError::Type {
                    plugin: (*plugin).to_owned(),
                    key: format!("{keys}{key}"),
                    value: value.to_string(),
                    expected: article(default.type_str()),
                    default: default.to_string(),
                });
            }
        };
        merged.insert(key.clone(), value);
    }
    Ok(merged)
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("valid TOML")
    }

    fn overrides(plugin: &str, text: &str) -> Overrides {
        Overrides::new(BTreeMap::from([(plugin.to_owned(), table(text))]))
    }

    #[test]
    fn no_override_gives_the_defaults() {
        let defaults = table("dpi = 300\nname = \"x\"");
        let config = Overrides::default()
            .effective("p", &defaults)
            .expect("no overrides");
        assert_eq!(table(&config), defaults);
    }

    #[test]
    fn overrides_replace_keys_and_merge_tables() {
        let defaults = table("dpi = 300\nscale = 1.5\n[paper]\nsize = \"a4\"\nmargin = 10");
        let overrides = overrides("p", "dpi = 600\nscale = 2\n[paper]\nmargin = 5");
        let config = overrides.effective("p", &defaults).expect("valid");
        assert_eq!(
            table(&config),
            table("dpi = 600\nscale = 2.0\n[paper]\nsize = \"a4\"\nmargin = 5")
        );
        // Other plugins keep their defaults.
        let other = overrides.effective("q", &defaults).expect("valid");
        assert_eq!(table(&other), defaults);
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_known_ones() {
        let error = overrides("p", "dip = 600")
            .effective("p", &table("dpi = 300\nname = \"x\""))
            .expect_err("a typo");
        assert!(matches!(&error, OverrideError::Unknown { key, .. } if key == "dip"));
        let error = error.to_string();
        assert!(
            error.contains("[plugins.p.config] dip")
                && error.contains("no such setting")
                && error.contains("dpi, name"),
            "{error}"
        );
        let error = overrides("p", "[paper]\nsize = 1")
            .effective("p", &table("[paper]\nmargin = 1"))
            .expect_err("nested typo")
            .to_string();
        assert!(
            error.contains("[plugins.p.config] paper.size") && error.contains("[config.paper]"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_type_is_refused() {
        let error = overrides("p", "dpi = \"high\"")
            .effective("p", &table("dpi = 300"))
            .expect_err("a string for an integer");
        assert!(matches!(&error, OverrideError::Type { expected, .. } if expected == "an integer"));
        let error = error.to_string();
        assert!(
            error.contains("dpi = \"high\"") && error.contains("expected an integer"),
            "{error}"
        );
    }

    #[test]
    fn replace_reports_what_changed() {
        let overrides = Overrides::new(BTreeMap::from([
            ("a".to_owned(), table("x = 1")),
            ("b".to_owned(), table("x = 1")),
        ]));
        let changed = overrides.replace(BTreeMap::from([
            ("b".to_owned(), table("x = 2")),
            ("c".to_owned(), table("x = 1")),
        ]));
        assert_eq!(changed, ["a", "b", "c"]);
        assert_eq!(overrides.names(), ["b", "c"]);
        assert!(
            overrides
                .replace(BTreeMap::from([
                    ("b".to_owned(), table("x = 2")),
                    ("c".to_owned(), table("x = 1")),
                ]))
                .is_empty()
        );
    }
}
