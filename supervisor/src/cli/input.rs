//! A command's input bytes (`corral call`, `publish`, `profile --call`):
//! the argument as given, or stdin for `-`.

use anyhow::{Context, Result};
use std::io::Read;

/// A command's input bytes: the argument, stdin for `-`, or nothing.
pub(super) fn read_data(data: Option<&str>) -> Result<Vec<u8>> {
    Ok(match data {
        Some("-") => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("cannot read stdin")?;
            input
        }
        Some(data) => data.as_bytes().to_vec(),
        None => Vec::new(),
    })
}
