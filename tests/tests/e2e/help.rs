//! The CLI's `--help`, every subcommand's included, against the copy kept
//! in `help.txt`: a change to a flag or its words shows up here, on
//! purpose or not. After a deliberate change, rewrite the copy with
//! `CORRAL_BLESS=1 cargo test -p corral-tests --test e2e help::`.

use corral_tests::corral_bin;
use std::path::Path;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let output = Command::new(corral_bin())
        .args(args)
        .arg("--help")
        // clap shows these variables' values in the help when set.
        .env_remove("CORRAL_SOCKET")
        .env_remove("CORRAL_WORKER")
        .env_remove("CORRAL_STATE_DIR")
        .env_remove("CORRAL_LOG")
        .output()
        .expect("run corral --help");
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

#[test]
fn help_is_what_help_txt_says() {
    let top = help(&[]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.contains(&"serve"), "{top}");
    let mut all = format!("$ corral --help\n{top}");
    for command in commands {
        all += &format!("\n$ corral {command} --help\n{}", help(&[command]));
    }
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/help.txt");
    if std::env::var_os("CORRAL_BLESS").is_some() {
        std::fs::write(&kept, &all).expect("write help.txt");
    }
    let expected = std::fs::read_to_string(&kept).expect("help.txt");
    if all != expected {
        let first = all
            .lines()
            .zip(expected.lines())
            .position(|(now, kept)| now != kept)
            .unwrap_or(all.lines().count().min(expected.lines().count()));
        panic!(
            "corral's help differs from tests/tests/e2e/help.txt from line {}:\n  now:  {:?}\n  kept: {:?}",
            first + 1,
            all.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}
