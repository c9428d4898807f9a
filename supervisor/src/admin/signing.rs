//! ed25519 signatures of plugin archives: `corral keygen`, `corral sign`,
//! `corral verify`, and the check `corral install` makes.
//!
//! A signature lives beside its archive, in `ARCHIVE.sig`:
//!
//! ```toml
//! sha256 = "…"      # the archive's SHA-256, 64 hex digits
//! key = "…"         # the signer's public key, 64 hex digits
//! signature = "…"   # ed25519 over "corral plugin archive v1\0" + the digest, 128 hex digits
//! ```
//!
//! Keys are 32 bytes in hex: the secret one in `NAME.key` (mode 0600), the
//! public one in `NAME.pub`, and in corral.toml's `trusted_keys`.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What a signature signs, before the archive's digest: no signature
/// made for something else verifies as one of these.
const CONTEXT: &[u8] = b"corral plugin archive v1\0";

/// A failed key, signing or verification step; each says which check.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A key is not 64 hex digits (or not a valid ed25519 key).
    #[error("{what}: expected an ed25519 key, 64 hex digits")]
    BadKey {
        /// Which key.
        what: String,
    },
    /// There is no signature file.
    #[error("{}: no signature (sign it with `corral sign --key KEY.key ARCHIVE`)", .0.display())]
    Unsigned(PathBuf),
    /// The signature file cannot be read.
    #[error("{}: not a signature file: {problem}", path.display())]
    BadSignatureFile {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The archive is not the one that was signed.
    #[error(
        "sha256 check failed: the archive's SHA-256 is {actual}, the signature is for {signed}: it was changed or cut short after signing"
    )]
    Digest {
        /// The archive's digest now.
        actual: String,
        /// The digest the signature is for.
        signed: String,
    },
    /// The signing key is not trusted.
    #[error(
        "signature check failed: signed by key {key}, which is not in trusted_keys (corral.toml)"
    )]
    Untrusted {
        /// The signer's public key.
        key: String,
    },
    /// The signature does not verify.
    #[error("signature check failed: the signature by key {key} does not match the archive")]
    Invalid {
        /// The claimed signer.
        key: String,
    },
}

/// A signature file's contents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The archive's SHA-256, hex.
    pub sha256: String,
    /// The signer's public key, hex.
    pub key: String,
    /// The ed25519 signature, hex.
    pub signature: String,
}

/// The signature file of `archive`: `ARCHIVE.sig`.
pub fn signature_path(archive: &Path) -> PathBuf {
    let mut path = archive.as_os_str().to_owned();
    path.push(".sig");
    PathBuf::from(path)
}

/// Makes a key pair: `STEM.key` (secret, mode 0600) and `STEM.pub`.
/// Returns the public key, hex.
pub fn keygen(stem: &Path) -> Result<String, SignError> {
    let mut seed = [0u8; 32];
    let random = Path::new("/dev/urandom");
    fs::File::open(random)
        .and_then(|mut file| file.read_exact(&mut seed))
        .map_err(|source| io_error(random, source))?;
    let secret = SigningKey::from_bytes(&seed);
    let public = hex::encode(secret.verifying_key().as_bytes());
    let secret_path = stem.with_extension("key");
    write_private(&secret_path, &format!("{}\n", hex::encode(seed)))?;
    let public_path = stem.with_extension("pub");
    fs::write(&public_path, format!("{public}\n")).map_err(|e| io_error(&public_path, e))?;
    Ok(public)
}

/// Signs `archive` with the secret key in `key_file`; writes and returns
/// `ARCHIVE.sig`.
pub fn sign(archive: &Path, key_file: &Path) -> Result<PathBuf, SignError> {
    let text = fs::read_to_string(key_file).map_err(|e| io_error(key_file, e))?;
    let seed = unhex::<32>(text.trim()).ok_or_else(|| SignError::BadKey {
        what: key_file.display().to_string(),
    })?;
    let secret = SigningKey::from_bytes(&seed);
    let digest = sha256_file(archive)?;
    let signature = Signature {
        sha256: hex::encode(digest),
        key: hex::encode(secret.verifying_key().as_bytes()),
        signature: hex::encode(secret.sign(&message(&digest)).to_bytes()),
    };
    let path = signature_path(archive);
    let text = toml::to_string(&signature).map_err(|e| SignError::BadSignatureFile {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    fs::write(&path, text).map_err(|e| io_error(&path, e))?;
    Ok(path)
}

/// Checks `archive` against its `ARCHIVE.sig`: the digest, the signer
/// among `trusted` (public keys, hex), the signature. Returns the
/// signer's key.
pub fn verify(archive: &Path, trusted: &[String]) -> Result<String, SignError> {
    let path = signature_path(archive);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(SignError::Unsigned(path));
        }
        Err(error) => return Err(io_error(&path, error)),
    };
    let bad = |problem: String| SignError::BadSignatureFile {
        path: path.clone(),
        problem,
    };
    let signature: Signature = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let digest = sha256_file(archive)?;
    let signed =
        unhex::<32>(&signature.sha256).ok_or_else(|| bad("sha256: not 64 hex digits".into()))?;
    if signed != digest {
        return Err(SignError::Digest {
            actual: hex::encode(digest),
            signed: signature.sha256,
        });
    }
    let key = signature.key.to_ascii_lowercase();
    if !trusted
        .iter()
        .any(|trusted| trusted.eq_ignore_ascii_case(&key))
    {
        return Err(SignError::Untrusted { key });
    }
    let public = unhex::<32>(&key)
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| SignError::BadKey {
            what: format!("{} key", path.display()),
        })?;
    let bytes = unhex::<64>(&signature.signature)
        .ok_or_else(|| bad("signature: not 128 hex digits".into()))?;
    public
        .verify(
            &message(&digest),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| SignError::Invalid { key: key.clone() })?;
    Ok(key)
}

/// Checks a public key given in corral.toml or on the command line.
pub fn check_public_key(key: &str) -> Result<String, SignError> {
    crate::config::keys::check_public_key(key).map_err(|bad| SignError::BadKey {
        what: format!("public key {:?}", bad.key),
    })
}

/// The SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], SignError> {
    let file = fs::File::open(path).map_err(|e| io_error(path, e))?;
    crate::process::integrity::file_digest(&file).map_err(|e| io_error(path, e))
}

fn message(digest: &[u8; 32]) -> Vec<u8> {
    [CONTEXT, digest].concat()
}

fn write_private(path: &Path, text: &str) -> Result<(), SignError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: io::Error) -> SignError {
    SignError::Io {
        path: path.to_owned(),
        source,
    }
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_says_which_check_failed() {
        let dir = tempfile::tempdir().unwrap();
        let public = keygen(&dir.path().join("author")).unwrap();
        let other = keygen(&dir.path().join("other")).unwrap();
        let trusted = std::slice::from_ref(&public);
        let archive = dir.path().join("p.tar.gz");
        fs::write(&archive, b"the archive").unwrap();
        assert!(matches!(
            verify(&archive, trusted),
            Err(SignError::Unsigned(_))
        ));
        sign(&archive, &dir.path().join("author.key")).unwrap();
        assert_eq!(verify(&archive, trusted).unwrap(), public);
        let untrusted = verify(&archive, &[other]).unwrap_err();
        assert!(
            untrusted.to_string().contains("not in trusted_keys"),
            "{untrusted}"
        );

        fs::write(&archive, b"the archivE").unwrap();
        let tampered = verify(&archive, trusted).unwrap_err();
        assert!(
            tampered.to_string().starts_with("sha256 check failed"),
            "{tampered}"
        );

        // A forged file: the right digest, a signature by nobody.
        fs::write(&archive, b"the archive").unwrap();
        let sig = signature_path(&archive);
        let mut forged: Signature = toml::from_str(&fs::read_to_string(&sig).unwrap()).unwrap();
        forged.signature = "00".repeat(64);
        fs::write(&sig, toml::to_string(&forged).unwrap()).unwrap();
        let invalid = verify(&archive, trusted).unwrap_err();
        assert!(
            invalid.to_string().contains("does not match the archive"),
            "{invalid}"
        );

        fs::write(&sig, "sha256 = 1").unwrap();
        let broken = verify(&archive, trusted).unwrap_err();
        assert!(
            broken.to_string().contains("not a signature file"),
            "{broken}"
        );
        assert!(
            keygen(&dir.path().join("author")).is_err(),
            "never overwrites a key"
        );
        assert!(check_public_key("xyz").is_err());
    }
}
