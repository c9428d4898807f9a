//! The wire protocol: messages between host apps and the supervisor, and
//! between the supervisor and its workers, framed as a `u32` little-endian
//! body length followed by a bincode (2.x, standard config) body.
//!
//! Both channels open with a handshake whose first field is the protocol
//! version ([`PROTOCOL_VERSION`]); a peer speaking another version gets an
//! error naming both. Only this module names bincode.

#[cfg(target_os = "linux")]
mod arena;
mod codec;
mod crash;
mod host;
pub mod latency;
#[cfg(target_os = "linux")]
mod shared;
#[cfg(target_os = "linux")]
mod stats;
mod stream;
mod worker;
#[cfg(target_os = "linux")]
pub mod zygote;

#[cfg(target_os = "linux")]
pub use arena::{Arena, MAX_SEGMENTS, PeerArena, SEGMENT_MIN, View, arena_cap};
pub use codec::{
    FrameHeader, HEADER_LEN, SHARED_FLAG, WireError, decode_body, decode_frame, decode_prefix,
    encode_frame, encode_frame_with, mark_shared, violation_frame,
};
pub use crash::{CallEnd, CrashReport, CrashSummary, RecordedCall, Recording};
pub use host::{
    Action, ClientHello, DirectChannel, DirectReport, EffectiveLimits, Event, EventKind, ExitCause,
    ExitInfo, HEALTH_METHOD, KvAnswer, KvRequest, Message, PluginDetails, PluginInfo, PluginState,
    Refusal, Reply, Request, RequestBody, Response, ServerHello, SpawnMode,
};
#[cfg(target_os = "linux")]
pub use shared::{
    Frame, FrameBuffer, Mapping, SHARED_MIN, SharedBytes, encode_shared_frame, recv_with_fds,
    send_frame, send_with_fd, send_with_fds, share_large, write_message, write_message_fd,
};
#[cfg(target_os = "linux")]
pub use stats::{CRASH_FRAMES, CrashArea, CrashFrames, DirectCounts, StatsPage, monotonic_ns};
pub use stream::{read_frame, write_frame};
pub use worker::{
    Call, CallFrame, Fault, FromWorker, Hello, HostCall, Layer, Outcome, PluginKind, Ready, Slot,
    ToWorker,
};

/// The protocol version this build speaks on both channels.
pub const PROTOCOL_VERSION: u32 = 10;

/// Default largest frame body accepted on either channel (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;
