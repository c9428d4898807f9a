//! The two encodings of the host protocol: the same messages and the same
//! frames (a 4-byte little-endian body length, then the body), the body
//! either bincode (the Rust clients) or JSON (any language). A client
//! chooses with its first frame: a hello whose body starts with `{` is
//! JSON, and the connection speaks JSON both ways from then on.
//!
//! In JSON, messages are serde's default form of the types in
//! `corral_plugin_api::wire`: structs are objects, enum variants are
//! `"Name"` or `{"Name": …}`, and bytes (a call's input and reply,
//! payloads) are arrays of numbers; a client may also send bytes as a
//! string, which stands for its UTF-8 bytes. JSON connections take no
//! shared payloads: large payloads travel inline.

use crate::transport::framed::Outgoing;
use corral_plugin_api::wire::{SharedBytes, WireError, encode_frame_with};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a connection's frame bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// bincode 2, the wire codec's own (`wire::encode_frame`).
    Bincode,
    /// JSON text.
    Json,
}

impl Encoding {
    /// The encoding a client chose, from the body of its first frame.
    pub(crate) fn of_hello(body: &[u8]) -> Self {
        if body.first() == Some(&b'{') {
            Self::Json
        } else {
            Self::Bincode
        }
    }

    /// Decodes one frame body.
    pub(crate) fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, WireError> {
        match self {
            Self::Bincode => corral_plugin_api::wire::decode_body(body),
            Self::Json => {
                serde_json::from_slice(body).map_err(|error| WireError::Decode(error.to_string()))
            }
        }
    }

    /// Encodes `message` as a frame with `shared` as its payload (bincode
    /// only: a JSON connection is never sent one).
    pub(crate) fn encode<T: Serialize>(
        self,
        message: &T,
        shared: Option<SharedBytes>,
        max: u32,
    ) -> Result<Outgoing, WireError> {
        match self {
            Self::Bincode => Outgoing::encode(message, shared, max),
            Self::Json => {
                let mut frame = Vec::new();
                encode_frame_with(&mut frame, max, |body| serde_json::to_writer(body, message))?;
                Ok(Outgoing::from_frame(frame))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_plugin_api::wire::{ClientHello, HEADER_LEN, Reply, Request, RequestBody, Response};

    #[test]
    fn the_hello_chooses() {
        assert_eq!(Encoding::of_hello(b"{\"protocol\":3}"), Encoding::Json);
        let mut bincode = Vec::new();
        let hello = ClientHello {
            protocol: 3,
            client: "x".into(),
            shared_payloads: false,
        };
        corral_plugin_api::wire::encode_frame(&hello, &mut bincode, 1 << 20).unwrap();
        assert_eq!(
            Encoding::of_hello(&bincode[HEADER_LEN..]),
            Encoding::Bincode
        );
        assert_eq!(Encoding::of_hello(b""), Encoding::Bincode);
    }

    #[test]
    fn json_requests_take_bytes_as_arrays_or_strings() {
        for input in ["\"hi\"", "[104, 105]"] {
            let text = format!(
                r#"{{"id": 7, "body": {{"Call": {{"plugin": "p", "method": "m", "input": {input}, "timeout_ms": 0}}}}}}"#
            );
            let request: Request = Encoding::Json.decode(text.as_bytes()).unwrap();
            assert_eq!(request.id, 7);
            let RequestBody::Call { input, .. } = request.body else {
                panic!("a call")
            };
            assert_eq!(input, b"hi");
        }
        let list: Request = Encoding::Json
            .decode(br#"{"id": 1, "body": "List"}"#)
            .unwrap();
        assert_eq!(list.body, RequestBody::List);
        let hello: ClientHello = Encoding::Json.decode(br#"{"protocol": 4}"#).unwrap();
        assert!(!hello.shared_payloads && hello.client.is_empty());
        assert!(Encoding::Json.decode::<Request>(b"{\"id\": 1}").is_err());
    }

    fn len_of(response: &Response) -> u64 {
        serde_json::to_vec(response).unwrap().len() as u64
    }

    #[test]
    fn json_responses_are_length_prefixed_json() {
        let response = Response {
            id: 3,
            reply: Reply::Called(b"ok".to_vec()),
        };
        let frame = Encoding::Json.encode(&response, None, 1 << 20).unwrap();
        let bytes = frame.bytes();
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        let json: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 3, "reply": {"Called": [111, 107]}})
        );
        let Err(WireError::TooLarge { len, max: 8 }) = Encoding::Json.encode(&response, None, 8)
        else {
            panic!("a frame over the limit")
        };
        assert_eq!(len, len_of(&response));
    }
}
