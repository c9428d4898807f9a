//! Frames on the host socket, both ways (what a hostile host app or a
//! fake supervisor could send): decoding never panics, and a decoded
//! message round-trips.
#![no_main]

use corral_plugin_api::wire::{self, ClientHello, Request, Response, ServerHello};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

const MAX: u32 = 1 << 20;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    if let Ok(Some((message, _))) = wire::decode_frame::<T>(data, MAX) {
        let mut frame = Vec::new();
        wire::encode_frame(&message, &mut frame, MAX).expect("a decoded message encodes");
        let (again, _) = wire::decode_frame::<T>(&frame, MAX)
            .expect("an encoded message decodes")
            .expect("a whole frame");
        assert_eq!(again, message);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Request>(data);
    round_trip::<Response>(data);
    let _ = wire::decode_body::<ClientHello>(data);
    let _ = wire::decode_body::<ServerHello>(data);
    let _ = wire::decode_prefix::<u32>(data);
});
