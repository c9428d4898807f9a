//! Frames on the worker channel, both ways: whatever the bytes, decoding
//! returns a message or an error (never panics, never allocates past the
//! frame), and a decoded message encodes back to a frame that decodes to
//! the same message.
#![no_main]

use corral_plugin_api::wire::{self, FromWorker, ToWorker};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

const MAX: u32 = 1 << 20;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    if let Ok(Some((message, used))) = wire::decode_frame::<T>(data, MAX) {
        assert!(used <= data.len());
        let mut frame = Vec::new();
        wire::encode_frame(&message, &mut frame, MAX).expect("a decoded message encodes");
        let (again, _) = wire::decode_frame::<T>(&frame, MAX)
            .expect("an encoded message decodes")
            .expect("a whole frame");
        assert_eq!(again, message);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ToWorker>(data);
    round_trip::<FromWorker>(data);
    let _ = wire::decode_body::<wire::Hello>(data);
    let _ = wire::decode_prefix::<(u32, u32)>(data);
});
