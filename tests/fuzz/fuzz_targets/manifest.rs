//! `plugin.toml`: any text parses to a manifest or to an error naming the
//! file; never a panic.
#![no_main]

use corral_plugin_api::manifest::Manifest;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(error) = Manifest::parse(text, Path::new("fuzz/plugin.toml")) {
            assert!(error.to_string().starts_with("fuzz/plugin.toml"), "{error}");
        }
    }
});
