//! `corral.toml`: any text parses to settings or to an error naming the
//! file; never a panic.
#![no_main]

use corral::settings::Settings;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(error) = Settings::parse(text, Path::new("/fuzz/corral.toml")) {
            assert!(
                error.to_string().starts_with("/fuzz/corral.toml"),
                "{error}"
            );
        }
    }
});
