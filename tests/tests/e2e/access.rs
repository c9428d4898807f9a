//! Who may use the host socket: the peer's uid (`SO_PEERCRED`) against
//! corral.toml's `allowed_uids` and `admin_uids`, tested with a client
//! really running as another uid (`setpriv`).

use corral_tests::{Corral, Workspace, corral_bin};
use std::process::{Command, Output};

/// Runs the `corral` CLI as `uid` against `corral`'s socket.
fn cli_as(corral: &Corral, uid: u32, args: &[&str]) -> Output {
    let id = uid.to_string();
    Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .arg(corral_bin())
        .args(args)
        .arg("--socket")
        .arg(&corral.socket)
        .output()
        .expect("run corral as another uid")
}

fn serve(extra: &str) -> Corral {
    let corral = Corral::builder().hello("hello").start_with_config(&format!(
        "plugins = [\"plugins\"]\nsocket = \"corral.sock\"\nsocket_mode = \"0666\"\n{extra}"
    ));
    corral.wait_ready("hello");
    corral
}

#[test]
fn an_unlisted_uid_is_refused_even_when_the_socket_file_lets_it_in() {
    let Some(nobody) = corral_tests::nobody_or_skip("an_unlisted_uid_is_refused") else {
        return;
    };
    let corral = serve("");
    let out = cli_as(&corral, nobody, &["ps"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("uid {nobody} may not use this corral")),
        "{stderr}"
    );
    assert!(
        corral.log().contains("refused a client"),
        "{}",
        corral.log()
    );
    // Root (the supervisor's own uid here) is always let in.
    assert!(corral.cli(&["ps"]).status.success());
}

#[test]
fn allowed_uids_call_and_only_admin_uids_control() {
    let Some(nobody) = corral_tests::nobody_or_skip("allowed_uids_call") else {
        return;
    };
    let corral = serve(&format!("allowed_uids = [{nobody}]\n"));
    let call = cli_as(&corral, nobody, &["call", "hello", "upper", "app"]);
    assert!(call.status.success(), "{call:?}");
    assert_eq!(call.stdout, b"APP");
    assert!(cli_as(&corral, nobody, &["ps"]).status.success());
    let stop = cli_as(&corral, nobody, &["stop", "hello"]);
    assert_eq!(stop.status.code(), Some(1), "{stop:?}");
    let stderr = String::from_utf8_lossy(&stop.stderr);
    assert!(
        stderr.contains(&format!("uid {nobody} may not stop plugins (admin_uids"))
            && stderr.contains("permission_denied"),
        "{stderr}"
    );
    let kill = cli_as(&corral, nobody, &["kill", "hello"]);
    assert_eq!(kill.status.code(), Some(1), "{kill:?}");
    assert!(
        String::from_utf8_lossy(&kill.stderr).contains("may not kill plugins"),
        "{kill:?}"
    );
    // Logs are the operator's; app uids may publish, not read them.
    let logs = cli_as(&corral, nobody, &["logs", "hello"]);
    assert_eq!(logs.status.code(), Some(1), "{logs:?}");
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("may not read the logs of plugins"),
        "{logs:?}"
    );
    let kv = cli_as(&corral, nobody, &["kv", "hello", "list"]);
    assert_eq!(kv.status.code(), Some(1), "{kv:?}");
    assert!(
        String::from_utf8_lossy(&kv.stderr)
            .contains("may not read or change the storage of plugins"),
        "{kv:?}"
    );
    let publish = cli_as(&corral, nobody, &["publish", "news", "x"]);
    assert!(publish.status.success(), "{publish:?}");
    assert_eq!(corral.plugin("hello").state, corral::PluginState::Ready);
    assert_eq!(corral.plugin("hello").restarts, 0);

    let corral = serve(&format!("admin_uids = [{nobody}]\n"));
    let stop = cli_as(&corral, nobody, &["stop", "hello"]);
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(corral.plugin("hello").state, corral::PluginState::Stopped);
}
