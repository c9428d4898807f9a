//! Plugins in TypeScript. On the embedded JavaScript engine (`kind =
//! "js"`): `hello-ts` answers as its Rust twin, a runaway loop is stopped
//! by the deadline and the worker lives, host services within the
//! permissions, storage paged and written in all-or-nothing batches, the
//! whole sandbox, memory limits, hot reload, and clear errors for broken
//! modules. In AssemblyScript (wasm): `as-hello` answers as the same twin
//! and uses storage (paged and batched too), events and settings.

use corral::{ClientError, ErrorKind, PluginState, SpawnMode};
use corral_tests::{Corral, Workspace};
use std::fs;
use std::time::Duration;

/// What a call answered: its bytes, or its error's kind and message.
fn answer(corral: &Corral, plugin: &str, method: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    corral
        .client()
        .call(plugin, method, input)
        .map_err(|error| match error {
            ClientError::Remote(error) => format!("{}: {}", error.kind, error.message),
            other => panic!("{plugin}.{method}: {other}"),
        })
}

/// Calls `twin` and the Rust `hello` with the same inputs: the same
/// replies, the same errors.
fn assert_twins(corral: &Corral, twin: &str) {
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let cases: &[(&str, &[u8])] = &[
        ("echo", b"bytes \x00\xff"),
        ("echo", &large),
        ("echo", b""),
        ("upper", "straße and ß".as_bytes()),
        ("upper", b"\xff\xfe"),
        ("sum", b"1 2 -3 40"),
        ("sum", b"  +7\t8\n"),
        ("sum", b""),
        ("sum", b"1 x"),
        ("sum", b"9223372036854775807 1"),
        ("sum", b"-9223372036854775808"),
        ("sleep", b"5"),
        ("sleep", b"soon"),
        ("no-such-method", b""),
        ("init", b""),
    ];
    for (method, input) in cases {
        let rust = answer(corral, "hello", method, input);
        let typescript = answer(corral, twin, method, input);
        assert_eq!(
            typescript,
            rust,
            "{twin}: {method}({:?})",
            String::from_utf8_lossy(&input[..input.len().min(40)])
        );
    }
}

#[test]
fn the_typescript_hello_answers_as_its_rust_twin() {
    let corral = Corral::builder()
        .hello("hello")
        .js_with("hello-ts", "hello-ts", "")
        .start();
    corral.wait_ready("hello");
    let info = corral.wait_ready("hello-ts");
    assert_eq!(info.spawn_mode, Some(SpawnMode::Zygote));
    assert_twins(&corral, "hello-ts");
    // Counted like any plugin's calls, failed ones by kind.
    let metrics = corral.plugin("hello-ts");
    assert!(metrics.calls >= 15, "{metrics:?}");
    assert!(
        metrics
            .errors
            .iter()
            .any(|(kind, n)| kind == "plugin" && *n >= 4),
        "{:?}",
        metrics.errors
    );
    // The npm library `ms` reads durations the Rust twin does not.
    assert_eq!(
        answer(&corral, "hello-ts", "sleep", b"0.01s"),
        Ok(b"slept 10 ms".to_vec())
    );
}

#[test]
fn a_runaway_loop_is_stopped_by_the_deadline_and_the_worker_lives() {
    let corral = Corral::builder()
        .js_with("hello-ts", "hello-ts", "[limits]\ncall_timeout_ms = 600\n")
        .start();
    let before = corral.wait_ready("hello-ts");
    let error = corral.client().call("hello-ts", "spin", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    assert!(
        error
            .to_string()
            .contains("ran past its deadline (600 ms) and was stopped"),
        "{error}"
    );
    // The same worker answers the next call, with its module loaded afresh.
    assert_eq!(
        answer(&corral, "hello-ts", "upper", b"alive"),
        Ok(b"ALIVE".to_vec())
    );
    let after = corral.plugin("hello-ts");
    assert_eq!(after.pid, before.pid);
    assert_eq!(after.restarts, 0);
    assert_eq!(after.state, PluginState::Ready);
}

#[test]
fn a_killed_js_worker_is_replaced_and_nothing_else_is_lost() {
    let corral = Corral::builder()
        .hello("hello")
        .js_with("hello-ts", "hello-ts", "")
        .start();
    corral.wait_ready("hello");
    let before = corral.wait_ready("hello-ts");
    let neighbour = corral.keep_calling("hello");
    corral_tests::send_signal(before.pid.unwrap(), libc::SIGKILL);
    let after = corral.wait_replaced("hello-ts", before.pid);
    assert_eq!(after.restarts, 1);
    assert_eq!(after.last_exit.unwrap().signal, Some(9));
    assert_eq!(
        answer(&corral, "hello-ts", "upper", b"back"),
        Ok(b"BACK".to_vec())
    );
    neighbour.finish();
    assert_eq!(corral.plugin("hello").restarts, 0);
}

/// A plugin in plain JavaScript using what a TypeScript author reaches
/// for: classes, closures, async/await, JSON, and every host service.
const SERVICES: &str = r#"
import { CorralError, call, config, json, kv, log, publish, text, toJson } from "corral";

class Journal {
  #events = [];
  add(topic, payload) { this.#events.push(`${topic}=${text(payload)}`); }
  get all() { return this.#events.join(","); }
}
const journal = new Journal();
let greeting;

export async function init() {
  greeting = config().greeting;
  log.info("services ready", { greeting });
}

export async function store(input) {
  const { key, value } = json(input);
  await kv.put(key, value);
  return toJson({ stored: await kv.getText(key), keys: await kv.list("k"), missing: await kv.get("nothing") });
}

export async function page(input) {
  const { prefix, start, limit } = json(input);
  return toJson(await kv.listPage(prefix, { start, limit }));
}

// Writes as JSON: [{ "put": KEY, "value": TEXT, "repeat": N }, { "delete": KEY }].
export async function batch(input) {
  const writes = json(input).map((write) =>
    write.repeat === undefined ? write : { put: write.put, value: write.value.repeat(write.repeat) });
  await kv.batch(writes);
  return "ok";
}

export async function remove(input) {
  return String(await kv.delete(text(input)));
}

export async function shout(input) {
  const upper = await call("hello", "upper", input);
  return `${greeting}, ${text(upper)}!`;
}

export async function announce(input) {
  await publish("news.js", input);
  return "sent";
}

export function on_event(topic, payload) { journal.add(topic, payload); }
export const events = () => journal.all;

export async function denied() {
  try {
    await call("hello-ts", "upper", "x");
  } catch (error) {
    return `${error instanceof CorralError} ${error.kind}`;
  }
}

export async function escapes() {
  await call("hello-ts", "upper", "x");
}

export function refuse() { throw new CorralError("unknown_method", "not here"); }
"#;

#[test]
fn js_plugins_get_host_services_within_their_permissions() {
    let manifest = r#"[plugin]
name = "services"
version = "1.0.0"
kind = "js"
entry = "plugin.js"
api = 1

[dependencies]
hello = "^1"

[permissions]
host = ["kv", "call:hello", "publish"]

[events]
subscribe = ["news.*"]

[config]
greeting = "Hi"
"#;
    let corral = Corral::builder()
        .hello("hello")
        .folder(
            "services",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("plugin.js", SERVICES.as_bytes()),
            ],
        )
        .start_with_config(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n[plugins.services.config]\ngreeting = \"Howdy\"\n",
        );
    corral.wait_ready("services");
    let stored = answer(
        &corral,
        "services",
        "store",
        br#"{"key": "k1", "value": "v1"}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(stored).unwrap(),
        r#"{"stored":"v1","keys":["k1"],"missing":null}"#
    );
    assert_eq!(
        answer(&corral, "services", "remove", b"k1"),
        Ok(b"true".to_vec())
    );
    assert_eq!(
        answer(&corral, "services", "remove", b"k1"),
        Ok(b"false".to_vec())
    );
    // corral.toml's setting wins over the manifest's.
    assert_eq!(
        answer(&corral, "services", "shout", b"corral"),
        Ok(b"Howdy, CORRAL!".to_vec())
    );
    // Its publication reaches a host app; a host app's reaches its
    // on_event (a plugin is not sent its own).
    let mut news = corral.client().subscribe(&["news.*"]).unwrap();
    assert_eq!(
        answer(&corral, "services", "announce", b"one"),
        Ok(b"sent".to_vec())
    );
    let message = news.next().unwrap().unwrap();
    assert_eq!(
        (
            message.topic.as_str(),
            message.from.as_str(),
            message.payload.as_slice()
        ),
        ("news.js", "services", b"one".as_slice())
    );
    corral.client().publish("news.host", b"two").unwrap();
    corral.wait_until("the host's publication reached on_event", || {
        answer(&corral, "services", "events", b"") == Ok(b"news.host=two".to_vec())
    });
    // Outside its permissions: a CorralError the plugin can catch, and one
    // that escapes answers as a Rust plugin's `?` does.
    assert_eq!(
        answer(&corral, "services", "denied", b""),
        Ok(b"true permission_denied".to_vec())
    );
    let escaped = answer(&corral, "services", "escapes", b"").unwrap_err();
    assert!(
        escaped.starts_with("plugin: permission_denied: "),
        "{escaped}"
    );
    assert_eq!(
        answer(&corral, "services", "refuse", b""),
        Err("unknown_method: not here".into())
    );
    assert!(
        corral
            .log()
            .contains("services ready {\"greeting\":\"Howdy\"}")
    );
}

#[test]
fn js_plugins_page_through_keys_and_write_batches_all_or_nothing() {
    let manifest = "[plugin]\nname = \"services\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"plugin.js\"\napi = 1\n\n[permissions]\nhost = [\"kv\"]\n\n[limits]\nstorage_mb = 1\n";
    let corral = Corral::builder()
        .folder(
            "services",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("plugin.js", SERVICES.as_bytes()),
            ],
        )
        .start();
    let before = corral.wait_ready("services");
    let batch = |writes: serde_json::Value| {
        answer(&corral, "services", "batch", writes.to_string().as_bytes())
    };
    let page = |prefix: &str, start: &str, limit: u32| {
        let input = serde_json::json!({ "prefix": prefix, "start": start, "limit": limit });
        answer(&corral, "services", "page", input.to_string().as_bytes())
            .map(|reply| serde_json::from_slice::<serde_json::Value>(&reply).unwrap())
    };
    let ok = || Ok(b"ok".to_vec());
    // Deleting a key that is not there is no error.
    let writes = serde_json::json!([
        { "put": "item/3", "value": "3" },
        { "put": "item/1", "value": "1" },
        { "put": "other/1", "value": "o" },
        { "put": "item/5", "value": "5" },
        { "delete": "never-stored" },
        { "put": "item/2", "value": "2" },
        { "put": "item/4", "value": "4" },
        { "put": "u/z", "value": "" },
        { "put": "u/\u{ff21}", "value": "" },
        { "put": "u/\u{1f600}", "value": "" },
    ]);
    assert_eq!(batch(writes), ok());
    // Two at a time, each page starting at the one before's `next`.
    let mut pages = Vec::new();
    let mut start = String::new();
    loop {
        let reply = page("item/", &start, 2).unwrap();
        pages.push(reply.clone());
        match reply["next"].as_str() {
            Some(next) => start = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            serde_json::json!({ "keys": ["item/1", "item/2"], "next": "item/3" }),
            serde_json::json!({ "keys": ["item/3", "item/4"], "next": "item/5" }),
            serde_json::json!({ "keys": ["item/5"], "next": null }),
        ]
    );
    // The start is inclusive and need not be a stored key; the prefix
    // filters; keys sort by their UTF-8 bytes (UTF-16 order would put
    // U+1F600 before U+FF21).
    assert_eq!(
        page("item/", "item/25", 100),
        Ok(serde_json::json!({ "keys": ["item/3", "item/4", "item/5"], "next": null }))
    );
    assert_eq!(
        page("other/", "", 100),
        Ok(serde_json::json!({ "keys": ["other/1"], "next": null }))
    );
    assert_eq!(
        page("none/", "", 100),
        Ok(serde_json::json!({ "keys": [], "next": null }))
    );
    assert_eq!(
        page("u/", "", 100),
        Ok(serde_json::json!({ "keys": ["u/z", "u/\u{ff21}", "u/\u{1f600}"], "next": null }))
    );
    assert_eq!(
        page("", "", 100).unwrap()["keys"].as_array().unwrap().len(),
        9
    );
    assert_eq!(
        page("item/", "", 0),
        Err("plugin: bad_request: a page holds at least one key".into())
    );
    // A bad key in the middle: nothing of the batch is applied, neither the
    // put before it nor the delete after it.
    let bad = batch(serde_json::json!([
        { "put": "item/6", "value": "6" },
        { "put": "bad\nkey", "value": "x" },
        { "delete": "item/1" },
    ]))
    .unwrap_err();
    assert_eq!(
        bad,
        "plugin: bad_request: bad key \"bad\\nkey\": a key has no control characters (newlines, tabs, ...)"
    );
    let items = serde_json::json!({
        "keys": ["item/1", "item/2", "item/3", "item/4", "item/5"],
        "next": null,
    });
    assert_eq!(page("item/", "", 100), Ok(items.clone()));
    // Past the storage quota (1 MiB): nothing applied either.
    let over = batch(serde_json::json!([
        { "put": "item/6", "value": "6" },
        { "delete": "item/1" },
        { "put": "big", "value": "x", "repeat": 1_100_000 },
    ]))
    .unwrap_err();
    assert!(
        over.starts_with("plugin: limit_exceeded: storage quota exceeded: "),
        "{over}"
    );
    assert_eq!(page("item/", "", 100), Ok(items));
    assert_eq!(page("big", "", 100).unwrap()["keys"], serde_json::json!([]));
    // A good batch after the failed ones: deletes and puts, in order.
    assert_eq!(
        batch(serde_json::json!([
            { "delete": "item/1" },
            { "put": "item/6", "value": "6" },
            { "put": "item/1", "value": "again" },
            { "delete": "item/2" },
        ])),
        ok()
    );
    assert_eq!(
        page("item/", "", 100),
        Ok(serde_json::json!({
            "keys": ["item/1", "item/3", "item/4", "item/5", "item/6"],
            "next": null,
        }))
    );
    // The same worker served it all.
    let after = corral.plugin("services");
    assert_eq!(after.pid, before.pid);
    assert_eq!(after.restarts, 0);
    assert_eq!(after.state, PluginState::Ready);
}

#[test]
fn a_js_worker_has_every_layer_and_its_memory_limit() {
    let hog = r#"
export function hog() { const kept = []; for (;;) kept.push(new Array(100000).fill(7)); }
export function small() { return "fine"; }
"#;
    let manifest = "[plugin]\nname = \"hog\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"plugin.mjs\"\napi = 1\n\n[limits]\nmemory_mb = 32\n";
    let corral = Corral::builder()
        .folder(
            "hog",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("plugin.mjs", hog.as_bytes()),
            ],
        )
        .arg("--strict")
        .start();
    let before = corral.wait_ready("hog");
    let pid = before.pid.unwrap();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe.file_name().unwrap(),
        "corral-worker",
        "{}",
        exe.display()
    );
    let details = corral.client().inspect("hog").unwrap();
    assert_eq!(details.kind, corral::PluginKind::Js);
    assert!(
        details.layers.iter().all(|layer| layer.active),
        "{:#?}",
        details.layers
    );
    let error = corral.client().call("hog", "hog", b"").unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::Plugin), "{error}");
    assert!(error.to_string().contains("out of memory"), "{error}");
    assert_eq!(answer(&corral, "hog", "small", b""), Ok(b"fine".to_vec()));
    assert_eq!(corral.plugin("hog").pid, before.pid);
}

#[test]
fn a_changed_bundle_is_hot_reloaded() {
    let version = |reply: &str| format!("export const which = () => \"{reply}\";\n");
    let manifest = "[plugin]\nname = \"live\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"plugin.js\"\napi = 1\n";
    let corral = Corral::builder()
        .folder(
            "live",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("plugin.js", version("first").as_bytes()),
            ],
        )
        .start();
    let first = corral.wait_ready("live");
    assert_eq!(answer(&corral, "live", "which", b""), Ok(b"first".to_vec()));
    let dir = corral.dir().join("plugins/live");
    fs::write(dir.join(".plugin.js.new"), version("second")).unwrap();
    fs::rename(dir.join(".plugin.js.new"), dir.join("plugin.js")).unwrap();
    corral.wait_until("the new bundle answers", || {
        answer(&corral, "live", "which", b"") == Ok(b"second".to_vec())
    });
    let second = corral.plugin("live");
    assert_eq!(second.generation, first.generation + 1);
}

#[test]
fn broken_js_modules_fail_with_a_clear_error_and_nothing_else_is_lost() {
    let manifest = |name: &str, entry: &str| {
        format!(
            "[plugin]\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"{entry}\"\napi = 1\n"
        )
    };
    let corral = Corral::builder()
        .hello("hello")
        .folder(
            "syntax",
            &[
                ("plugin.toml", manifest("syntax", "plugin.js").as_bytes()),
                ("plugin.js", b"export function broken( {"),
            ],
        )
        .folder(
            "throws",
            &[
                ("plugin.toml", manifest("throws", "plugin.js").as_bytes()),
                (
                    "plugin.js",
                    b"export function init() { throw new Error(\"no database\"); }",
                ),
            ],
        )
        .folder(
            "imports",
            &[
                ("plugin.toml", manifest("imports", "plugin.js").as_bytes()),
                (
                    "plugin.js",
                    b"import { readFileSync } from \"fs\";\nexport const x = readFileSync;",
                ),
            ],
        )
        .folder(
            "library",
            &[
                ("plugin.toml", manifest("library", "libhello.so").as_bytes()),
                ("libhello.so", b"\x7fELF"),
            ],
        )
        .start();
    corral.wait_ready("hello");
    let neighbour = corral.keep_calling("hello");
    for (name, expected) in [
        (
            "syntax",
            "cannot parse the module: SyntaxError: invalid property name at plugin.js:1",
        ),
        (
            "throws",
            "init failed: Error: no database at init (plugin.js:1",
        ),
        ("imports", "a plugin imports only `corral`"),
    ] {
        corral.wait_last_exit(name, expected, |exit| exit.description.contains(expected));
        assert_ne!(corral.plugin(name).state, PluginState::Ready, "{name}");
    }
    let library = corral.plugin("library");
    assert_eq!(library.state, PluginState::Failed);
    assert!(
        library
            .error
            .as_deref()
            .is_some_and(|error| error.contains("kind = \"js\" needs a JavaScript module")),
        "{library:?}"
    );
    neighbour.finish();
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(corral.plugin("hello").restarts, 0);
}

#[test]
fn the_assemblyscript_hello_answers_as_its_rust_twin() {
    let corral = Corral::builder()
        .hello("hello")
        .example("as-hello", &["build/as-hello.wasm"])
        .start();
    corral.wait_ready("hello");
    corral.wait_ready("as-hello");
    assert_twins(&corral, "as-hello");
}

#[test]
fn assemblyscript_plugins_use_storage_events_and_settings() {
    let corral = Corral::builder()
        .example("as-hello", &["build/as-hello.wasm"])
        .start_with_config(
            "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n[plugins.as-hello.config]\ngreeting = \"Howdy\"\n",
        );
    let before = corral.wait_ready("as-hello");
    let call = |method: &str, input: &[u8]| answer(&corral, "as-hello", method, input);
    assert_eq!(call("greet", b"corral"), Ok(b"Howdy, corral!".to_vec()));
    assert_eq!(
        call("remember", b"colour=teal"),
        Ok(b"stored colour".to_vec())
    );
    assert_eq!(call("recall", b"colour"), Ok(b"teal".to_vec()));
    assert_eq!(call("keys", b"col"), Ok(b"colour".to_vec()));
    assert_eq!(call("forget", b"colour"), Ok(b"deleted".to_vec()));
    assert_eq!(call("forget", b"colour"), Ok(b"absent".to_vec()));
    assert_eq!(
        call("recall", b"colour"),
        Err("plugin: recall: nothing stored under `colour`".into())
    );
    let mut news = corral.client().subscribe(&["as-hello.*"]).unwrap();
    assert_eq!(
        call("publish", b"as-hello.out hi"),
        Ok(b"published".to_vec())
    );
    let message = news.next().unwrap().unwrap();
    assert_eq!(
        (message.topic.as_str(), message.payload.as_slice()),
        ("as-hello.out", b"hi".as_slice())
    );
    corral.client().publish("ticks", b"3").unwrap();
    corral.wait_until("the tick reached onEvent", || {
        call("last", b"") == Ok(b"ticks 3".to_vec())
    });
    // A trap is a `plugin` error; the worker lives, with a fresh instance.
    let trap = call("crash", b"").unwrap_err();
    assert!(trap.starts_with("plugin: wasm trap in `crash`"), "{trap}");
    assert_eq!(call("upper", b"after"), Ok(b"AFTER".to_vec()));
    assert_eq!(corral.plugin("as-hello").pid, before.pid);
}

#[test]
fn assemblyscript_plugins_page_through_keys_and_write_batches_all_or_nothing() {
    let corral = Corral::builder()
        .example("as-hello", &["build/as-hello.wasm"])
        .start();
    let before = corral.wait_ready("as-hello");
    let call = |method: &str, input: &str| {
        answer(&corral, "as-hello", method, input.as_bytes())
            .map(|reply| String::from_utf8(reply).unwrap())
    };
    assert_eq!(
        call(
            "batch",
            "put item/3 3\nput item/1 1\nput other/1 o\ndelete never-stored\nput item/5 5\nput item/2 2\nput item/4 4\nput u/z z\nput u/\u{ff21} a\nput u/\u{1f600} s"
        ),
        Ok("applied 10 writes".into())
    );
    // Two at a time, each page starting at the one before's next; the
    // reply is the next start (empty on the last page), then the keys.
    let mut pages = Vec::new();
    let mut start = String::new();
    loop {
        let reply = call("page", &format!("item/\n{start}\n2")).unwrap();
        let (next, keys) = reply.split_once('\n').unwrap();
        pages.push(keys.to_owned());
        if next.is_empty() {
            break;
        }
        start = next.to_owned();
    }
    assert_eq!(pages, ["item/1\nitem/2", "item/3\nitem/4", "item/5"]);
    // The start is inclusive and need not be a stored key; the prefix
    // filters; keys sort by their UTF-8 bytes.
    assert_eq!(
        call("page", "item/\nitem/25\n100"),
        Ok("\nitem/3\nitem/4\nitem/5".into())
    );
    assert_eq!(call("page", "other/\n\n100"), Ok("\nother/1".into()));
    assert_eq!(call("page", "none/\n\n100"), Ok(String::new()));
    assert_eq!(
        call("page", "u/\n\n2"),
        Ok("u/\u{1f600}\nu/z\nu/\u{ff21}".into())
    );
    assert_eq!(
        call("page", "item/\n\n0"),
        Err("plugin: bad_request: a page holds at least one key".into())
    );
    // A bad key in the middle: neither the put before it nor the delete
    // after it is applied.
    assert_eq!(
        call("batch", "put item/6 6\nput bad\tkey x\ndelete item/1"),
        Err(
            "plugin: bad_request: bad key \"bad\\tkey\": a key has no control characters (newlines, tabs, ...)"
                .into()
        )
    );
    let items = "\nitem/1\nitem/2\nitem/3\nitem/4\nitem/5";
    assert_eq!(call("page", "item/\n\n100"), Ok(items.into()));
    // Past the storage quota (`storage_mb = 1`): nothing applied either.
    let over = call(
        "batch",
        &format!(
            "put item/6 6\ndelete item/1\nput big {}",
            "x".repeat(1_100_000)
        ),
    )
    .unwrap_err();
    assert!(
        over.starts_with("plugin: limit_exceeded: storage quota exceeded: "),
        "{over}"
    );
    assert_eq!(call("page", "item/\n\n100"), Ok(items.into()));
    assert_eq!(
        call("recall", "big"),
        Err("plugin: recall: nothing stored under `big`".into())
    );
    // A good batch after the failed ones: applied in order.
    assert_eq!(
        call(
            "batch",
            "delete item/1\nput item/6 six\nput item/1 again\ndelete item/2"
        ),
        Ok("applied 4 writes".into())
    );
    assert_eq!(
        call("page", "item/\n\n100"),
        Ok("\nitem/1\nitem/3\nitem/4\nitem/5\nitem/6".into())
    );
    assert_eq!(call("recall", "item/1"), Ok("again".into()));
    assert_eq!(call("recall", "item/6"), Ok("six".into()));
    let after = corral.plugin("as-hello");
    assert_eq!(after.pid, before.pid);
    assert_eq!(after.restarts, 0);
    assert_eq!(after.state, PluginState::Ready);
}

#[test]
fn a_js_health_export_that_says_false_makes_it_unhealthy() {
    let source = r#"
let sick = false;
export function fall_ill() { sick = true; return "sick"; }
export async function health() { return !sick; }
"#;
    let manifest = "[plugin]\nname = \"sick\"\nversion = \"1.0.0\"\nkind = \"js\"\nentry = \"plugin.js\"\napi = 1\n\n[health]\ninterval_ms = 100\nfailures = 100\n";
    let corral = Corral::builder()
        .folder(
            "sick",
            &[
                ("plugin.toml", manifest.as_bytes()),
                ("plugin.js", source.as_bytes()),
            ],
        )
        .start();
    corral.wait_ready("sick");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(corral.plugin("sick").state, PluginState::Ready);
    assert_eq!(
        answer(&corral, "sick", "fall_ill", b""),
        Ok(b"sick".to_vec())
    );
    corral.wait_until("sick is unhealthy", || {
        corral.plugin("sick").state == PluginState::Unhealthy
    });
}
