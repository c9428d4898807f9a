//! `corral new`: each template, made by the real binary into a plugin
//! folder, builds and passes its own test with the tools a plugin author
//! has (cargo, the wasm build script, make, npm), then is served by the real
//! supervisor and called, its `[config]` overridden from corral.toml.

use corral::PluginState;
use corral_tests::{Corral, CorralBuilder, cargo_target_dir, corral_bin, target_dir};
use std::path::Path;
use std::process::Command;

/// Runs `program args` in `dir`; panics with its output unless it
/// succeeds.
fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    // At the lowest priority: these builds take both CPUs for minutes,
    // and the suite's timing tests run beside them.
    let mut command = Command::new("nice");
    command
        .args(["-n", "19", program])
        .args(args)
        .current_dir(dir)
        // The plugin's own target folder, not this workspace's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "`{program} {}` in {} failed:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `corral new NAME FLAGS` into the builder's plugins folder.
fn new_plugin(builder: &CorralBuilder, name: &str, flags: &[&str]) -> std::path::PathBuf {
    let dir = builder.plugins_dir().join(name);
    std::fs::create_dir_all(builder.plugins_dir()).expect("plugins folder");
    let output = Command::new(corral_bin())
        .arg("new")
        .arg(name)
        .args(flags)
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("corral new");
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!("corral call {name} greet world")),
        "{said}"
    );
    dir
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Serves the builder's plugins with `greeting` overridden for `name`;
/// checks both plugins answer `greet` with their greetings.
fn serve_and_greet(builder: CorralBuilder, plain: &str, overridden: &str) {
    let corral = builder.start_with_config(&format!(
        "plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n\n\
         [plugins.{overridden}.config]\ngreeting = \"Hi\"\n"
    ));
    for name in [plain, overridden] {
        assert_eq!(corral.wait_ready(name).state, PluginState::Ready);
    }
    let mut client = corral.client();
    assert_eq!(
        client.call(plain, "greet", b"world").expect("greet"),
        b"Hello, world!"
    );
    assert_eq!(
        client.call(overridden, "greet", b"world").expect("greet"),
        b"Hi, world!"
    );
    let error = client.call(plain, "nope", b"").expect_err("undeclared");
    assert_eq!(
        error.kind(),
        Some(corral::ErrorKind::UnknownMethod),
        "{error}"
    );
}

#[test]
fn a_new_rust_plugin_native_and_wasm_builds_passes_its_test_and_serves() {
    let builder = Corral::builder();
    // Tests build in one target folder for both plugins (their
    // dependencies are the same); the release build is the plugin's own,
    // where its manifest expects the library.
    let tests = [("CARGO_TARGET_DIR", &*target_dir().join("scaffold"))];
    let native = new_plugin(&builder, "greeter-rs", &[]);
    run(&native, &cargo(), &["test", "--quiet"], &tests);
    run(&native, &cargo(), &["build", "--release", "--quiet"], &[]);

    let wasm = new_plugin(&builder, "greeter-wasm", &["--wasm"]);
    // The same source: its test runs natively. Building shares the target
    // folder of this workspace's wasm examples, whose std for wasm32 is
    // built already (Debian's toolchain builds it from source).
    run(&wasm, &cargo(), &["test", "--quiet"], &tests);
    run(
        &wasm,
        "./build.sh",
        &[],
        &[("CARGO_TARGET_DIR", &cargo_target_dir().join("wasm"))],
    );
    assert!(wasm.join("greeter_wasm.wasm").is_file());
    serve_and_greet(builder, "greeter-rs", "greeter-wasm");
}

#[test]
fn a_new_c_plugin_builds_passes_its_test_and_serves() {
    for tool in ["cc", "make"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIPPED: `{tool}` is not installed (apt-get install build-essential)");
            return;
        }
    }
    let builder = Corral::builder();
    let c = new_plugin(&builder, "greeter-c", &["--c"]);
    run(&c, "make", &["--quiet", "test"], &[]);
    let also = new_plugin(&builder, "greeter-c2", &["--c"]);
    run(&also, "make", &["--quiet"], &[]);
    serve_and_greet(builder, "greeter-c", "greeter-c2");
}

#[test]
fn a_new_typescript_and_assemblyscript_plugin_pass_their_tests_and_serve() {
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!("SKIPPED: npm is not installed (tests/node.sh installs it)");
        return;
    }
    let builder = Corral::builder();
    let install = ["install", "--no-audit", "--no-fund", "--loglevel=error"];
    // `npm test` builds the plugin, then runs its test on the test kit.
    let ts = new_plugin(&builder, "greeter-ts", &["--ts"]);
    run(&ts, "npm", &install, &[]);
    run(&ts, "npm", &["test", "--silent"], &[]);
    assert!(ts.join("dist/plugin.js").is_file());
    let assembly = new_plugin(&builder, "greeter-as", &["--as"]);
    run(&assembly, "npm", &install, &[]);
    run(&assembly, "npm", &["test", "--silent"], &[]);
    assert!(assembly.join("build/greeter-as.wasm").is_file());
    serve_and_greet(builder, "greeter-ts", "greeter-as");
}
