//! An admin's `corral disable`, kept across supervisor restarts: a marker
//! file per plugin under the state folder (nothing kept without one).

use crate::supervise::handle::Supervision;
use corral_plugin_api::{ErrorKind, RemoteError};
use std::path::PathBuf;

/// The file whose presence means "disabled by an admin".
fn marker(supervision: &Supervision, name: &str) -> Option<PathBuf> {
    supervision
        .state_dir
        .as_ref()
        .map(|dir| dir.join("disabled").join(name))
}

pub(crate) fn is_disabled(supervision: &Supervision, name: &str) -> bool {
    marker(supervision, name).is_some_and(|marker| marker.exists())
}

/// Records (or clears) that an admin disabled this plugin, so that it
/// stays disabled across supervisor restarts.
pub(crate) fn persist(
    supervision: &Supervision,
    name: &str,
    disabled: bool,
) -> Result<(), RemoteError> {
    let Some(marker) = marker(supervision, name) else {
        return Ok(());
    };
    let result = if disabled {
        marker
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&marker, b""))
    } else {
        match std::fs::remove_file(&marker) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    result.map_err(|error| {
        RemoteError::new(
            ErrorKind::Unavailable,
            format!("cannot record the change in {}: {error}", marker.display()),
        )
    })
}
