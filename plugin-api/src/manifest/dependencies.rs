//! The versions a plugin works with: `[dependencies]` (other plugins by
//! name, with a semver range each) and the range parser that `[plugin]
//! requires` shares.

use super::names::check_name;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// `[dependencies]`, checked: each key the name of a plugin other than
/// `plugin` itself, each value a semver range.
pub(super) fn dependency_ranges(
    raw: BTreeMap<Spanned<String>, Spanned<String>>,
    plugin: &str,
) -> Result<BTreeMap<String, semver::VersionReq>, (Range<usize>, String)> {
    let mut dependencies = BTreeMap::new();
    for (dependency, range) in raw {
        let (dependency_span, dependency) = (dependency.span(), dependency.into_inner());
        if let Err(problem) = check_name(&dependency) {
            return Err((
                dependency_span,
                format!(
                    "[dependencies] {dependency} = {:?}: the name of a plugin: {problem}",
                    range.get_ref()
                ),
            ));
        }
        if dependency == plugin {
            return Err((
                dependency_span,
                format!(
                    "[dependencies] {dependency} = {:?}: a plugin cannot depend on itself",
                    range.get_ref()
                ),
            ));
        }
        let req = parse_range(range.get_ref()).map_err(|e| {
            (
                range.span(),
                format!(
                    "[dependencies] {dependency} = {:?}: not a semver range like \"^1.2\": {e}",
                    range.get_ref()
                ),
            )
        })?;
        dependencies.insert(dependency, req);
    }
    Ok(dependencies)
}

/// `text` as a semver range; an empty one is refused (semver would read
/// it as "any", which nobody writes on purpose).
pub(super) fn parse_range(text: &str) -> Result<semver::VersionReq, String> {
    if text.trim().is_empty() {
        return Err("empty (write \"*\" for any version)".to_owned());
    }
    semver::VersionReq::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{GOOD, parse, refused_at};

    #[test]
    fn requires_is_a_semver_range() {
        let text = GOOD.replace("api = 1", "api = 1\nrequires = \">=0.1, <2\"");
        assert_eq!(
            parse(&text).unwrap().requires,
            Some(semver::VersionReq::parse(">=0.1, <2").unwrap())
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = \"newest\""),
            8,
            "[plugin] requires = \"newest\": not a semver range",
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = \"\""),
            8,
            "[plugin] requires = \"\": not a semver range",
        );
        refused_at(
            &GOOD.replace("api = 1", "api = 1\nrequires = 1"),
            8,
            "[plugin] requires: invalid type",
        );
    }

    #[test]
    fn dependencies_are_plugin_names_with_semver_ranges() {
        let text = format!("{GOOD}\n[dependencies]\nstorage = \"^1.2\"\nlog-sink = \"*\"\n");
        let manifest = parse(&text).unwrap();
        assert_eq!(
            manifest.dependencies,
            BTreeMap::from([
                ("log-sink".to_owned(), semver::VersionReq::STAR),
                (
                    "storage".to_owned(),
                    semver::VersionReq::parse("^1.2").unwrap()
                ),
            ])
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = \"^x\"\n"),
            10,
            "[dependencies] storage = \"^x\": not a semver range like \"^1.2\"",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = \"\"\n"),
            10,
            "[dependencies] storage = \"\": not a semver range",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nStorage = \"^1\"\n"),
            10,
            "[dependencies] Storage = \"^1\": the name of a plugin: expected 1 to 64",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\n\"-x\" = \"^1\"\n"),
            10,
            "[dependencies] -x = \"^1\": the name of a plugin",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nhello = \"^1\"\n"),
            10,
            "[dependencies] hello = \"^1\": a plugin cannot depend on itself",
        );
        refused_at(
            &format!("{GOOD}\n[dependencies]\nstorage = 1\n"),
            10,
            "[dependencies] storage: invalid type",
        );
    }
}
