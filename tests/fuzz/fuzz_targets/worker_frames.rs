//! Frames on the worker channel, both ways: whatever the bytes, decoding
//! returns a message or an error (never panics, never allocates past the
//! frame), and a decoded message encodes back to a frame that decodes to
//! the same message.
#![no_main]

use corral_plugin_api::wire::{self, FromWorker, ToWorker};
use libfuzzer_sys::fuzz_target;

mod round_trip;
use round_trip::round_trip;

fuzz_target!(|data: &[u8]| {
    round_trip::<ToWorker>(data);
    round_trip::<FromWorker>(data);
    let _ = wire::decode_body::<wire::Hello>(data);
    let _ = wire::decode_prefix::<(u32, u32)>(data);
});
