//! `hello`: the example corral plugin.
//!
//! | method  | input                         | reply                    |
//! |---------|-------------------------------|--------------------------|
//! | `echo`  | any bytes                     | the same bytes           |
//! | `upper` | UTF-8 text                    | the text in upper case   |
//! | `sum`   | integers separated by spaces  | their sum, as text       |
//! | `sleep` | milliseconds, as text         | `slept N ms`             |
//! | `crash` | ignored                       | never: aborts the worker |
//! | `config`| ignored                       | its settings, TOML text  |
//!
//! `crash` and `sleep` exist so tests and the demo can show what the
//! supervisor does when a plugin dies or hangs.

use corral_plugin_api::{Host, LogLevel, Output, Plugin, PluginError, export_plugin};
use std::time::Duration;

/// The plugin; it keeps no state.
#[derive(Default)]
pub struct Hello;

impl Plugin for Hello {
    fn init(&mut self, host: &Host) -> Result<(), PluginError> {
        host.log(LogLevel::Debug, "hello ready");
        Ok(())
    }

    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "echo" => Ok(input.to_vec()),
            "upper" => Ok(text(input)?.to_uppercase().into_bytes()),
            "sum" => sum(text(input)?).map(|total| total.to_string().into_bytes()),
            "sleep" => {
                let ms: u64 = text(input)?
                    .trim()
                    .parse()
                    .map_err(|_| PluginError::new("sleep: expected milliseconds as text"))?;
                std::thread::sleep(Duration::from_millis(ms));
                Ok(format!("slept {ms} ms").into_bytes())
            }
            "config" => Ok(host.config_toml()?.into_bytes()),
            "crash" => {
                host.log(LogLevel::Warn, "crash requested: aborting");
                std::process::abort()
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }

    /// What corral calls: `echo` writes its reply once, where the worker
    /// says (on a direct channel, shared memory the host app reads in
    /// place); the other methods go through `call`.
    fn call_into(
        &mut self,
        host: &Host,
        method: &str,
        input: &[u8],
        out: &mut Output<'_>,
    ) -> Result<(), PluginError> {
        match method {
            "echo" => out.write(input),
            _ => out.write(&self.call(host, method, input)?),
        }
    }
}

fn text(input: &[u8]) -> Result<&str, PluginError> {
    std::str::from_utf8(input).map_err(|_| PluginError::new("input is not UTF-8"))
}

fn sum(text: &str) -> Result<i64, PluginError> {
    text.split_whitespace().try_fold(0i64, |total, word| {
        let n: i64 = word
            .parse()
            .map_err(|_| PluginError::new(format!("sum: `{word}` is not an integer")))?;
        total
            .checked_add(n)
            .ok_or_else(|| PluginError::new("sum: overflow"))
    })
}

export_plugin!(Hello);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_integers() {
        assert_eq!(sum("1 2 -3 40"), Ok(40));
        assert_eq!(sum(""), Ok(0));
        assert!(sum("1 x").unwrap_err().message().contains("`x`"));
        assert!(sum(&format!("{} 1", i64::MAX)).is_err());
    }
}
