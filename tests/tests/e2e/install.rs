//! `corral keygen`, `sign`, `verify`, `install` and `rollback` through
//! the real binary, against a serving supervisor: signed versions switch
//! by hot reload both ways without a failed call; tampered, truncated,
//! unsigned, untrusted and escaping archives are refused saying which
//! check failed, and leave the installed version as it was.

use corral::PluginState;
use corral_tests::{Corral, artifact, corral_bin};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(corral_bin())
        .args(args)
        .output()
        .expect("run corral")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The error a refused command printed (exit code 1).
fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `hello` at `version`, packed as `NAME.tar.gz` in `dir`.
fn archive(dir: &Path, name: &str, version: &str) -> PathBuf {
    let folder = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(artifact("libhello.so"), folder.join("libhello.so")).unwrap();
    std::fs::write(
        folder.join("plugin.toml"),
        format!(
            "[plugin]\nname = \"hello\"\nversion = \"{version}\"\nkind = \"native\"\nentry = \"libhello.so\"\napi = 1\n"
        ),
    )
    .unwrap();
    let path = dir.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("-C")
        .arg(&folder)
        .args(["-czf"])
        .arg(&path)
        .args(["plugin.toml", "libhello.so"])
        .status()
        .expect("tar");
    assert!(status.success());
    path
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn signed_installs_switch_versions_without_failed_calls_and_bad_ones_change_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let public = ok(&run(&["keygen", s(&w.join("author"))]));
    let key = std::fs::read_to_string(w.join("author.pub")).unwrap();
    let key = key.trim();
    assert!(public.contains(key), "{public}");
    ok(&run(&["keygen", s(&w.join("stranger"))]));
    let v1 = archive(w, "v1", "1.0.0");
    let v2 = archive(w, "v2", "2.0.0");
    for archive in [&v1, &v2] {
        ok(&run(&[
            "sign",
            "--key",
            s(&w.join("author.key")),
            s(archive),
        ]));
    }
    let verified = ok(&run(&[
        "verify",
        s(&v1),
        "--trust",
        s(&w.join("author.pub")),
    ]));
    assert!(verified.contains("a trusted key"), "{verified}");

    let builder = Corral::builder();
    let plugins = builder.plugins_dir();
    let config = w.join("corral.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dirs = [\"{}\"]\nrequire_signature = true\ntrusted_keys = [\"{key}\"]\n",
            plugins.display()
        ),
    )
    .unwrap();
    let install = |archive: &Path| run(&["install", s(archive), "--config", s(&config)]);
    let said = ok(&install(&v1));
    assert!(said.contains("installed hello 1.0.0"), "{said}");
    assert!(said.contains(&format!("signed by {key}")), "{said}");

    let corral =
        builder.start_with_config("plugin_dirs = [\"plugins\"]\nsocket = \"corral.sock\"\n");
    let first = corral.wait_ready("hello");
    assert_eq!(first.version.as_deref(), Some("1.0.0"));
    let caller = corral.keep_calling("hello");

    // Refused, each saying which check failed; nothing changes.
    let mut bytes = std::fs::read(&v2).unwrap();
    let tampered = w.join("tampered.tar.gz");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&tampered, &bytes).unwrap();
    std::fs::copy(w.join("v2.tar.gz.sig"), w.join("tampered.tar.gz.sig")).unwrap();
    let truncated = w.join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..middle]).unwrap();
    std::fs::copy(w.join("v2.tar.gz.sig"), w.join("truncated.tar.gz.sig")).unwrap();
    let unsigned = archive(w, "unsigned", "2.0.0");
    let untrusted = archive(w, "untrusted", "2.0.0");
    ok(&run(&[
        "sign",
        "--key",
        s(&w.join("stranger.key")),
        s(&untrusted),
    ]));
    for (archive, expected) in [
        (&tampered, "sha256 check failed"),
        (&truncated, "sha256 check failed"),
        (&unsigned, "no signature"),
        (&untrusted, "not in trusted_keys"),
    ] {
        let error = refused(&install(archive));
        assert!(error.contains(expected), "{}: {error}", archive.display());
    }
    let folder = refused(&install(&w.join("v1-src")));
    assert!(folder.contains("a folder cannot be signed"), "{folder}");
    let verify = refused(&corral_verify(&tampered, &w.join("author.pub")));
    assert!(verify.contains("sha256 check failed"), "{verify}");
    let kept = corral.plugin("hello");
    assert_eq!(
        (kept.version.as_deref(), kept.generation),
        (Some("1.0.0"), 1)
    );

    // A good one: the new version takes over by hot reload.
    let said = ok(&install(&v2));
    assert!(
        said.contains("installed hello 2.0.0") && said.contains("previous: 1.0.0"),
        "{said}"
    );
    corral.wait_until("2.0.0 serves", || {
        let info = corral.plugin("hello");
        info.version.as_deref() == Some("2.0.0") && info.state == PluginState::Ready
    });
    // And back.
    let said = ok(&corral_rollback(&config));
    assert!(said.contains("rolled back to hello 1.0.0"), "{said}");
    corral.wait_until("1.0.0 serves again", || {
        let info = corral.plugin("hello");
        info.version.as_deref() == Some("1.0.0")
            && info.state == PluginState::Ready
            && info.generation >= 3
    });
    caller.finish();
}

fn corral_verify(archive: &Path, key: &Path) -> Output {
    run(&["verify", s(archive), "--trust", s(key)])
}

fn corral_rollback(config: &Path) -> Output {
    run(&["rollback", "hello", "--config", s(config)])
}

#[test]
fn archives_that_would_escape_or_carry_links_are_refused() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed (it writes the hostile archives)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let script = "import io, sys, tarfile\n\
        with tarfile.open(sys.argv[1], 'w:gz') as t:\n\
        \x20   data = b'x'\n\
        \x20   info = tarfile.TarInfo(sys.argv[2])\n\
        \x20   if sys.argv[3] == 'link':\n\
        \x20       info.type = tarfile.SYMTYPE\n\
        \x20       info.linkname = '/etc/passwd'\n\
        \x20       t.addfile(info)\n\
        \x20   else:\n\
        \x20       info.size = len(data)\n\
        \x20       t.addfile(info, io.BytesIO(data))\n";
    for (name, path, kind, expected) in [
        ("escape", "../outside", "file", "paths must stay inside"),
        (
            "absolute",
            "/tmp/corral-evil",
            "file",
            "paths must stay inside",
        ),
        ("link", "plugin.toml", "link", "not links or devices"),
    ] {
        let archive = work.path().join(format!("{name}.tar.gz"));
        let status = Command::new("python3")
            .args(["-c", script])
            .arg(&archive)
            .args([path, kind])
            .status()
            .expect("python3");
        assert!(status.success());
        let error = refused(&run(&["install", s(&archive), "--plugins", s(&plugins)]));
        assert!(
            error.contains("archive check failed") && error.contains(expected),
            "{name}: {error}"
        );
    }
    assert!(!work.path().join("outside").exists());
    let left: Vec<_> = std::fs::read_dir(plugins.join(".corral-versions"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "staging folders were removed: {left:?}");
}
