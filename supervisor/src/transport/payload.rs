//! Call payloads as the supervisor carries them: bytes, or a sealed memfd
//! that it passes along without reading.

use corral_plugin_api::wire::{SharedBytes, WireError, share_large};
use corral_plugin_api::{ErrorKind, RemoteError};

/// A call's input or reply.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    Shared(SharedBytes),
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

impl Payload {
    /// What a frame carried: its payload bytes, or (with those empty) the
    /// shared payload that came with it.
    pub(crate) fn received(bytes: Vec<u8>, shared: Option<SharedBytes>) -> Result<Self, WireError> {
        match shared {
            None => Ok(Self::Bytes(bytes)),
            Some(shared) if bytes.is_empty() => Ok(Self::Shared(shared)),
            Some(_) => Err(WireError::Attachment(
                "a frame carried payload bytes and a shared payload".into(),
            )),
        }
    }

    /// The bytes and the shared payload to send in a frame: a payload of
    /// [`SHARED_MIN`] bytes or more goes in a sealed memfd when `shared`
    /// is allowed, otherwise inline.
    pub(crate) fn for_frame(
        self,
        shared: bool,
    ) -> Result<(Vec<u8>, Option<SharedBytes>), RemoteError> {
        match self {
            Self::Bytes(bytes) if shared => Ok(share_large(bytes)),
            Self::Bytes(bytes) => Ok((bytes, None)),
            Self::Shared(payload) if shared => Ok((Vec::new(), Some(payload))),
            Self::Shared(payload) => Ok((read(&payload)?, None)),
        }
    }

    /// The payload's bytes, read out of the memfd if shared.
    pub(crate) fn into_bytes(self) -> Result<Vec<u8>, RemoteError> {
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            Self::Shared(payload) => read(&payload),
        }
    }
}

fn read(payload: &SharedBytes) -> Result<Vec<u8>, RemoteError> {
    payload.to_vec().map_err(|error| {
        RemoteError::new(
            ErrorKind::Unavailable,
            format!(
                "cannot read a shared payload of {} bytes: {error}",
                payload.len()
            ),
        )
    })
}
