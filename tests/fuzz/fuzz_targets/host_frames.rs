//! Frames on the host socket, both ways (what a hostile host app or a
//! fake supervisor could send): decoding never panics, and a decoded
//! message round-trips.
#![no_main]

use corral_plugin_api::wire::{self, ClientHello, Request, Response, ServerHello};
use libfuzzer_sys::fuzz_target;

mod round_trip;
use round_trip::round_trip;

fuzz_target!(|data: &[u8]| {
    round_trip::<Request>(data);
    round_trip::<Response>(data);
    let _ = wire::decode_body::<ClientHello>(data);
    let _ = wire::decode_body::<ServerHello>(data);
    let _ = wire::decode_prefix::<u32>(data);
});
