//! `tally`: counts what is published on the topics its manifest subscribes
//! to (`[events] subscribe = ["ticks"]`), in memory.
//!
//! | method  | input | reply                                   |
//! |---------|-------|-----------------------------------------|
//! | `count` | none  | how many events arrived, as text        |
//! | `last`  | none  | `TOPIC PAYLOAD` of the latest event     |

use corral_plugin_api::{Host, LogLevel, Plugin, PluginError, export_plugin};

/// Events seen since the worker started.
#[derive(Default)]
pub struct Tally {
    count: u64,
    last: Vec<u8>,
}

impl Plugin for Tally {
    fn call(&mut self, _host: &Host, method: &str, _input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "count" => Ok(self.count.to_string().into_bytes()),
            "last" => Ok(self.last.clone()),
            other => Err(PluginError::unknown_method(other)),
        }
    }

    fn on_event(&mut self, host: &Host, topic: &str, payload: &[u8]) -> Result<(), PluginError> {
        self.count += 1;
        self.last = [topic.as_bytes(), b" ", payload].concat();
        host.log(
            LogLevel::Info,
            &format!(
                "event {} on {topic}: {}",
                self.count,
                String::from_utf8_lossy(payload)
            ),
        );
        Ok(())
    }
}

export_plugin!(Tally);
