//! The workspace's import graph, read from the sources: no module imports
//! a module that imports it back (directly or through others), and the
//! supervisor's layers import downward only, in the order
//! `supervisor/src/lib.rs` writes down ([`LAYERS`]).
//!
//! An import is any path through `crate::` or `super::` outside comments
//! (`use` lines, paths in code); a path names the deepest module it
//! reaches. This reads text, not the compiler's view, so it is simple and
//! strict: a path in a string literal counts too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The supervisor library's layers, top first: a module may import
/// modules of its own layer and of the layers below it.
const LAYERS: &[&str] = &[
    "testing",
    "admin",
    "daemon",
    "host",
    "supervise",
    "services",
    "process",
    "observe",
    "config",
    "client",
    "transport",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// One crate: its root file, and the files of its modules by module path
/// (`""` for the root, `supervise::handle`, ...).
struct Crate {
    name: &'static str,
    modules: BTreeMap<String, PathBuf>,
}

impl Crate {
    /// The crate rooted at `root` (`lib.rs` or `main.rs`) under `src`,
    /// with the folders `folders` (relative to `src`) as its modules.
    fn read(name: &'static str, src: &Path, root: &str, folders: &[&str]) -> Self {
        let mut modules = BTreeMap::new();
        modules.insert(String::new(), src.join(root));
        let mut files = Vec::new();
        for folder in folders {
            collect(&src.join(folder), &mut files);
        }
        for file in files {
            let relative = file.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            modules.insert(parts.join("::"), file);
        }
        Self { name, modules }
    }

    /// The module a path from the crate root reaches: its longest prefix
    /// that is a module.
    fn module_of(&self, path: &[String]) -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|len| path[..len].join("::"))
            .find(|candidate| self.modules.contains_key(candidate))
    }

    /// Module → the modules it imports.
    fn graph(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut graph = BTreeMap::new();
        for (module, file) in &self.modules {
            let text = without_tests(&code(&fs::read_to_string(file).expect("read source")));
            let own: Vec<String> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").map(str::to_owned).collect()
            };
            let mut imports = BTreeSet::new();
            for path in paths_after(&text, "crate::") {
                imports.extend(self.module_of(&path));
            }
            for path in paths_after(&text, "super::") {
                // `super` is the module's parent (inline test modules, whose
                // `super` is the file, were cut out).
                let mut base = own.clone();
                base.pop();
                base.extend(path);
                imports.extend(self.module_of(&base));
            }
            imports.remove(module);
            // A module's own submodules are its parts, not imports.
            imports
                .retain(|import| !import.starts_with(&format!("{module}::")) || module.is_empty());
            if module.is_empty() {
                imports.clear(); // the root declares and re-exports
            }
            graph.insert(module.clone(), imports);
        }
        graph
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    if dir.is_file() {
        files.push(dir.to_owned());
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `text` without its comments (line comments, doc comments included).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` without its `#[cfg(test)] mod NAME { ... }` blocks: tests are
/// not the architecture.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_module = trimmed.starts_with("mod ") && {
            let header = trimmed.split('{').next().unwrap_or_default();
            !header.contains(';')
        };
        out.push_str(&rest[..at]);
        if !is_module {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("a module body");
        let mut depth = 0;
        let mut end = after.len();
        for (index, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every path that follows `prefix` (`crate::`, `super::`), as segments;
/// a group (`crate::{a::b, c}`) gives one path per item.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `foo::crate::` or `$crate::` are not ours
        }
        paths.extend(items(rest, Vec::new()));
    }
    paths
}

/// The paths at the start of `text`: `a::b::c` or a `{...}` group, each
/// prefixed by `base`.
fn items(text: &str, base: Vec<String>) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut paths = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (at, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths.extend(items(&group[start..at], base.clone()));
                    return paths;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths.extend(items(&group[start..at], base.clone()));
                    start = at + 1;
                }
                _ => {}
            }
        }
        return paths;
    }
    let mut path = base;
    let mut rest = text;
    loop {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        path.push(rest[..len].to_owned());
        rest = &rest[len..];
        match rest.strip_prefix("::") {
            Some(next) if next.starts_with('{') => return items(next, path),
            Some(next) => rest = next,
            None => break,
        }
    }
    if path.is_empty() {
        Vec::new()
    } else {
        vec![path]
    }
}

/// The cycles of `graph`: its strongly connected components of more than
/// one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let index = state.index.len();
        state.index.insert(node, index);
        state.low.insert(node, index);
        state.stack.push(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[next].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.stack.contains(&next) {
                let low = state.index[next].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn crates() -> Vec<Crate> {
    let root = workspace();
    let supervisor = root.join("supervisor/src");
    let supervisor_lib: Vec<&str> = fs::read_dir(&supervisor)
        .expect("supervisor/src")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            (!matches!(name.as_str(), "lib.rs" | "main.rs" | "cli" | "bin")).then_some(name)
        })
        .map(|name| &*Box::leak(name.into_boxed_str()))
        .collect();
    let all = |src: &Path| -> Vec<&'static str> {
        fs::read_dir(src)
            .expect("src")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                (!matches!(name.as_str(), "lib.rs" | "main.rs" | "bin"))
                    .then(|| &*Box::leak(name.into_boxed_str()))
            })
            .collect()
    };
    vec![
        Crate::read(
            "corral-plugin-api",
            &root.join("plugin-api/src"),
            "lib.rs",
            &all(&root.join("plugin-api/src")),
        ),
        Crate::read(
            "corral-worker",
            &root.join("worker/src"),
            "lib.rs",
            &all(&root.join("worker/src")),
        ),
        Crate::read("corral (library)", &supervisor, "lib.rs", &supervisor_lib),
        Crate::read("corral (binary)", &supervisor, "main.rs", &["cli"]),
    ]
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for krate in crates() {
        for cycle in cycles(&krate.graph()) {
            found.push(format!("{}: {}", krate.name, cycle.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_supervisors_layers_import_downward_only() {
    let krate = crates()
        .into_iter()
        .find(|krate| krate.name == "corral (library)")
        .expect("the supervisor library");
    let layer = |module: &str| {
        let top = module.split("::").next().unwrap_or_default();
        LAYERS.iter().position(|layer| *layer == top)
    };
    let mut wrong = Vec::new();
    for (module, imports) in krate.graph() {
        if module.is_empty() {
            continue;
        }
        let Some(own) = layer(&module) else {
            wrong.push(format!("{module}: in no layer of LAYERS"));
            continue;
        };
        for import in imports {
            match layer(&import) {
                Some(theirs) if theirs >= own => {}
                Some(_) => wrong.push(format!("{module} imports {import}, a layer above it")),
                None => wrong.push(format!("{module} imports {import}, in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_groups_and_parents() {
    let text = "use crate::{a::b, c::{d, e::f}};\nlet x = super::g::h(); // crate::ignored\n\
                #[cfg(test)]\nmod tests {\n    use crate::tested;\n    fn f() { if x { } }\n}\n";
    let text = without_tests(&code(text));
    assert_eq!(
        paths_after(&text, "crate::"),
        [vec!["a", "b"], vec!["c", "d"], vec!["c", "e", "f"]]
    );
    assert_eq!(paths_after(&text, "super::"), [vec!["g", "h"]]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycles(&graph), [vec!["a", "b", "c"]]);
}
