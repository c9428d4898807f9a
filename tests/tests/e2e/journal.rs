//! The event journal: events kept in SQLite under the state folder
//! survive a supervisor killed with SIGKILL; the next one shows them and
//! numbers on; `corral events --since` reads across the restart.

use corral::{Event, EventKind};
use corral_tests::{Corral, Workspace};
use std::time::Duration;

fn events(corral: &Corral, args: &[&str]) -> Vec<Event> {
    let mut command = vec!["events", "--json"];
    command.extend(args);
    let out = corral.cli(&command);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn events_survive_a_killed_supervisor_and_numbering_goes_on() {
    let state = tempfile::tempdir().unwrap();
    corral_tests::open_to_all(state.path());
    let mut first = Corral::builder()
        .hello("hello")
        .state_dir(state.path())
        .start();
    let before = first.wait_ready("hello");
    first.kill_worker("hello");
    first.wait_replaced("hello", before.pid);
    let exit = events(&first, &["--plugin", "hello"])
        .into_iter()
        .find(|event| event.kind == EventKind::Exit)
        .expect("an exit event");
    let last = events(&first, &[]).last().unwrap().seq;
    // Written within milliseconds, off the call path.
    std::thread::sleep(Duration::from_millis(300));
    first.signal(libc::SIGKILL);
    first.wait_exit();
    drop(first);

    let second = Corral::builder()
        .hello("hello")
        .state_dir(state.path())
        .start();
    second.wait_ready("hello");
    let seen = events(&second, &["--since", "1h"]);
    assert!(seen.contains(&exit), "{exit:?} not in {seen:#?}");
    let new: Vec<&Event> = seen.iter().filter(|event| event.seq > last).collect();
    assert!(!new.is_empty(), "{seen:#?}");
    assert!(
        seen.windows(2).all(|pair| pair[0].seq < pair[1].seq),
        "numbered on: {seen:#?}"
    );
    // A time after everything: nothing.
    assert!(events(&second, &["--since", "2099-01-01T00:00:00.000Z"]).is_empty());
}
