//! The supervisor's requests to a zygote (`corral-worker --zygote`), a
//! pre-initialized worker process that forks new workers on demand. One
//! request or reply per packet of a `SOCK_SEQPACKET` socketpair, bincode
//! encoded; a [`ForkRequest`] carries the new worker's four fds.

use crate::worker_setup::WorkerSetup;
use serde::{Deserialize, Serialize};

/// Fork a worker. Four fds come with it, in order: the worker's channel,
/// its plugin module, its seccomp listener socket and the write end of its
/// output pipe (its stdout and stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRequest {
    /// What `ps` shows as the worker's command line.
    pub title: String,
    /// The worker's working folder, as bytes (a path).
    #[serde(with = "serde_bytes")]
    pub dir: Vec<u8>,
    /// The worker's whole environment, `NAME=value` each.
    pub env: Vec<serde_bytes::ByteBuf>,
    /// The supervisor's half of the sandbox, applied in the child.
    pub setup: WorkerSetup,
}

/// The fds a [`ForkRequest`] carries.
pub const FORK_FDS: usize = 4;

/// A zygote's answer to a [`ForkRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForkReply {
    /// The worker runs as this pid, a child of the supervisor (the zygote
    /// forks with `CLONE_PARENT`).
    Forked {
        /// Its pid.
        pid: u32,
    },
    /// No worker: why.
    Failed {
        /// What went wrong, for the log.
        message: String,
    },
}

/// Largest request or reply packet.
pub const MAX_PACKET: u32 = 64 * 1024;

/// Encodes a request or reply as one packet: a frame of the usual codec.
pub fn encode_packet<T: Serialize>(message: &T) -> Result<Vec<u8>, super::WireError> {
    let mut packet = Vec::new();
    super::encode_frame(message, &mut packet, MAX_PACKET)?;
    Ok(packet)
}

/// Decodes a packet [`encode_packet`] made.
pub fn decode_packet<T: serde::de::DeserializeOwned>(packet: &[u8]) -> Result<T, super::WireError> {
    let body = packet
        .get(super::HEADER_LEN..)
        .ok_or(super::WireError::Truncated {
            got: packet.len(),
            want: super::HEADER_LEN,
        })?;
    super::decode_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let request = ForkRequest {
            title: "corral-worker: hello@1.0.0".into(),
            dir: b"/srv/plugins/hello".to_vec(),
            env: vec![serde_bytes::ByteBuf::from(b"CORRAL_PLUGIN=hello".to_vec())],
            setup: WorkerSetup::new(
                &crate::wire::EffectiveLimits {
                    memory_bytes: 64 << 20,
                    cpu_seconds: Some(10),
                    cpu_percent: None,
                    call_timeout_ms: 1000,
                    open_files: 64,
                    threads: 8,
                    file_size_bytes: 1 << 20,
                    wasm_fuel: 0,
                    storage_bytes: 0,
                    storage_keys: 1000,
                },
                Some(200_000),
                false,
                crate::wire::PluginKind::Native,
            ),
        };
        let packet = encode_packet(&request).unwrap();
        assert_eq!(decode_packet::<ForkRequest>(&packet).unwrap(), request);
        assert!(decode_packet::<ForkRequest>(&packet[..3]).is_err());
        assert!(decode_packet::<ForkRequest>(&packet[..packet.len() - 1]).is_err());
        let reply = ForkReply::Forked { pid: 42 };
        assert_eq!(
            decode_packet::<ForkReply>(&encode_packet(&reply).unwrap()).unwrap(),
            reply
        );
    }
}
