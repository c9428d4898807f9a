//! A plugin author's way through the README, command by command with the
//! real binary: `corral new` (C, which builds in a second), `make test`,
//! `tar`, `corral keygen`, `corral sign`, `corral install` into a folder
//! whose corral.toml requires signatures, `corral serve`, `corral call`.

use corral_tests::{Corral, corral_bin};
use std::path::Path;
use std::process::Command;

fn run(dir: &Path, program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "`{} {}` failed:\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn from_corral_new_to_a_signed_installed_plugin_answering_calls() {
    for tool in ["cc", "make", "tar"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIPPED: `{tool}` is not installed (apt-get install build-essential tar)");
            return;
        }
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let corral = corral_bin();
    let (make, tar) = (Path::new("make"), Path::new("tar"));
    run(w, &corral, &["new", "greeter", "--c"]);
    run(&w.join("greeter"), make, &["--quiet", "test"]);
    run(
        w,
        tar,
        &[
            "-C",
            "greeter",
            "-czf",
            "greeter-0.1.0.tar.gz",
            "plugin.toml",
            "libgreeter.so",
        ],
    );
    let said = run(w, &corral, &["keygen", "author"]);
    assert!(said.contains("public key"), "{said}");
    run(
        w,
        &corral,
        &["sign", "--key", "author.key", "greeter-0.1.0.tar.gz"],
    );
    run(
        w,
        &corral,
        &["verify", "greeter-0.1.0.tar.gz", "--trust", "author.pub"],
    );

    let builder = Corral::builder();
    let key = std::fs::read_to_string(w.join("author.pub")).unwrap();
    std::fs::write(
        w.join("corral.toml"),
        format!(
            "plugin_dirs = [\"{}\"]\nrequire_signature = true\ntrusted_keys = [\"{}\"]\n",
            builder.plugins_dir().display(),
            key.trim()
        ),
    )
    .unwrap();
    let said = run(
        w,
        &corral,
        &["install", "greeter-0.1.0.tar.gz", "--config", "corral.toml"],
    );
    assert!(said.contains("installed greeter 0.1.0"), "{said}");

    let serving = builder.start();
    serving.wait_ready("greeter");
    let reply = serving.cli(&["call", "greeter", "greet", "world"]);
    assert_eq!(reply.stdout, b"Hello, world!", "{reply:?}");
}
