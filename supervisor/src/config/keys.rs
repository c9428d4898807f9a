//! The public keys corral trusts to sign plugin archives (corral.toml's
//! `trusted_keys`, `corral verify --trust`): ed25519, 64 hex digits.

use ed25519_dalek::VerifyingKey;

/// A public key that is not 64 hex digits of a valid ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("public key {key:?}: expected an ed25519 key, 64 hex digits")]
pub(crate) struct BadKey {
    /// The key as given.
    pub(crate) key: String,
}

/// Checks a public key given in corral.toml or on the command line;
/// returns it in lowercase.
pub(crate) fn check_public_key(key: &str) -> Result<String, BadKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(key, &mut bytes)
        .ok()
        .and_then(|()| VerifyingKey::from_bytes(&bytes).ok())
        .map(|_| key.to_ascii_lowercase())
        .ok_or_else(|| BadKey {
            key: key.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits_of_a_valid_point() {
        let good = "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A";
        assert_eq!(check_public_key(good), Ok(good.to_ascii_lowercase()));
        for bad in ["xyz", &good[..62], &format!("{good}00")] {
            let error = check_public_key(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("public key {bad:?}: expected an ed25519 key, 64 hex digits")
            );
        }
    }
}
