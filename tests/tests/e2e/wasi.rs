//! WASI plugins (`wasi = true`): the `notes` example built for
//! wasm32-wasip1 sees the folders its manifest permits and nothing else,
//! and behaves like the same source built natively.

use corral::PluginState;
use corral_tests::{Corral, CorralBuilder, Workspace};
use std::fs;

const NOTES: &str = "[permissions]\nwrite = [\"data\"]\nread = [\"shelf\"]\n";

/// `notes` built natively as `native` and for WASI as `wasi`, each with a
/// `data` folder it may write and a `shelf` folder it may read.
fn notes() -> Corral {
    let builder = Corral::builder()
        .native_with("native", "notes", NOTES)
        .wasm_with("wasi", "notes", &format!("wasi = true\n{NOTES}"));
    for plugin in ["native", "wasi"] {
        folders(&builder, plugin);
    }
    builder.start()
}

fn folders(builder: &CorralBuilder, plugin: &str) {
    let folder = builder.plugins_dir().join(plugin);
    fs::create_dir_all(folder.join("data")).unwrap();
    // Writable by the worker's own uid (see README, [permissions]).
    corral_tests::open_to_all(&folder.join("data"));
    fs::create_dir_all(folder.join("shelf")).unwrap();
    fs::write(folder.join("shelf/book"), "on the shelf").unwrap();
}

#[test]
fn a_wasi_plugin_keeps_files_in_its_folder_like_the_native_build() {
    let corral = notes();
    corral.wait_ready("native");
    corral.wait_ready("wasi");
    let mut client = corral.client();
    for plugin in ["native", "wasi"] {
        assert_eq!(
            client.call(plugin, "put", b"todo\nwrite tests").unwrap(),
            b"stored todo",
            "{plugin}"
        );
        client.call(plugin, "put", b"done\nnothing yet").unwrap();
        assert_eq!(client.call(plugin, "get", b"todo").unwrap(), b"write tests");
        assert_eq!(client.call(plugin, "list", b"").unwrap(), b"done\ntodo");
        assert_eq!(
            client.call(plugin, "read", b"shelf/book").unwrap(),
            b"on the shelf",
            "{plugin} reads its read-only folder"
        );
        let on_disk = corral.dir().join("plugins").join(plugin).join("data/todo");
        assert_eq!(fs::read(on_disk).unwrap(), b"write tests", "{plugin}");
    }
    // The note survives the worker: it is a real file.
    let pid = corral.plugin("wasi").pid;
    corral_tests::send_signal(pid.unwrap(), libc::SIGKILL);
    corral.wait_replaced("wasi", pid);
    assert_eq!(client.call("wasi", "get", b"todo").unwrap(), b"write tests");
}

#[test]
fn a_wasi_plugin_sees_no_environment_and_no_other_path() {
    let corral = notes();
    corral.wait_ready("native");
    corral.wait_ready("wasi");
    let mut client = corral.client();
    assert_eq!(
        client.call("wasi", "env", b"").unwrap(),
        b"vars=0 args=wasi"
    );
    let outside = corral.dir().join("outside");
    fs::write(&outside, "secret").unwrap();
    let outside = outside.display().to_string();
    for plugin in ["native", "wasi"] {
        let plugin_dir = corral.dir().join("plugins").join(plugin);
        let manifest = plugin_dir.join("plugin.toml").display().to_string();
        let denied: [(&str, String); 7] = [
            ("read", "/etc/passwd".to_owned()),
            ("read", outside.clone()),
            ("read", "plugin.toml".to_owned()),
            ("read", manifest),
            ("read", "data/../plugin.toml".to_owned()),
            ("write", "shelf/book\nscribbled".to_owned()),
            ("write", format!("{outside}\nscribbled")),
        ];
        for (method, input) in denied {
            let error = client.call(plugin, method, input.as_bytes()).unwrap_err();
            assert_eq!(
                error.kind(),
                Some(corral::ErrorKind::Plugin),
                "{plugin} {method} {input}: {error}"
            );
        }
        assert_eq!(
            fs::read(plugin_dir.join("shelf/book")).unwrap(),
            b"on the shelf"
        );
        assert_eq!(
            client.call(plugin, "write", b"data/free\nform").unwrap(),
            b"wrote data/free"
        );
        assert_eq!(corral.plugin(plugin).restarts, 0, "{plugin}");
    }
    assert_eq!(fs::read(corral.dir().join("outside")).unwrap(), b"secret");
}

#[test]
fn a_module_that_imports_wasi_without_asking_is_refused_with_the_fix() {
    let corral = Corral::builder()
        .hello("neighbour")
        .wasm_with("notes", "notes", NOTES)
        .start();
    corral.wait_ready("neighbour");
    let neighbour = corral.keep_calling("neighbour");
    corral.wait_last_exit("notes", "the refusal is recorded", |exit| {
        exit.description.contains("wasi = true")
    });
    let notes = corral.plugin("notes");
    assert_ne!(notes.state, PluginState::Ready);
    assert!(
        notes
            .last_exit
            .as_ref()
            .is_some_and(|exit| exit.description.contains("wasi_snapshot_preview1")),
        "{notes:?}"
    );
    neighbour.finish();
}
