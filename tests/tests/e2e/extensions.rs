//! Extension points (`provides`, `[[methods]]`) and plugin settings
//! (`[config]` defaults, corral.toml overrides), through the real
//! supervisor: found by the clients and `corral ps --provides`, refused
//! when undeclared, delivered to native and wasm plugins alike, shown by
//! `corral inspect`, and reloaded when an override changes.

use corral::{ErrorKind, PluginState};
use corral_tests::{Corral, Workspace};

fn exporter_manifest() -> String {
    // `[plugin]` is open in the harness's manifest: `provides` joins it.
    "provides = [\"exporter\", \"preview\"]\n\n\
     [[methods]]\nname = \"echo\"\ndescription = \"Returns its input\"\n\n\
     [[methods]]\nname = \"config\"\ndescription = \"Returns the effective settings\"\n"
        .to_owned()
}

#[test]
fn plugins_are_found_by_extension_point_and_undeclared_methods_are_refused() {
    let corral = Corral::builder()
        .native_with("pdf", "hello", &exporter_manifest())
        .native_with("spell", "hello", "provides = [\"spellcheck\"]\n")
        .hello("plain")
        .start();
    for name in ["pdf", "spell", "plain"] {
        corral.wait_ready(name);
    }
    let mut client = corral.client();
    let found: Vec<String> = client
        .providing("exporter")
        .expect("providing")
        .into_iter()
        .map(|plugin| plugin.name)
        .collect();
    assert_eq!(found, ["pdf"]);
    assert!(client.providing("nothing").expect("providing").is_empty());

    let ps = corral.cli(&["ps", "--provides", "spellcheck", "--json"]);
    assert!(ps.status.success(), "{ps:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&ps.stdout).expect("JSON");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "spell");
    assert_eq!(listed[0]["provides"], serde_json::json!(["spellcheck"]));
    let table = corral.cli(&["ps", "--provides", "exporter"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("pdf") && !table.contains("plain"), "{table}");

    // Declared methods work; others are refused before the worker.
    assert_eq!(client.call("pdf", "echo", b"hi").expect("echo"), b"hi");
    let refused = client.call("pdf", "sum", b"1 2").expect_err("undeclared");
    assert_eq!(refused.kind(), Some(ErrorKind::UnknownMethod), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("does not declare method `sum`") && message.contains("echo, config"),
        "{message}"
    );
    // Without a list, every method reaches the plugin.
    assert_eq!(client.call("plain", "sum", b"1 2").expect("sum"), b"3");
    assert_eq!(corral.plugin("pdf").state, PluginState::Ready);

    let inspect = corral.cli(&["inspect", "pdf"]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("provides     exporter, preview")
            && text.contains("echo         Returns its input"),
        "{text}"
    );
}

const SETTINGS: &str =
    "dpi = 300\nname = \"default\"\n\n[config.paper]\nsize = \"a4\"\nmargin = 10\n";

#[test]
fn config_defaults_and_overrides_reach_native_and_wasm_plugins() {
    let config = format!("[config]\n{SETTINGS}");
    let corral = Corral::builder()
        .native_with("native", "hello", &config)
        .wasm_with("wasm", "hello", &config)
        .hello("plain")
        .start_with_config(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
             [plugins.native.config]\ndpi = 600\n\n\
             [plugins.wasm.config]\npaper = { margin = 5 }\n",
        );
    for name in ["native", "wasm", "plain"] {
        corral.wait_ready(name);
    }
    let mut client = corral.client();
    let settings = |client: &mut corral::blocking::Client, plugin: &str| -> toml::Table {
        let text = client.call(plugin, "config", b"").expect("config");
        toml::from_str(std::str::from_utf8(&text).expect("UTF-8")).expect("TOML")
    };
    let native = settings(&mut client, "native");
    assert_eq!(native["dpi"].as_integer(), Some(600), "{native:?}");
    assert_eq!(native["name"].as_str(), Some("default"));
    assert_eq!(native["paper"]["margin"].as_integer(), Some(10));
    let wasm = settings(&mut client, "wasm");
    assert_eq!(wasm["dpi"].as_integer(), Some(300), "{wasm:?}");
    assert_eq!(wasm["paper"]["margin"].as_integer(), Some(5));
    assert_eq!(wasm["paper"]["size"].as_str(), Some("a4"));
    assert!(settings(&mut client, "plain").is_empty(), "no [config]");

    let details = client.inspect("native").expect("inspect");
    assert!(details.config.contains("dpi = 600"), "{}", details.config);
    let inspect = corral.cli(&["inspect", "wasm"]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("config (effective") && text.contains("margin = 5"),
        "{text}"
    );
}

#[test]
fn a_changed_override_reloads_the_plugin_without_failed_calls() {
    let corral = Corral::builder()
        .native_with("native", "hello", &format!("[config]\n{SETTINGS}"))
        .hello("plain")
        .start_with_config(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
             [plugins.native.config]\ndpi = 600\n",
        );
    let first = corral.wait_ready("native");
    corral.wait_ready("plain");
    let caller = corral.keep_calling("native");
    let neighbour = corral.keep_calling("plain");
    let file = corral.dir().join("corral.toml");
    std::fs::write(
        &file,
        "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
         [plugins.native.config]\ndpi = 1200\n",
    )
    .expect("rewrite corral.toml");
    corral.wait_until("the new generation serves", || {
        let info = corral.plugin("native");
        info.generation > first.generation && info.state == PluginState::Ready
    });
    let text = corral
        .client()
        .call("native", "config", b"")
        .expect("config");
    assert!(
        String::from_utf8_lossy(&text).contains("dpi = 1200"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    assert_eq!(
        corral.plugin("plain").generation,
        1,
        "a plugin without a changed override is not reloaded"
    );
    caller.finish();
    neighbour.finish();
}

#[test]
fn a_bad_override_keeps_only_that_plugin_from_starting_until_it_is_fixed() {
    let corral = Corral::builder()
        .native_with("native", "hello", &format!("[config]\n{SETTINGS}"))
        .hello("plain")
        .start_with_config(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
             [plugins.native.config]\ndip = 600\n",
        );
    corral.wait_ready("plain");
    let broken = corral.plugin("native");
    assert_eq!(broken.state, PluginState::Failed, "{broken:?}");
    let error = broken.error.expect("an error");
    assert!(
        error.contains("[plugins.native.config] dip")
            && error.contains("no such setting")
            && error.contains("dpi, name, paper"),
        "{error}"
    );
    assert_eq!(corral.client().call("plain", "echo", b"x").unwrap(), b"x");

    // Fixed, and told with SIGHUP (as systemd's ExecReload does).
    std::fs::write(
        corral.dir().join("corral.toml"),
        "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
         [plugins.native.config]\ndpi = 72\n",
    )
    .expect("rewrite corral.toml");
    corral.signal(libc::SIGHUP);
    // Listed all along: failed, then starting, then ready.
    corral.wait_until("native is ready", || {
        let native = corral.find("native").expect("native left corral ps");
        native.state == PluginState::Ready
    });
    let text = corral
        .client()
        .call("native", "config", b"")
        .expect("config");
    assert!(String::from_utf8_lossy(&text).contains("dpi = 72"));
}
