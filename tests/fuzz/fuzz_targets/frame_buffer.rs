//! The reading side of every channel, `wire::FrameBuffer`, fed arbitrary
//! bytes through a real socketpair in arbitrary pieces: it hands out whole
//! frames in order or an error, never panics, never hands out a frame
//! longer than its limit, and a frame that claims a shared payload without
//! an fd is an error.
#![no_main]

use corral_plugin_api::wire::{self, FrameBuffer, ToWorker, WireError};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

/// A small limit, so that "too large" is reached often.
const MAX: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let piece = usize::from(cut % 64) + 1;
    let (mut writer, reader) = UnixStream::pair().expect("socketpair");
    let mut frames = FrameBuffer::new(MAX);
    'pieces: for chunk in bytes.chunks(piece) {
        writer.write_all(chunk).expect("write to the socketpair");
        if frames
            .recv(reader.as_fd())
            .expect("read from the socketpair")
            == 0
        {
            break;
        }
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let body = frames.body(&frame);
                    assert!(body.len() <= MAX as usize);
                    assert!(frame.shared.is_none(), "no fd was ever sent");
                    let _ = wire::decode_body::<ToWorker>(body);
                }
                Ok(None) => break,
                Err(WireError::TooLarge { .. } | WireError::Attachment(_)) => break 'pieces,
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
    }
    // Whatever is left is the start of a frame, and says how much it got.
    if frames.is_mid_frame() {
        assert!(matches!(frames.truncated(), WireError::Truncated { .. }));
    }
});
