//! What a plugin should be doing, and what an admin action does to it:
//! pure decisions, no I/O, tested here; the controller carries them out.

use corral_plugin_api::wire::{Action, PluginState};

/// What the plugin should be doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// Run a worker.
    Run,
    /// Run one on the first call.
    Lazy,
    /// No worker until an admin starts it.
    Stopped,
    /// No worker until an admin enables it (persisted).
    Disabled,
    /// Gave up (restart policy) until an admin starts it.
    Failed,
    /// Cannot run at all (unresolved dependencies), for this reason.
    Blocked(String),
}

impl Want {
    /// What a plugin wants when its controller starts: `blocked` by its
    /// dependencies, `disabled` by an admin (persisted), or started at
    /// once or on its first call (`lazy`).
    pub(crate) fn initial(blocked: Option<String>, disabled: bool, lazy: bool) -> Self {
        match blocked {
            Some(why) => Self::Blocked(why),
            None if disabled => Self::Disabled,
            None if lazy => Self::Lazy,
            None => Self::Run,
        }
    }

    /// The state a plugin that wants this shows while no worker starts,
    /// and why calls cannot reach it (`None`: it is running, or starting).
    pub(crate) fn idle(&self) -> Option<(PluginState, String)> {
        Some(match self {
            Self::Run => return None,
            Self::Lazy => (PluginState::Installed, String::new()),
            Self::Stopped => (PluginState::Stopped, "is stopped".into()),
            Self::Disabled => (
                PluginState::Disabled,
                "is disabled (corral enable to allow it again)".into(),
            ),
            Self::Failed => (PluginState::Failed, "has failed".into()),
            Self::Blocked(why) => (PluginState::Failed, format!("cannot start: {why}")),
        })
    }
}

/// What the controller does for an admin action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Refuse it, saying why.
    Refuse(String),
    /// Allow it to run (persisted); the serving worker goes on serving.
    KeepRunning,
    /// Allow it to run (persisted), stop any worker, forget past failures,
    /// start one, and answer once it has started or failed.
    StartFresh,
    /// Stop the worker; the plugin then wants [`Want::Stopped`], unless it
    /// is disabled or blocked, which it stays.
    Stop,
    /// Keep it from running (persisted) and stop the worker.
    Disable,
    /// Read its folder again and switch to it.
    Reload,
}

/// What `action` on plugin `name`, which wants `want` and has a worker
/// when `running`, comes to.
pub(crate) fn admin(action: Action, want: &Want, running: bool, name: &str) -> Step {
    match (action, want) {
        (Action::Start | Action::Restart, Want::Disabled) => Step::Refuse(format!(
            "plugin `{name}` is disabled: `corral enable {name}` first"
        )),
        (Action::Start | Action::Restart | Action::Enable, Want::Blocked(why)) => {
            Step::Refuse(format!("plugin `{name}` cannot start: {why}"))
        }
        (Action::Start | Action::Enable, _) if running => Step::KeepRunning,
        (Action::Start | Action::Restart | Action::Enable, _) => Step::StartFresh,
        (Action::Stop, _) => Step::Stop,
        (Action::Disable, _) => Step::Disable,
        (Action::Reload, _) => Step::Reload,
    }
}

/// What a plugin wants after an admin stopped it.
pub(crate) fn after_stop(want: Want) -> Want {
    match want {
        Want::Disabled | Want::Blocked(_) => want,
        _ => Want::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_starts_blocked_disabled_lazy_or_running() {
        let blocked = Want::initial(Some("no `db`".into()), true, true);
        assert_eq!(blocked, Want::Blocked("no `db`".into()));
        assert_eq!(Want::initial(None, true, true), Want::Disabled);
        assert_eq!(Want::initial(None, false, true), Want::Lazy);
        assert_eq!(Want::initial(None, false, false), Want::Run);
        assert_eq!(Want::Run.idle(), None);
        assert_eq!(
            Want::Blocked("no `db`".into()).idle(),
            Some((PluginState::Failed, "cannot start: no `db`".into()))
        );
    }

    #[test]
    fn admin_actions_by_what_the_plugin_wants() {
        let disabled = admin(Action::Start, &Want::Disabled, false, "p");
        assert_eq!(
            disabled,
            Step::Refuse("plugin `p` is disabled: `corral enable p` first".into())
        );
        assert_eq!(admin(Action::Restart, &Want::Disabled, true, "p"), disabled);
        assert_eq!(
            admin(Action::Enable, &Want::Disabled, false, "p"),
            Step::StartFresh
        );
        let blocked = Want::Blocked("no `db`".into());
        for action in [Action::Start, Action::Restart, Action::Enable] {
            assert_eq!(
                admin(action, &blocked, false, "p"),
                Step::Refuse("plugin `p` cannot start: no `db`".into())
            );
        }
        assert_eq!(
            admin(Action::Start, &Want::Run, true, "p"),
            Step::KeepRunning
        );
        assert_eq!(
            admin(Action::Enable, &Want::Run, true, "p"),
            Step::KeepRunning
        );
        assert_eq!(
            admin(Action::Restart, &Want::Run, true, "p"),
            Step::StartFresh
        );
        assert_eq!(
            admin(Action::Start, &Want::Failed, false, "p"),
            Step::StartFresh
        );
        assert_eq!(admin(Action::Stop, &blocked, false, "p"), Step::Stop);
        assert_eq!(admin(Action::Disable, &Want::Run, true, "p"), Step::Disable);
        assert_eq!(admin(Action::Reload, &Want::Lazy, false, "p"), Step::Reload);
        assert_eq!(after_stop(Want::Run), Want::Stopped);
        assert_eq!(after_stop(Want::Disabled), Want::Disabled);
        assert_eq!(after_stop(blocked.clone()), blocked);
    }
}
