//! The check both frame targets share.

use corral_plugin_api::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Largest frame body the targets accept.
const MAX: u32 = 1 << 20;

/// Decodes `data` as one frame of `T`; whatever decodes must encode back
/// to a frame that decodes to the same message.
pub fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
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
