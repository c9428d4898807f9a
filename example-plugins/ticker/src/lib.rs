//! `ticker`: publishes on the host's event bus. Needs `host = ["publish"]`.
//!
//! | method    | input       | reply                        |
//! |-----------|-------------|------------------------------|
//! | `tick`    | any bytes   | `published`: the bytes went out on topic `ticks` |
//! | `publish` | `TOPIC BYTES` | `published`: on any topic  |

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};

/// The plugin; it keeps no state.
#[derive(Default)]
pub struct Ticker;

impl Plugin for Ticker {
    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "tick" => host.publish("ticks", input)?,
            "publish" => {
                let split = input.iter().position(|&b| b == b' ').unwrap_or(input.len());
                let topic = std::str::from_utf8(&input[..split])
                    .map_err(|_| PluginError::new("topic is not UTF-8"))?;
                host.publish(topic, input.get(split + 1..).unwrap_or_default())?;
            }
            other => return Err(PluginError::unknown_method(other)),
        }
        Ok(b"published".to_vec())
    }
}

export_plugin!(Ticker);
