//! Bad plugin folders are reported clearly and never stop the others.

use corral::PluginState;
use corral_tests::{Corral, Workspace};

const GOOD: &str = "[plugin]\nname = \"NAME\"\nversion = \"1.0.0\"\nkind = \"native\"\nentry = \"ENTRY\"\napi = 1\n";

fn manifest(name: &str, entry: &str) -> String {
    GOOD.replace("NAME", name).replace("ENTRY", entry)
}

#[test]
fn bad_manifests_are_reported_and_the_other_plugins_start() {
    let unknown_key = manifest("typo", "lib.so").replace("api = 1", "api = 1\ncolour = \"red\"");
    let escaping = manifest("escape", "../hello/libhello.so");
    let bad_version = manifest("badver", "lib.so").replace("1.0.0", "one");
    let corral = Corral::builder()
        .hello("hello")
        .folder(
            "typo",
            &[("plugin.toml", unknown_key.as_bytes()), ("lib.so", b"")],
        )
        .folder("escape", &[("plugin.toml", escaping.as_bytes())])
        .folder("badver", &[("plugin.toml", bad_version.as_bytes())])
        .folder(
            "missing",
            &[(
                "plugin.toml",
                manifest("missing", "libmissing.so").as_bytes(),
            )],
        )
        .start();
    assert_eq!(corral.wait_ready("hello").state, PluginState::Ready);
    assert_eq!(corral.client().call("hello", "echo", b"x").unwrap(), b"x");

    let plugins = corral.list();
    let error = |name: &str| {
        let plugin = plugins
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(plugin.state, PluginState::Failed, "{name}");
        plugin.error.clone().unwrap_or_default()
    };
    let typo = error("typo");
    assert!(
        typo.contains("typo/plugin.toml:7:1: unknown field `colour`"),
        "{typo}"
    );
    let escape = error("escape");
    assert!(
        escape.contains(
            "[plugin] entry = \"../hello/libhello.so\": must stay inside the plugin folder"
        ),
        "{escape}"
    );
    let badver = error("badver");
    assert!(
        badver.contains("badver/plugin.toml:3:11: [plugin] version = \"one\""),
        "{badver}"
    );
    let missing = error("missing");
    assert!(
        missing.contains("entry libmissing.so: No such file"),
        "{missing}"
    );
    assert!(
        corral.log().contains("not started"),
        "bad plugins are logged"
    );

    // `corral ps` says not everything is ready.
    let ps = corral.cli(&["ps"]);
    assert_eq!(ps.status.code(), Some(1));
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(
        table.contains("typo") && table.contains("failed"),
        "{table}"
    );
}

#[test]
fn library_without_the_entry_symbol_fails_with_a_clear_error() {
    // A real shared library that is not a corral plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).is_file());
    let Some(libm) = libm else {
        eprintln!("SKIPPED: no libm.so.6 found to use as a non-plugin library");
        return;
    };
    let lib = std::fs::read(libm).unwrap();
    let corral = Corral::builder()
        .hello("hello")
        .folder(
            "notplugin",
            &[
                ("plugin.toml", manifest("notplugin", "libm.so").as_bytes()),
                ("libm.so", &lib),
            ],
        )
        .start();
    corral.wait_ready("hello");
    corral.wait_until("the bad library is reported", || {
        corral.plugin("notplugin").error.is_some_and(|e| {
            e.contains("exports neither `corral_plugin_v2_entry` nor `corral_plugin_v1_entry`")
        })
    });
    let plugin = corral.plugin("notplugin");
    assert_ne!(plugin.state, PluginState::Ready);
    let exit = plugin.last_exit.expect("the worker's exit is recorded");
    assert_eq!(exit.code, Some(3), "{}", exit.description);
    let error = corral.client().call("notplugin", "echo", b"").unwrap_err();
    assert!(
        error.to_string().contains("corral_plugin_v1_entry"),
        "{error}"
    );
}

#[test]
fn duplicate_plugin_names_keep_the_first() {
    let corral = Corral::builder()
        .hello("a-hello")
        .folder(
            "b-hello",
            &[
                ("plugin.toml", manifest("a-hello", "lib.so").as_bytes()),
                ("lib.so", b""),
            ],
        )
        .start();
    corral.wait_ready("a-hello");
    let plugins = corral.list();
    let duplicate = plugins
        .iter()
        .find(|p| p.state == PluginState::Failed)
        .expect("duplicate listed");
    assert!(
        duplicate
            .error
            .as_deref()
            .unwrap_or("")
            .contains("already used by"),
        "{duplicate:?}"
    );
}
