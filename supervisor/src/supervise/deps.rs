//! Plugin dependency resolution: which discovered plugins can start, in what
//! order, and why the others cannot. Pure: no I/O, no clock.
//!
//! Rules:
//!
//! - A dependency `NAME = RANGE` is met when a plugin called `NAME` is
//!   installed, its version matches `RANGE` (`semver::VersionReq::matches`,
//!   so a pre-release such as `2.0.0-rc.1` only matches a range that names a
//!   pre-release of the same `major.minor.patch`), and that plugin can start
//!   itself.
//! - A plugin on a dependency cycle (itself included) cannot start: no start
//!   order exists. Cycles are judged by names alone, whatever the ranges say,
//!   and each member names a shortest cycle through itself.
//! - Otherwise a plugin fails because of its first unmet dependency in name
//!   order, and the message names the whole chain down to the cause:
//!   `a 1.0.0 needs b ^1, which cannot start: b 1.0.0 needs c ^1, which is
//!   not installed`.
//! - The plugins that can start are ordered dependencies first; at each step
//!   the earliest plugin in input order whose dependencies have all started
//!   goes next, so independent plugins keep their input order.
//!
//! The caller guarantees that names are unique.

use semver::{Version, VersionReq};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// One discovered plugin, as the resolver sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a Version,
    /// `[dependencies] NAME = range`.
    pub(crate) dependencies: &'a BTreeMap<String, VersionReq>,
}

/// What resolution decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// Indices into the input of the plugins that can start, dependencies
    /// before dependents (stable: among independent plugins, input order).
    pub(crate) order: Vec<usize>,
    /// Plugins that cannot start, each with why (index, message), by index.
    pub(crate) failed: Vec<(usize, String)>,
}

/// Decides which of `nodes` can start, in which order, and why the others
/// cannot.
pub(crate) fn resolve(nodes: &[Node<'_>]) -> Resolution {
    let graph = Graph::new(nodes);
    // A search per plugin: quadratic, and plugin sets are small.
    let mut verdicts: Vec<Option<Verdict>> = (0..nodes.len())
        .map(|i| {
            let cycle = graph.cycle_through(i)?;
            Some(Verdict::Fails(graph.cycle_message(&cycle)))
        })
        .collect();
    for i in 0..nodes.len() {
        graph.judge(i, &mut verdicts);
    }

    let mut failed = Vec::new();
    let mut starts = vec![false; nodes.len()];
    for (i, verdict) in verdicts.into_iter().enumerate() {
        match verdict.expect("judge gave every plugin a verdict") {
            Verdict::Starts => starts[i] = true,
            Verdict::Fails(why) => failed.push((i, why)),
        }
    }
    Resolution {
        order: graph.start_order(&starts),
        failed,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Starts,
    Fails(String),
}

/// The plugins with their names looked up once.
struct Graph<'n, 'a> {
    nodes: &'n [Node<'a>],
    index: HashMap<&'a str, usize>,
}

impl<'n, 'a> Graph<'n, 'a> {
    fn new(nodes: &'n [Node<'a>]) -> Self {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
        Self { nodes, index }
    }

    /// The installed dependencies of plugin `i`, in name order.
    fn edges(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let dependencies = self.nodes[i].dependencies.keys();
        dependencies.filter_map(|name| self.index.get(name.as_str()).copied())
    }

    /// A shortest cycle `i → … → i` (as `[i, …]`, without repeating `i`),
    /// if `i` is on one.
    fn cycle_through(&self, i: usize) -> Option<Vec<usize>> {
        let mut parent = vec![None; self.nodes.len()];
        let mut queue = VecDeque::from([i]);
        while let Some(u) = queue.pop_front() {
            for v in self.edges(u) {
                if v == i {
                    // Walk back from `u` to the root `i`.
                    let (mut cycle, mut at) = (vec![u], u);
                    while let Some(p) = parent[at] {
                        cycle.push(p);
                        at = p;
                    }
                    cycle.reverse();
                    return Some(cycle);
                }
                if parent[v].is_none() {
                    parent[v] = Some(u);
                    queue.push_back(v);
                }
            }
        }
        None
    }

    fn cycle_message(&self, cycle: &[usize]) -> String {
        let step = |&k: &usize| format!("{} {}", self.nodes[k].name, self.nodes[k].version);
        let steps: Vec<String> = cycle.iter().chain(cycle.first()).map(step).collect();
        format!("dependency cycle: {}", steps.join(" → "))
    }

    /// Fills in `verdicts[i]`. Plugins on cycles already have theirs, so the
    /// recursion only walks acyclic paths.
    fn judge(&self, i: usize, verdicts: &mut [Option<Verdict>]) {
        if verdicts[i].is_some() {
            return;
        }
        let node = self.nodes[i];
        let mut verdict = Verdict::Starts;
        for (name, range) in node.dependencies {
            let why = match self.index.get(name.as_str()) {
                None => "which is not installed".to_owned(),
                Some(&j) if !range.matches(self.nodes[j].version) => {
                    format!("found {name} {}", self.nodes[j].version)
                }
                Some(&j) => {
                    self.judge(j, verdicts);
                    match &verdicts[j] {
                        Some(Verdict::Fails(why)) => format!("which cannot start: {why}"),
                        _ => continue,
                    }
                }
            };
            let needs = format!("{} {} needs {name} {range}", node.name, node.version);
            verdict = Verdict::Fails(format!("{needs}, {why}"));
            break;
        }
        verdicts[i] = Some(verdict);
    }

    /// Kahn's algorithm over the plugins that start, earliest index first.
    fn start_order(&self, starts: &[bool]) -> Vec<usize> {
        let mut waiting_on = vec![0_usize; self.nodes.len()];
        let mut dependents = vec![Vec::new(); self.nodes.len()];
        for i in (0..self.nodes.len()).filter(|&i| starts[i]) {
            for j in self.edges(i) {
                waiting_on[i] += 1;
                dependents[j].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..self.nodes.len())
            .filter(|&i| starts[i] && waiting_on[i] == 0)
            .collect();
        let mut order = Vec::with_capacity(ready.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &k in &dependents[i] {
                waiting_on[k] -= 1;
                if waiting_on[k] == 0 {
                    ready.insert(k);
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned storage for a [`Node`].
    struct Plugin {
        name: String,
        version: Version,
        dependencies: BTreeMap<String, VersionReq>,
    }

    fn plugin(name: &str, version: &str, dependencies: &[(&str, &str)]) -> Plugin {
        Plugin {
            name: name.to_owned(),
            version: Version::parse(version).expect("test version"),
            dependencies: dependencies
                .iter()
                .map(|&(n, r)| (n.to_owned(), VersionReq::parse(r).expect("test range")))
                .collect(),
        }
    }

    fn nodes(plugins: &[Plugin]) -> Vec<Node<'_>> {
        plugins
            .iter()
            .map(|p| Node {
                name: &p.name,
                version: &p.version,
                dependencies: &p.dependencies,
            })
            .collect()
    }

    fn resolve_plugins(plugins: &[Plugin]) -> Resolution {
        resolve(&nodes(plugins))
    }

    fn failed(entries: &[(usize, &str)]) -> Vec<(usize, String)> {
        entries
            .iter()
            .map(|&(i, why)| (i, why.to_owned()))
            .collect()
    }

    #[test]
    fn chain_starts_dependencies_first() {
        let plugins = [
            plugin("app", "1.0.0", &[("cache", "^1")]),
            plugin("cache", "1.2.0", &[("storage", "^1.0")]),
            plugin("storage", "1.0.3", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [2, 1, 0]);
        assert!(resolution.failed.is_empty());
    }

    #[test]
    fn diamond_starts_the_shared_dependency_once_and_first() {
        let plugins = [
            plugin("d", "1.0.0", &[("b", "^1"), ("c", "^1")]),
            plugin("c", "1.0.0", &[("a", "^1")]),
            plugin("b", "1.0.0", &[("a", "^1")]),
            plugin("a", "1.0.0", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [3, 1, 2, 0]);
        assert!(resolution.failed.is_empty());
    }

    #[test]
    fn independent_plugins_keep_input_order() {
        let plugins = [
            plugin("zeta", "1.0.0", &[]),
            plugin("alpha", "0.1.0", &[]),
            plugin("mid", "3.0.0", &[]),
        ];
        assert_eq!(resolve_plugins(&plugins).order, [0, 1, 2]);
    }

    #[test]
    fn missing_dependency_fails_only_its_dependent() {
        let plugins = [
            plugin("hello", "1.0.0", &[("storage", "^1.0")]),
            plugin("other", "1.0.0", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [1]);
        assert_eq!(
            resolution.failed,
            failed(&[(0, "hello 1.0.0 needs storage ^1.0, which is not installed")])
        );
    }

    #[test]
    fn unsatisfied_range_names_the_version_found() {
        let plugins = [
            plugin("a", "1.0.0", &[("b", "^2")]),
            plugin("b", "1.4.0", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [1]);
        assert_eq!(
            resolution.failed,
            failed(&[(0, "a 1.0.0 needs b ^2, found b 1.4.0")])
        );
    }

    #[test]
    fn pre_release_matches_only_ranges_that_opt_in() {
        let plugins = [
            plugin("b", "2.0.0-rc.1", &[]),
            plugin("caret", "1.0.0", &[("b", "^2")]),
            plugin("wildcard", "1.0.0", &[("b", "*")]),
            plugin("opted_in", "1.0.0", &[("b", "^2.0.0-rc.1")]),
            plugin("at_least", "1.0.0", &[("b", ">=2.0.0-alpha")]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [0, 3, 4]);
        assert_eq!(
            resolution.failed,
            failed(&[
                (1, "caret 1.0.0 needs b ^2, found b 2.0.0-rc.1"),
                (2, "wildcard 1.0.0 needs b *, found b 2.0.0-rc.1"),
            ])
        );
    }

    #[test]
    fn transitive_failure_names_the_whole_chain() {
        let plugins = [
            plugin("d", "1.0.0", &[("a", "^1")]),
            plugin("a", "1.0.0", &[("b", "^1")]),
            plugin("b", "1.0.0", &[("c", "^1")]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert!(resolution.order.is_empty());
        assert_eq!(
            resolution.failed,
            failed(&[
                (
                    0,
                    "d 1.0.0 needs a ^1, which cannot start: a 1.0.0 needs b ^1, which cannot \
                     start: b 1.0.0 needs c ^1, which is not installed"
                ),
                (
                    1,
                    "a 1.0.0 needs b ^1, which cannot start: b 1.0.0 needs c ^1, which is not \
                     installed"
                ),
                (2, "b 1.0.0 needs c ^1, which is not installed"),
            ])
        );
    }

    #[test]
    fn first_unmet_dependency_in_name_order_is_named() {
        let plugins = [plugin("a", "1.0.0", &[("zed", "^1"), ("bee", "^1")])];
        assert_eq!(
            resolve_plugins(&plugins).failed,
            failed(&[(0, "a 1.0.0 needs bee ^1, which is not installed")])
        );
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let plugins = [
            plugin("a", "1.0.0", &[("a", "^1")]),
            plugin("b", "1.0.0", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [1]);
        assert_eq!(
            resolution.failed,
            failed(&[(0, "dependency cycle: a 1.0.0 → a 1.0.0")])
        );
    }

    #[test]
    fn two_cycle_fails_both_members_and_spares_the_rest() {
        let plugins = [
            plugin("a", "1.0.0", &[("b", "^2")]),
            plugin("b", "2.0.0", &[("a", "^1")]),
            plugin("c", "1.0.0", &[]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [2]);
        assert_eq!(
            resolution.failed,
            failed(&[
                (0, "dependency cycle: a 1.0.0 → b 2.0.0 → a 1.0.0"),
                (1, "dependency cycle: b 2.0.0 → a 1.0.0 → b 2.0.0"),
            ])
        );
    }

    #[test]
    fn cycle_is_reported_even_when_a_range_is_also_unmet() {
        let plugins = [
            plugin("a", "1.0.0", &[("b", "^9")]),
            plugin("b", "2.0.0", &[("a", "^1")]),
        ];
        assert_eq!(
            resolve_plugins(&plugins).failed,
            failed(&[
                (0, "dependency cycle: a 1.0.0 → b 2.0.0 → a 1.0.0"),
                (1, "dependency cycle: b 2.0.0 → a 1.0.0 → b 2.0.0"),
            ])
        );
    }

    #[test]
    fn three_cycle_fails_its_members_and_dependents_transitively() {
        let plugins = [
            plugin("a", "1.0.0", &[("b", "^1")]),
            plugin("b", "1.0.0", &[("c", "^1")]),
            plugin("c", "1.0.0", &[("a", "^1")]),
            plugin("d", "1.0.0", &[("b", "^1")]),
            plugin("e", "1.0.0", &[]),
            plugin("f", "1.0.0", &[("e", "^1")]),
        ];
        let resolution = resolve_plugins(&plugins);
        assert_eq!(resolution.order, [4, 5]);
        assert_eq!(
            resolution.failed,
            failed(&[
                (0, "dependency cycle: a 1.0.0 → b 1.0.0 → c 1.0.0 → a 1.0.0"),
                (1, "dependency cycle: b 1.0.0 → c 1.0.0 → a 1.0.0 → b 1.0.0"),
                (2, "dependency cycle: c 1.0.0 → a 1.0.0 → b 1.0.0 → c 1.0.0"),
                (
                    3,
                    "d 1.0.0 needs b ^1, which cannot start: dependency cycle: b 1.0.0 → \
                     c 1.0.0 → a 1.0.0 → b 1.0.0"
                ),
            ])
        );
    }

    /// splitmix64: a tiny deterministic PRNG.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).expect("below a usize")
        }

        fn pick<'t>(&mut self, items: &[&'t str]) -> &'t str {
            items[self.below(items.len())]
        }
    }

    /// Plugins `p0..pN` in shuffled input order; with `acyclic`, `pK` only
    /// depends on `pJ` with `J < K`. Some dependencies are not installed.
    fn random_plugins(rng: &mut Rng, acyclic: bool) -> Vec<Plugin> {
        const VERSIONS: &[&str] = &["0.2.1", "1.0.0", "1.4.0", "2.0.0-rc.1", "2.1.0"];
        const RANGES: &[&str] = &[
            "*",
            "^1",
            "^1.2",
            "~0.2",
            ">=1.0.0",
            "^2.0.0-rc.1",
            "=2.1.0",
        ];
        let count = 1 + rng.below(12);
        let mut plugins: Vec<Plugin> = (0..count)
            .map(|k| {
                let mut dependencies = Vec::new();
                for _ in 0..rng.below(4) {
                    let target = match rng.below(10) {
                        0 => count + rng.below(3),
                        _ if acyclic && k == 0 => continue,
                        _ if acyclic => rng.below(k),
                        _ => rng.below(count),
                    };
                    dependencies.push((format!("p{target}"), rng.pick(RANGES)));
                }
                let dependencies: Vec<(&str, &str)> =
                    dependencies.iter().map(|(n, r)| (n.as_str(), *r)).collect();
                plugin(&format!("p{k}"), rng.pick(VERSIONS), &dependencies)
            })
            .collect();
        for k in (1..plugins.len()).rev() {
            plugins.swap(k, rng.below(k + 1));
        }
        plugins
    }

    /// The plugins that can start, by the definition: repeatedly admit a
    /// plugin whose dependencies are installed, in range and admitted.
    fn startable_by_definition(nodes: &[Node<'_>]) -> Vec<bool> {
        let mut starts = vec![false; nodes.len()];
        loop {
            let admitted = (0..nodes.len()).find(|&i| {
                !starts[i]
                    && nodes[i].dependencies.iter().all(|(name, range)| {
                        nodes.iter().enumerate().any(|(j, dep)| {
                            dep.name == name && range.matches(dep.version) && starts[j]
                        })
                    })
            });
            match admitted {
                Some(i) => starts[i] = true,
                None => return starts,
            }
        }
    }

    fn check_invariants(plugins: &[Plugin]) {
        let nodes = nodes(plugins);
        let resolution = resolve(&nodes);
        assert_eq!(resolution, resolve(&nodes), "deterministic");

        let mut seen = vec![0; nodes.len()];
        for &i in resolution
            .order
            .iter()
            .chain(resolution.failed.iter().map(|(i, _)| i))
        {
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1), "covered once: {resolution:?}");

        let position: HashMap<&str, usize> = resolution
            .order
            .iter()
            .enumerate()
            .map(|(at, &i)| (nodes[i].name, at))
            .collect();
        for (at, &i) in resolution.order.iter().enumerate() {
            for name in nodes[i].dependencies.keys() {
                let before = position.get(name.as_str()).is_some_and(|&p| p < at);
                assert!(
                    before,
                    "{name} must start before {}: {resolution:?}",
                    nodes[i].name
                );
            }
        }

        let starts = startable_by_definition(&nodes);
        for i in 0..nodes.len() {
            assert_eq!(
                starts[i],
                position.contains_key(nodes[i].name),
                "{resolution:?}"
            );
        }
    }

    #[test]
    fn random_dags_order_dependencies_first_and_cover_every_plugin_once() {
        let mut rng = Rng(6);
        for _ in 0..400 {
            check_invariants(&random_plugins(&mut rng, true));
        }
    }

    #[test]
    fn random_graphs_with_cycles_still_cover_every_plugin_once() {
        let mut rng = Rng(42);
        for _ in 0..400 {
            check_invariants(&random_plugins(&mut rng, false));
        }
    }
}
