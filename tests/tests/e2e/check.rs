//! `corral check PATH`: a plugin folder validated without running it, by
//! the real binary.

use corral_tests::{Corral, Workspace, corral_bin};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(args: &[&Path]) -> Output {
    Command::new(corral_bin())
        .arg("check")
        .args(args)
        .output()
        .expect("run corral check")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The SHA-256 of `path` by coreutils, not by corral's code.
fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(output.status.success(), "sha256sum {}", path.display());
    stdout(&output)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_owned()
}

/// A copy of the hello plugin in a folder of its own (kept alive by the
/// returned builder's temporary folder).
fn hello() -> (corral_tests::CorralBuilder, PathBuf) {
    let setup = Corral::builder().hello("hello");
    let dir = setup.plugins_dir().join("hello");
    (setup, dir)
}

fn set_manifest_key(dir: &Path, line: &str) {
    let manifest = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let text = text.replace("api = 1\n", &format!("api = 1\n{line}\n"));
    fs::write(manifest, text).unwrap();
}

#[test]
fn check_accepts_the_hello_folder_and_prints_its_sha256() {
    let (_setup, dir) = hello();
    let expected = sha256sum(&dir.join("libhello.so"));
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.starts_with("hello 1.0.0 (native)\n"), "{text}");
    assert!(text.contains("  entry         libhello.so\n"), "{text}");
    assert!(
        text.contains(&format!("  sha256 = \"{expected}\"\n")),
        "{text}"
    );
    assert!(text.contains("  dependencies  (none)\n"), "{text}");
    assert!(text.ends_with("ok\n"), "{text}");

    // The printed line pasted into the manifest passes; so does the
    // manifest file given as PATH.
    set_manifest_key(&dir, &format!("sha256 = \"{expected}\""));
    let output = check(&[&dir.join("plugin.toml")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn check_refuses_a_sha256_mismatch_showing_both_hashes() {
    let (_setup, dir) = hello();
    let actual = sha256sum(&dir.join("libhello.so"));
    let wrong = "0123456789abcdef".repeat(4);
    set_manifest_key(&dir, &format!("sha256 = \"{}\"", wrong.to_uppercase()));
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "sha256 mismatch: plugin.toml says {wrong}, libhello.so is {actual}"
        )),
        "{text}"
    );
}

#[test]
fn check_refuses_a_missing_entry_naming_its_path() {
    let (_setup, dir) = hello();
    let entry = dir.join("libhello.so");
    fs::remove_file(&entry).unwrap();
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "problem: entry libhello.so: {}: No such file",
            entry.display()
        )),
        "{text}"
    );
}

#[test]
fn check_refuses_an_entry_that_is_not_its_kind() {
    let (_setup, dir) = hello();
    fs::write(dir.join("libhello.so"), "#!/bin/sh\necho hi\n").unwrap();
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("entry libhello.so: not an ELF shared library: starts with [23 21 2f 62]"),
        "{text}"
    );

    // A wasm manifest naming an ELF library.
    let wasm = dir.join("hello.wasm");
    fs::copy(corral_tests::artifact("libhello.so"), &wasm).unwrap();
    let manifest = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest)
        .unwrap()
        .replace("kind = \"native\"", "kind = \"wasm\"")
        .replace("libhello.so", "hello.wasm");
    fs::write(&manifest, text).unwrap();
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("entry hello.wasm: not a wasm module: an ELF file: set kind = \"native\""),
        "{text}"
    );
}

#[test]
fn check_refuses_a_bad_manifest_with_file_line_and_key() {
    let (_setup, dir) = hello();
    set_manifest_key(
        &dir,
        "restart = \"always\"\n[restart]\npolicy = \"sometimes\"",
    );
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("plugin.toml:7:1: unknown field `restart`"),
        "{text}"
    );

    let manifest = dir.join("plugin.toml");
    let fixed = fs::read_to_string(&manifest)
        .unwrap()
        .replace("restart = \"always\"\n", "\n");
    fs::write(&manifest, fixed).unwrap();
    let output = check(&[&dir]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "plugin.toml:9:10: [restart] policy = \"sometimes\": expected \"always\", \"on-failure\" or \"never\""
        ),
        "{text}"
    );
}

#[test]
fn check_json_has_the_verdict_the_problems_and_the_hash() {
    let (_setup, dir) = hello();
    let expected = sha256sum(&dir.join("libhello.so"));
    set_manifest_key(
        &dir,
        "requires = \">=0.1\"\n[dependencies]\nstorage = \"^1.2\"",
    );
    let output = check(&[&dir, Path::new("--json")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["name"], "hello");
    assert_eq!(report["version"], "1.0.0");
    assert_eq!(report["kind"], "native");
    assert_eq!(report["entry"], "libhello.so");
    assert_eq!(report["sha256"], expected.as_str());
    assert_eq!(report["manifest_sha256"], serde_json::Value::Null);
    assert_eq!(report["requires"], ">=0.1");
    assert_eq!(report["dependencies"]["storage"], "^1.2");
    assert_eq!(report["start"], "eager");

    fs::remove_file(dir.join("libhello.so")).unwrap();
    let output = check(&[&dir, Path::new("--json")]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], false, "{report}");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .starts_with("entry libhello.so: "),
        "{report}"
    );
    assert_eq!(report["sha256"], serde_json::Value::Null);
}

#[test]
fn check_accepts_the_wat_example_and_refuses_a_path_that_is_not_there() {
    let wat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-plugins/wat-echo");
    let output = check(&[&wat]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.starts_with("wat-echo "), "{text}");

    let output = check(&[Path::new("/nonexistent/corral-plugin")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/corral-plugin: No such file"),
        "{stderr}"
    );
}
