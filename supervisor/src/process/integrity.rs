//! The integrity check of plugin files: the SHA-256 of an entry, read
//! from the open file that is then handed to the worker, against the
//! manifest's `sha256` (so nothing can be swapped in between).

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An entry file whose content is not what its manifest's `sha256` says.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntegrityError {
    /// The file could not be read.
    #[error("entry {}: cannot read it to check its sha256: {source}", entry.display())]
    Read {
        /// The entry, as the manifest writes it.
        entry: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The hashes differ.
    #[error("{}", mismatch("plugin.toml", expected, entry, actual))]
    Mismatch {
        /// The entry, as the manifest writes it.
        entry: PathBuf,
        /// What the manifest says.
        expected: String,
        /// What the file is.
        actual: String,
    },
}

/// Checks the open entry `file` (`entry` as the manifest writes it)
/// against the manifest's `expected` SHA-256 (hex, either case), reading
/// it with `pread` so that its offset is untouched: hash the same open
/// file that is then handed to the worker, and a swap between the check
/// and the load is impossible. Returns the hash.
pub(crate) fn verify_entry(
    file: &File,
    entry: &Path,
    expected: &str,
) -> Result<String, IntegrityError> {
    let actual = file_sha256(file).map_err(|source| IntegrityError::Read {
        entry: entry.to_owned(),
        source,
    })?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(actual)
    } else {
        Err(IntegrityError::Mismatch {
            entry: entry.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// How a mismatch is told: which file says what, and what the entry is.
pub(crate) fn mismatch(manifest: &str, expected: &str, entry: &Path, actual: &str) -> String {
    format!(
        "sha256 mismatch: {manifest} says {expected}, {} is {actual}",
        entry.display()
    )
}

/// The SHA-256 of all of `file`, as lowercase hex (see [`file_digest`]).
pub(crate) fn file_sha256(file: &File) -> io::Result<String> {
    file_digest(file).map(hex::encode)
}

/// The SHA-256 of all of `file`. Reads with `pread`, so the file's offset
/// is left where it was (the file can then be handed to a worker as it
/// is).
pub(crate) fn file_digest(file: &File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    let mut offset = 0;
    loop {
        let read = match file.read_at(&mut buffer, offset) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;

    const SHA256_HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    /// The SHA-256 of the file at `path`, as lowercase hex.
    fn entry_sha256(path: &Path) -> io::Result<String> {
        file_sha256(&File::open(path)?)
    }

    #[test]
    fn hashes_are_lowercase_hex_and_leave_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        assert_eq!(entry_sha256(&path).unwrap(), SHA256_HELLO);
        let mut file = File::open(&path).unwrap();
        let mut first = [0; 2];
        file.read_exact(&mut first).unwrap();
        assert_eq!(
            verify_entry(&file, Path::new("f"), &SHA256_HELLO.to_ascii_uppercase()).unwrap(),
            SHA256_HELLO
        );
        let mut rest = String::new();
        file.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "llo", "the offset is where it was");
        let error = verify_entry(&file, Path::new("f"), &"0".repeat(64)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "sha256 mismatch: plugin.toml says {}, f is {SHA256_HELLO}",
                "0".repeat(64)
            )
        );
    }
}
