//! Frame codec over byte slices: no I/O, so it builds for wasm32 and can be
//! fuzzed. The length limit is checked before anything is allocated.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes in a frame header (the `u32` little-endian body length).
pub const HEADER_LEN: usize = 4;

/// Set in a header's length when a sealed memfd travels with the frame
/// (`SCM_RIGHTS`, attached to its first byte) and holds the message's
/// payload, whose bytes in the body are then empty. The low 31 bits are
/// the body length.
pub const SHARED_FLAG: u32 = 1 << 31;

/// A frame that cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame body is larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Body length announced or produced.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The body is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// The body decoded but bytes were left over.
    #[error("frame has {0} trailing bytes after the message")]
    Trailing(usize),
    /// The message could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes the frame needs.
        want: usize,
    },
    /// A shared payload is missing, not a sealed memfd, too large, or fds
    /// came without a frame to claim them.
    #[error("bad shared payload: {0}")]
    Attachment(String),
    /// Reading or writing the stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Body length in bytes, already checked against the limit.
    pub body_len: usize,
    /// A shared payload (a sealed memfd) travels with the frame.
    pub shared: bool,
}

impl FrameHeader {
    /// Reads a header, refusing bodies over `max` bytes.
    pub fn parse(header: [u8; HEADER_LEN], max: u32) -> Result<Self, WireError> {
        let raw = u32::from_le_bytes(header);
        let shared = raw & SHARED_FLAG != 0;
        let len = raw & !SHARED_FLAG;
        if len > max {
            return Err(WireError::TooLarge {
                len: u64::from(len),
                max,
            });
        }
        let body_len = usize::try_from(len).map_err(|_| WireError::TooLarge {
            len: u64::from(len),
            max,
        })?;
        Ok(Self { body_len, shared })
    }
}

/// Marks an encoded frame (starting at `frame[0]`) as carrying a shared
/// payload: see [`SHARED_FLAG`].
pub fn mark_shared(frame: &mut [u8]) {
    if let Some(header) = frame.first_chunk_mut::<HEADER_LEN>() {
        let len = u32::from_le_bytes(*header) | SHARED_FLAG;
        *header = len.to_le_bytes();
    }
}

/// Most bytes one decode may claim for the containers it builds (strings,
/// byte buffers, lists), counted before allocating them. A frame body is at
/// most 16 MiB by default, so a valid one claims far less; without a limit
/// a length prefix inside a small frame could ask for terabytes, and a
/// failed allocation aborts the process.
const DECODE_LIMIT: usize = 256 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends one frame holding `message` to `out`. On error `out` is left as
/// it was.
pub fn encode_frame<T: Serialize>(
    message: &T,
    out: &mut Vec<u8>,
    max: u32,
) -> Result<(), WireError> {
    encode_frame_with(out, max, |body| {
        bincode::serde::encode_into_writer(message, VecWriter(body), config())
    })
}

/// Appends one frame to `out` whose body `write` appends (in another
/// encoding than this codec's, such as JSON): the header, and the same
/// limit. On error `out` is left as it was.
pub fn encode_frame_with<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    max: u32,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(error) = write(out) {
        out.truncate(start);
        return Err(WireError::Encode(error.to_string()));
    }
    let body_len = out.len() - start - HEADER_LEN;
    match u32::try_from(body_len) {
        Ok(len) if len <= max && len < SHARED_FLAG => {
            out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(WireError::TooLarge {
                len: body_len as u64,
                max,
            })
        }
    }
}

/// Decodes a whole frame body; trailing bytes are an error.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (message, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|error| WireError::Decode(error.to_string()))?;
    match body.len() - used {
        0 => Ok(message),
        extra => Err(WireError::Trailing(extra)),
    }
}

/// Decodes only the leading fields of a body as `T`, ignoring the rest.
/// Used to read the protocol version of a handshake this build cannot
/// otherwise decode.
pub fn decode_prefix<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(body, config())
        .ok()
        .map(|(value, _)| value)
}

/// Decodes the first frame in `buf`: `Ok(None)` when `buf` holds less than
/// a whole frame, otherwise the message and the bytes consumed. A shared
/// payload's fd is not in `buf`: the message comes with its payload empty.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max: u32,
) -> Result<Option<(T, usize)>, WireError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = FrameHeader::parse(*header, max)?;
    let end = HEADER_LEN + header.body_len;
    let Some(body) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, end)))
}

/// The frame `FromWorker::Violation { syscall }`, encoded by hand without
/// allocating, so that a `SIGSYS` handler can write it. Returns the buffer
/// and how many of its bytes are the frame.
#[allow(
    clippy::cast_possible_truncation,
    reason = "each cast is bounded by the branch it is in"
)]
pub const fn violation_frame(syscall: u32) -> ([u8; 8], usize) {
    const VARIANT: u8 = 4; // FromWorker::Violation
    let mut frame = [0u8; 8];
    frame[HEADER_LEN] = VARIANT;
    // bincode's varint: one byte below 251, else 251 and a u16, else 252
    // and a u32 (little-endian).
    let body_len = if syscall < 251 {
        frame[HEADER_LEN + 1] = syscall as u8;
        2
    } else if syscall <= u16::MAX as u32 {
        let le = (syscall as u16).to_le_bytes();
        frame[HEADER_LEN + 1] = 251;
        frame[HEADER_LEN + 2] = le[0];
        frame[HEADER_LEN + 3] = le[1];
        4
    } else {
        // Syscall numbers are far below 65536; report the largest we can.
        frame[HEADER_LEN + 1] = 251;
        frame[HEADER_LEN + 2] = 0xff;
        frame[HEADER_LEN + 3] = 0xff;
        4
    };
    frame[0] = body_len as u8;
    (frame, HEADER_LEN + body_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Call, ToWorker};

    fn call(input: Vec<u8>) -> ToWorker {
        ToWorker::Call(Call {
            id: 7,
            method: "echo".into(),
            input,
            deadline_ms: 1000,
        })
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        encode_frame(&call(b"hi".to_vec()), &mut buf, 1024).unwrap();
        encode_frame(&ToWorker::Shutdown, &mut buf, 1024).unwrap();
        let (first, used) = decode_frame::<ToWorker>(&buf, 1024).unwrap().unwrap();
        assert_eq!(first, call(b"hi".to_vec()));
        let (second, used2) = decode_frame::<ToWorker>(&buf[used..], 1024)
            .unwrap()
            .unwrap();
        assert_eq!(second, ToWorker::Shutdown);
        assert_eq!(used + used2, buf.len());
    }

    #[test]
    fn a_borrowed_call_frame_encodes_as_a_call() {
        let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
        encode_frame(&call(b"hi".to_vec()), &mut owned, 1024).unwrap();
        let frame = crate::wire::CallFrame::Call {
            id: 7,
            method: "echo",
            input: b"hi",
            deadline_ms: 1000,
        };
        encode_frame(&frame, &mut borrowed, 1024).unwrap();
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let mut buf = Vec::new();
        encode_frame(&call(vec![1; 100]), &mut buf, 1024).unwrap();
        for cut in 0..buf.len() {
            assert!(
                decode_frame::<ToWorker>(&buf[..cut], 1024)
                    .unwrap()
                    .is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_header_is_refused_before_reading_the_body() {
        let header = (u32::MAX).to_le_bytes();
        let err = decode_frame::<ToWorker>(&header, 1024).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { len, max: 1024 } if len == u64::from(!SHARED_FLAG))
        );
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let mut buf = vec![9];
        let err = encode_frame(&call(vec![0; 2000]), &mut buf, 1024).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { max: 1024, .. }));
        assert_eq!(buf, [9], "a failed encode leaves the buffer as it was");
    }

    #[test]
    fn the_shared_flag_is_not_part_of_the_length() {
        let mut buf = Vec::new();
        encode_frame(&call(Vec::new()), &mut buf, 1024).unwrap();
        mark_shared(&mut buf);
        let header = FrameHeader::parse(*buf.first_chunk().unwrap(), 1024).unwrap();
        assert!(header.shared);
        assert_eq!(header.body_len, buf.len() - HEADER_LEN);
        let (message, _) = decode_frame::<ToWorker>(&buf, 1024).unwrap().unwrap();
        assert_eq!(message, call(Vec::new()));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        let garbage = [4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_frame::<ToWorker>(&garbage, 1024),
            Err(WireError::Decode(_))
        ));
        let mut buf = Vec::new();
        encode_frame(&ToWorker::Shutdown, &mut buf, 1024).unwrap();
        buf.push(0);
        buf[0] += 1;
        assert!(matches!(
            decode_frame::<ToWorker>(&buf, 1024),
            Err(WireError::Trailing(1))
        ));
    }

    #[test]
    fn huge_length_prefix_inside_a_small_frame_does_not_allocate() {
        // variant 0 (Call), id 1, then a method string claiming u64::MAX bytes
        let body = [0u8, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_body::<ToWorker>(&body).is_err());
    }

    /// Found by fuzzing (`tests/fuzz`, target worker_frames): a string
    /// length of 1 TiB in a 13-byte body made bincode allocate it up front,
    /// which aborts the process when the allocation fails.
    #[test]
    fn a_huge_string_length_is_refused_before_allocating() {
        // variant 0 (Call), id 1, then a method string claiming 2^40 bytes
        let mut body = vec![0u8, 1, 0xfd];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode_body::<ToWorker>(&body).is_err());
        // as a u32 length (0xfc): 4 GiB
        let body = [0u8, 1, 0xfc, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_body::<ToWorker>(&body).is_err());
    }

    #[test]
    fn hand_encoded_violation_frame_matches_bincode() {
        for syscall in [0, 59, 250, 251, 435, 1000, 65535] {
            let (frame, len) = violation_frame(syscall);
            let mut expected = Vec::new();
            encode_frame(
                &crate::wire::FromWorker::Violation { syscall },
                &mut expected,
                64,
            )
            .unwrap();
            assert_eq!(&frame[..len], &expected[..], "syscall {syscall}");
        }
    }

    #[test]
    fn prefix_reads_the_protocol_of_a_foreign_handshake() {
        let mut buf = Vec::new();
        encode_frame(&(99u32, "from the future", [1u8, 2, 3]), &mut buf, 1024).unwrap();
        assert_eq!(decode_prefix::<u32>(&buf[HEADER_LEN..]), Some(99));
    }
}
