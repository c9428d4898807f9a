//! Blocking frame I/O over plain `std::io` streams, for raw protocol
//! clients and tests: it carries no fds, so a large payload comes inline
//! only to a client that said it takes no shared payloads. corral's own
//! ends read with [`FrameBuffer`](super::FrameBuffer), which keeps them.

use super::codec::{FrameHeader, HEADER_LEN, WireError, encode_frame};
use serde::Serialize;
use std::io::{ErrorKind, Read, Write};

/// Reads one frame body into `buf` (replacing its contents). Returns
/// `Ok(false)` on a clean end of stream before the first header byte.
pub fn read_frame<R: Read>(reader: &mut R, buf: &mut Vec<u8>, max: u32) -> Result<bool, WireError> {
    let mut header = [0; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match reader.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(WireError::Truncated {
                    got,
                    want: HEADER_LEN,
                });
            }
            Ok(n) => got += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    let header = FrameHeader::parse(header, max)?;
    buf.clear();
    buf.resize(header.body_len, 0);
    let mut got = 0;
    while got < header.body_len {
        match reader.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(WireError::Truncated {
                    got,
                    want: header.body_len,
                });
            }
            Ok(n) => got += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(true)
}

/// Encodes `message` as one frame using `buf` as scratch space and writes
/// it with a single `write_all`.
pub fn write_frame<W: Write, T: Serialize>(
    writer: &mut W,
    message: &T,
    buf: &mut Vec<u8>,
    max: u32,
) -> Result<(), WireError> {
    buf.clear();
    encode_frame(message, buf, max)?;
    writer.write_all(buf)?;
    Ok(())
}
