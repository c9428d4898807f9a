//! The formats of the paged and batched storage services, shared by the
//! guests that ask ([`Host::kv_list_page`](crate::Host::kv_list_page),
//! [`Host::kv_batch`](crate::Host::kv_batch), the C, JavaScript and
//! AssemblyScript bindings) and the supervisor that answers. Simple enough
//! to write by hand in C:
//!
//! - `kv_page:PREFIX`, input = the page's size as a little-endian `u32`,
//!   then the key to start at (UTF-8, inclusive; empty = the first key
//!   with the prefix). Reply: the key the next page starts at (empty on
//!   the last page), then each of the page's keys, sorted, after a `\n`
//!   (keys hold no control characters): `next\nkey1\nkey2`.
//! - `kv_batch`, input = writes one after another: `P`, key length (`u32`
//!   LE), key, value length (`u32` LE), value for a put; `D`, key length,
//!   key for a delete. Applied in order, all or none; deleting a missing
//!   key is not an error. Reply empty.

use std::fmt;

/// The most keys one page holds; a larger request gets this many.
pub const MAX_PAGE: u32 = 10_000;

/// The longest key, in bytes.
pub const MAX_KEY: usize = 1024;

/// One page of keys ([`Host::kv_list_page`](crate::Host::kv_list_page)).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KvPage {
    /// The keys, sorted.
    pub keys: Vec<String>,
    /// Where the next page starts, `None` after the last one.
    pub next: Option<String>,
}

/// One write of a [`Host::kv_batch`](crate::Host::kv_batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvWrite<'a> {
    /// Stores the value under the key.
    Put(&'a str, &'a [u8]),
    /// Removes the key (nothing happens when it is not there).
    Delete(&'a str),
}

impl KvWrite<'_> {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Self::Put(key, _) | Self::Delete(key) => key,
        }
    }
}

/// Bytes that are not a page request, a page or a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvFormatError(pub &'static str);

impl fmt::Display for KvFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for KvFormatError {}

/// Why `key` cannot be a storage key, if it cannot.
pub fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("a key is not empty")
    } else if key.len() > MAX_KEY {
        Err("a key is at most 1024 bytes")
    } else if key.chars().any(char::is_control) {
        Err("a key has no control characters (newlines, tabs, ...)")
    } else {
        Ok(())
    }
}

/// The input of `kv_page:PREFIX`.
pub fn encode_page_request(start: &str, limit: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + start.len());
    bytes.extend_from_slice(&limit.to_le_bytes());
    bytes.extend_from_slice(start.as_bytes());
    bytes
}

/// The start key and the page size a `kv_page` input asks for.
pub fn decode_page_request(input: &[u8]) -> Result<(&str, u32), KvFormatError> {
    let (limit, start) =
        split_u32(input).ok_or(KvFormatError("a page request starts with its size, a u32"))?;
    let start = std::str::from_utf8(start)
        .map_err(|_| KvFormatError("a page request's start key is not UTF-8"))?;
    Ok((start, limit))
}

/// The reply to `kv_page`.
pub fn encode_page(page: &KvPage) -> Vec<u8> {
    let mut bytes = page.next.clone().unwrap_or_default().into_bytes();
    for key in &page.keys {
        bytes.push(b'\n');
        bytes.extend_from_slice(key.as_bytes());
    }
    bytes
}

/// A `kv_page` reply read back.
pub fn decode_page(bytes: &[u8]) -> Result<KvPage, KvFormatError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| KvFormatError("a page of keys is not UTF-8"))?;
    let mut lines = text.split('\n');
    let next = lines.next().filter(|next| !next.is_empty());
    Ok(KvPage {
        keys: lines.map(str::to_owned).collect(),
        next: next.map(str::to_owned),
    })
}

/// The input of `kv_batch`.
pub fn encode_batch(writes: &[KvWrite<'_>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for write in writes {
        let (tag, key, value) = match write {
            KvWrite::Put(key, value) => (b'P', key, Some(value)),
            KvWrite::Delete(key) => (b'D', key, None),
        };
        bytes.push(tag);
        push_chunk(&mut bytes, key.as_bytes());
        if let Some(value) = value {
            push_chunk(&mut bytes, value);
        }
    }
    bytes
}

/// The writes of a `kv_batch` input, keys not yet checked.
pub fn decode_batch(mut input: &[u8]) -> Result<Vec<KvWrite<'_>>, KvFormatError> {
    let mut writes = Vec::new();
    while let Some((&tag, rest)) = input.split_first() {
        let (key, rest) = take_chunk(rest)?;
        let key =
            std::str::from_utf8(key).map_err(|_| KvFormatError("a batch's key is not UTF-8"))?;
        input = match tag {
            b'P' => {
                let (value, rest) = take_chunk(rest)?;
                writes.push(KvWrite::Put(key, value));
                rest
            }
            b'D' => {
                writes.push(KvWrite::Delete(key));
                rest
            }
            _ => return Err(KvFormatError("a batch's write starts with `P` or `D`")),
        };
    }
    Ok(writes)
}

fn push_chunk(bytes: &mut Vec<u8>, chunk: &[u8]) {
    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(chunk);
}

fn take_chunk(bytes: &[u8]) -> Result<(&[u8], &[u8]), KvFormatError> {
    let truncated = KvFormatError("a batch is cut short");
    let (len, rest) = split_u32(bytes).ok_or(truncated.clone())?;
    let len = usize::try_from(len).map_err(|_| truncated.clone())?;
    if rest.len() < len {
        return Err(truncated);
    }
    Ok(rest.split_at(len))
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip() {
        for page in [
            KvPage::default(),
            KvPage {
                keys: vec!["a".into(), "b c".into()],
                next: None,
            },
            KvPage {
                keys: vec!["a".into()],
                next: Some("b".into()),
            },
        ] {
            assert_eq!(decode_page(&encode_page(&page)).unwrap(), page);
        }
        assert_eq!(
            encode_page(&KvPage {
                keys: vec!["k".into()],
                next: Some("n".into())
            }),
            b"n\nk"
        );
        let request = encode_page_request("from", 7);
        assert_eq!(decode_page_request(&request).unwrap(), ("from", 7));
        assert!(decode_page_request(&[1, 0]).is_err());
    }

    #[test]
    fn batches_round_trip_and_reject_damage() {
        let writes = [
            KvWrite::Put("a", b"1"),
            KvWrite::Delete("b"),
            KvWrite::Put("c", b""),
        ];
        let bytes = encode_batch(&writes);
        assert_eq!(&bytes[..10], b"P\x01\0\0\0a\x01\0\0\0");
        assert_eq!(decode_batch(&bytes).unwrap(), writes);
        assert_eq!(decode_batch(&[]).unwrap(), []);
        for cut in 1..bytes.len() {
            if decode_batch(&bytes[..cut]).is_ok() {
                // Only cuts at a write's end read back, as fewer writes.
                assert!(decode_batch(&bytes[..cut]).unwrap().len() < writes.len());
            }
        }
        assert_eq!(
            decode_batch(b"X\0\0\0\0").unwrap_err().to_string(),
            "a batch's write starts with `P` or `D`"
        );
        assert!(decode_batch(b"P\x05\0\0\0ab").is_err());
        assert!(decode_batch(b"P\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("a/b ü").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY + 1)).is_err());
    }
}
