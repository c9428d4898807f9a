//! Property tests of [`Manifest::parse`]: the parser round-trips every
//! valid manifest (written as TOML by the `toml` crate, defaults left out
//! or all written), never panics, and refuses every unknown key by name.
//! They test the whole parser (`mod.rs` and every table's file), and have
//! a file of their own for their size.

use super::settings::MAX_DELAY_MS;
use super::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use toml::{Table, Value};

const PATH: &str = "plugins/p/plugin.toml";

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,63}"
}

fn version() -> impl Strategy<Value = semver::Version> {
    (
        0..1000u64,
        0..1000u64,
        0..1000u64,
        option::of("[a-z]{1,5}(\\.[1-9][0-9]{0,2})?"),
        option::of("[a-z0-9]{1,6}"),
    )
        .prop_map(|(major, minor, patch, pre, build)| {
            let mut text = format!("{major}.{minor}.{patch}");
            if let Some(pre) = pre {
                text = format!("{text}-{pre}");
            }
            if let Some(build) = build {
                text = format!("{text}+{build}");
            }
            semver::Version::parse(&text).expect("generated a valid version")
        })
}

fn range() -> impl Strategy<Value = semver::VersionReq> {
    let comparator = (
        prop_oneof![
            Just(""),
            Just("^"),
            Just("~"),
            Just("="),
            Just(">"),
            Just(">="),
            Just("<"),
            Just("<=")
        ],
        0..100u64,
        option::of((0..100u64, option::of(0..100u64))),
    )
        .prop_map(|(op, major, rest)| match rest {
            None => format!("{op}{major}"),
            Some((minor, None)) => format!("{op}{major}.{minor}"),
            Some((minor, Some(patch))) => format!("{op}{major}.{minor}.{patch}"),
        });
    prop_oneof![
        1 => Just("*".to_owned()),
        8 => vec(comparator, 1..3).prop_map(|comparators| comparators.join(", ")),
    ]
    .prop_map(|text| semver::VersionReq::parse(&text).expect("generated a valid range"))
}

fn kind_entry_wasi() -> impl Strategy<Value = (PluginKind, PathBuf, bool)> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,10}(/[a-z][a-z0-9_]{0,8}){0,2}\\.so(\\.[0-9])?".prop_map(|entry| (
            PluginKind::Native,
            PathBuf::from(entry),
            false
        )),
        ("[a-z][a-z0-9_]{0,10}\\.(wasm|wat|WASM)", any::<bool>()).prop_map(|(entry, wasi)| (
            PluginKind::Wasm,
            PathBuf::from(entry),
            wasi
        )),
    ]
}

fn permissions() -> impl Strategy<Value = Permissions> {
    let path = "/?[a-z]{1,8}(/[a-z0-9.]{1,8}){0,2}".prop_map(PathBuf::from);
    let grant = prop_oneof![
        Just(HostGrant::Log),
        Just(HostGrant::Now),
        Just(HostGrant::Kv),
        Just(HostGrant::Publish),
    ];
    let syscall = prop::sample::select(&["inotify_init1", "socket", "setuid", "chmod"][..])
        .prop_map(|name| Syscall::try_from(name.to_owned()).expect("refused, not killed"));
    (
        vec(path.clone(), 0..3),
        vec(path, 0..3),
        any::<bool>(),
        vec(grant, 0..3),
        vec(syscall, 0..3),
    )
        .prop_map(|(read, write, network, host, syscalls)| Permissions {
            read,
            write,
            network,
            host,
            syscalls,
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    let limit = |key: &str| {
        let (_, min, max) = Limits::RANGES
            .into_iter()
            .find(|(name, _, _)| *name == key)
            .expect("a limit");
        // TOML integers are i64.
        option::of(min..=max.min(i64::MAX as u64))
    };
    (
        limit("memory_mb"),
        limit("cpu_seconds"),
        limit("cpu_percent"),
        limit("call_timeout_ms"),
        limit("open_files"),
        limit("threads"),
        limit("file_size_mb"),
        limit("wasm_fuel"),
        limit("storage_mb"),
        limit("storage_keys"),
    )
        .prop_map(
            |(
                memory_mb,
                cpu_seconds,
                cpu_percent,
                call_timeout_ms,
                open_files,
                threads,
                file_size_mb,
                wasm_fuel,
                storage_mb,
                storage_keys,
            )| Limits {
                memory_mb,
                cpu_seconds,
                cpu_percent,
                call_timeout_ms,
                open_files,
                threads,
                file_size_mb,
                wasm_fuel,
                storage_mb,
                storage_keys,
            },
        )
}

fn restart() -> impl Strategy<Value = RestartSettings> {
    let policy = prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Never)
    ];
    (
        policy,
        option::of(1..=1000u32),
        1..=MAX_DELAY_MS,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(policy, give_up_after, backoff_ms, spare, fresh_exec)| {
            (backoff_ms..=MAX_DELAY_MS).prop_map(move |backoff_max_ms| RestartSettings {
                policy,
                give_up_after,
                backoff_ms,
                backoff_max_ms,
                spare,
                fresh_exec,
            })
        })
}

fn health() -> impl Strategy<Value = HealthSettings> {
    (
        prop_oneof![Just(0), 100..=MAX_DELAY_MS],
        1..=600_000u64,
        1..=100u32,
    )
        .prop_map(|(interval_ms, timeout_ms, failures)| HealthSettings {
            interval_ms,
            timeout_ms,
            failures,
        })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let plugin = (
        name(),
        version(),
        kind_entry_wasi(),
        option::of(range()),
        option::of("[0-9a-f]{64}"),
        prop_oneof![Just(StartMode::Eager), Just(StartMode::Lazy)],
    );
    let dependencies = btree_map(name(), range(), 0..4);
    let topic = "[a-z][a-z0-9._/-]{0,12}\\*?";
    (
        plugin,
        dependencies,
        permissions(),
        vec(topic, 0..3),
        limits(),
        restart(),
        health(),
        any::<bool>(),
    )
        .prop_map(
            |(
                (name, version, (kind, entry, wasi), requires, sha256, start),
                mut dependencies,
                permissions,
                subscribe,
                limits,
                restart,
                health,
                record,
            )| {
                dependencies.remove(&name);
                Manifest {
                    name,
                    version,
                    kind,
                    wasi,
                    entry,
                    api: ABI_VERSION,
                    requires,
                    sha256,
                    start,
                    provides: Vec::new(),
                    methods: Vec::new(),
                    config: toml::Table::new(),
                    dependencies,
                    permissions,
                    subscribe,
                    limits,
                    restart,
                    health,
                    record,
                }
            },
        )
}

/// `manifest` as TOML, built as a [`toml::Table`] and written by the
/// `toml` crate. `explicit` writes every key, defaults included, and every
/// table (an empty one as its header alone); otherwise keys holding their
/// default, and tables left empty, are left out. `upper` writes the hash
/// in upper case.
fn render(manifest: &Manifest, explicit: bool, upper: bool) -> String {
    // Sets `key` to `value`, unless that is its default and defaults are
    // left out.
    let set = |table: &mut Table, key: &str, value: Value, default: bool| {
        if explicit || !default {
            table.insert(key.to_owned(), value);
        }
    };
    let text = |text: &str| Value::String(text.to_owned());
    let texts = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    let paths = |paths: &[PathBuf]| texts(paths.iter().map(|p| p.display().to_string()).collect());
    let integer =
        |n: u64| Value::Integer(i64::try_from(n).expect("generated within TOML's integers"));

    let mut plugin = Table::new();
    set(&mut plugin, "name", text(&manifest.name), false);
    set(
        &mut plugin,
        "version",
        text(&manifest.version.to_string()),
        false,
    );
    set(&mut plugin, "kind", text(manifest.kind.as_str()), false);
    // `wasi = false` is only allowed to be explicit for wasm.
    let wasi_default = !manifest.wasi && manifest.kind != PluginKind::Wasm;
    set(
        &mut plugin,
        "wasi",
        Value::Boolean(manifest.wasi),
        wasi_default || !manifest.wasi && !explicit,
    );
    set(
        &mut plugin,
        "entry",
        text(&manifest.entry.display().to_string()),
        false,
    );
    set(
        &mut plugin,
        "api",
        Value::Integer(i64::from(manifest.api)),
        false,
    );
    if let Some(requires) = &manifest.requires {
        set(&mut plugin, "requires", text(&requires.to_string()), false);
    }
    if let Some(sha256) = &manifest.sha256 {
        let sha256 = if upper {
            sha256.to_ascii_uppercase()
        } else {
            sha256.clone()
        };
        set(&mut plugin, "sha256", text(&sha256), false);
    }
    set(
        &mut plugin,
        "start",
        text(manifest.start.as_str()),
        manifest.start == StartMode::default(),
    );

    let mut dependencies = Table::new();
    for (name, range) in &manifest.dependencies {
        set(&mut dependencies, name, text(&range.to_string()), false);
    }

    let permissions = &manifest.permissions;
    let mut grants = Table::new();
    set(
        &mut grants,
        "read",
        paths(&permissions.read),
        permissions.read.is_empty(),
    );
    set(
        &mut grants,
        "write",
        paths(&permissions.write),
        permissions.write.is_empty(),
    );
    set(
        &mut grants,
        "network",
        Value::Boolean(permissions.network),
        !permissions.network,
    );
    set(
        &mut grants,
        "host",
        texts(permissions.host.iter().map(ToString::to_string).collect()),
        permissions.host.is_empty(),
    );
    set(
        &mut grants,
        "syscalls",
        texts(permissions.syscall_names()),
        permissions.syscalls.is_empty(),
    );

    let mut events = Table::new();
    set(
        &mut events,
        "subscribe",
        texts(manifest.subscribe.clone()),
        manifest.subscribe.is_empty(),
    );

    let limits = &manifest.limits;
    let mut limit_table = Table::new();
    for (name, value) in [
        ("memory_mb", limits.memory_mb),
        ("cpu_seconds", limits.cpu_seconds),
        ("cpu_percent", limits.cpu_percent),
        ("call_timeout_ms", limits.call_timeout_ms),
        ("open_files", limits.open_files),
        ("threads", limits.threads),
        ("file_size_mb", limits.file_size_mb),
        ("wasm_fuel", limits.wasm_fuel),
        ("storage_mb", limits.storage_mb),
        ("storage_keys", limits.storage_keys),
    ] {
        if let Some(value) = value {
            set(&mut limit_table, name, integer(value), false);
        }
    }

    let restart = &manifest.restart;
    let defaults = RestartSettings::default();
    let mut restart_table = Table::new();
    set(
        &mut restart_table,
        "policy",
        text(restart.policy.as_str()),
        restart.policy == defaults.policy,
    );
    if let Some(give_up_after) = restart.give_up_after {
        set(
            &mut restart_table,
            "give_up_after",
            integer(give_up_after.into()),
            false,
        );
    }
    set(
        &mut restart_table,
        "backoff_ms",
        integer(restart.backoff_ms),
        restart.backoff_ms == defaults.backoff_ms,
    );
    set(
        &mut restart_table,
        "backoff_max_ms",
        integer(restart.backoff_max_ms),
        restart.backoff_max_ms == defaults.backoff_max_ms,
    );
    set(
        &mut restart_table,
        "spare",
        Value::Boolean(restart.spare),
        restart.spare == defaults.spare,
    );
    set(
        &mut restart_table,
        "fresh_exec",
        Value::Boolean(restart.fresh_exec),
        restart.fresh_exec == defaults.fresh_exec,
    );

    let health = &manifest.health;
    let defaults = HealthSettings::default();
    let mut health_table = Table::new();
    set(
        &mut health_table,
        "interval_ms",
        integer(health.interval_ms),
        health.interval_ms == defaults.interval_ms,
    );
    set(
        &mut health_table,
        "timeout_ms",
        integer(health.timeout_ms),
        health.timeout_ms == defaults.timeout_ms,
    );
    set(
        &mut health_table,
        "failures",
        integer(health.failures.into()),
        health.failures == defaults.failures,
    );

    let mut debug = Table::new();
    set(
        &mut debug,
        "record",
        Value::Boolean(manifest.record),
        manifest.record,
    );

    let mut document = Table::new();
    for (name, table) in [
        ("plugin", plugin),
        ("dependencies", dependencies),
        ("permissions", grants),
        ("events", events),
        ("limits", limit_table),
        ("restart", restart_table),
        ("health", health_table),
        ("debug", debug),
    ] {
        if explicit || !table.is_empty() {
            document.insert(name.to_owned(), Value::Table(table));
        }
    }
    toml::to_string(&document).expect("a table is written as TOML")
}

/// The keys each table (`""` = the top level) accepts.
fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "plugin",
            "dependencies",
            "permissions",
            "events",
            "limits",
            "restart",
            "health",
            "debug",
        ],
        "plugin" => &[
            "name", "version", "kind", "wasi", "entry", "api", "requires", "sha256", "start",
        ],
        "permissions" => &["read", "write", "network", "host", "syscalls"],
        "events" => &["subscribe"],
        "limits" => &[
            "memory_mb",
            "cpu_seconds",
            "cpu_percent",
            "call_timeout_ms",
            "open_files",
            "threads",
            "file_size_mb",
            "wasm_fuel",
            "storage_mb",
            "storage_keys",
        ],
        "restart" => &[
            "policy",
            "give_up_after",
            "backoff_ms",
            "backoff_max_ms",
            "spare",
            "fresh_exec",
        ],
        "health" => &["interval_ms", "timeout_ms", "failures"],
        "debug" => &["record"],
        other => panic!("no table {other}"),
    }
}

/// Something shaped like TOML, to get past the tokenizer more
/// often than random text does.
fn tomlish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "\\[(plugin|limits|restart|health|dependencies|permissions|[a-z]{1,6})\\]",
        "[a-z_\"-]{1,12} = (\"[^\"\\n]{0,12}\"|-?[0-9]{1,20}|true|false|\\[[0-9, \"a-z]{0,12}\\]|\\{[a-z =0-9]{0,10}\\}|[0-9.eE+-]{1,8})",
        "[^\\n]{0,20}",
    ];
    vec(line, 0..16).prop_map(|lines| lines.join("\n"))
}

fn assert_no_panic(text: &str) -> Result<(), TestCaseError> {
    if let Err(error) = Manifest::parse(text, Path::new(PATH)) {
        let message = error.to_string();
        prop_assert!(message.starts_with(PATH), "{}", message);
    }
    Ok(())
}

proptest! {
    #[test]
    fn valid_manifests_round_trip(
        manifest in manifest(),
        explicit in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let text = render(&manifest, explicit, upper);
        let parsed = Manifest::parse(&text, Path::new(PATH));
        prop_assert_eq!(parsed.as_ref(), Ok(&manifest), "{}", text);
    }

    #[test]
    fn any_text_is_parsed_or_refused_never_a_panic(text in any::<String>()) {
        assert_no_panic(&text)?;
    }

    #[test]
    fn any_bytes_are_parsed_or_refused_never_a_panic(bytes in vec(any::<u8>(), 0..512)) {
        assert_no_panic(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn toml_like_text_is_parsed_or_refused_never_a_panic(text in tomlish()) {
        assert_no_panic(&text)?;
    }

    #[test]
    fn damaged_manifests_are_parsed_or_refused_never_a_panic(
        manifest in manifest(),
        cuts in vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<char>()), 1..4),
    ) {
        let mut text: Vec<char> = render(&manifest, true, false).chars().collect();
        for (at, len, insert) in cuts {
            let at = at.index(text.len() + 1);
            let end = (at + len.index(4)).min(text.len());
            text.splice(at..end, [insert]);
        }
        assert_no_panic(&text.into_iter().collect::<String>())?;
    }

    #[test]
    fn an_unknown_key_is_refused_by_name(
        manifest in manifest(),
        table in prop::sample::select(vec!["", "plugin", "permissions", "limits", "restart", "health"]),
        unknown in "[a-z][a-z0-9_]{0,15}",
        rename in any::<bool>(),
        which in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!known_keys(table).contains(&unknown.as_str()));
        let text = render(&manifest, true, false);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let header = if table.is_empty() {
            None
        } else {
            let header = format!("[{table}]");
            Some(lines.iter().position(|line| *line == header).expect("explicit rendering has every table"))
        };
        let first = header.map_or(0, |h| h + 1);
        let keys: Vec<usize> = (first..lines.len())
            .take_while(|i| !lines[*i].starts_with('['))
            .filter(|i| lines[*i].contains(" = "))
            .collect();
        let line = if rename && !keys.is_empty() && !table.is_empty() {
            let at = keys[which.index(keys.len())];
            let (_, value) = lines[at].split_once(" = ").expect("a key line");
            lines[at] = format!("{unknown} = {value}");
            at
        } else {
            lines.insert(first, format!("{unknown} = 1"));
            first
        };
        let text = lines.join("\n");
        let error = Manifest::parse(&text, Path::new(PATH))
            .expect_err("an unknown key is refused")
            .to_string();
        let unknown_field = format!("unknown field `{unknown}`");
        prop_assert!(error.contains(&unknown_field), "{}\n=> {}", text, error);
        let prefix = format!("{PATH}:{}:1: ", line + 1);
        prop_assert!(error.starts_with(&prefix), "{}\n=> {}", text, error);
    }
}
