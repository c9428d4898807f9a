//! `counter`: a counter in the host's key-value storage, so it survives
//! worker crashes and supervisor restarts. Needs `host = ["kv"]`.
//!
//! | method  | input                    | reply                          |
//! |---------|--------------------------|--------------------------------|
//! | `incr`  | a step as text (or none) | the new value of `NAME`        |
//! | `get`   | a counter name (or none) | its value (0 when never set)   |
//! | `reset` | a counter name (or none) | `deleted` or `absent`          |
//! | `list`  | a prefix (or none)       | counter names, one per line    |
//!
//! `incr` counts the counter named `count`; `incr` with `NAME:STEP` counts
//! `NAME`.

use corral_plugin_api::{Host, LogLevel, Plugin, PluginError, export_plugin};

/// The plugin; its state is in the host.
#[derive(Default)]
pub struct Counter;

/// The counter used when the input names none.
const DEFAULT: &str = "count";

impl Plugin for Counter {
    /// Host services work in `init` too: say where the count stands.
    fn init(&mut self, host: &Host) -> Result<(), PluginError> {
        match read(host, DEFAULT) {
            Ok(count) => host.log(LogLevel::Info, &format!("counter starts at {count}")),
            // Calls will say it too; the plugin still starts.
            Err(error) => host.log(LogLevel::Warn, &format!("cannot read the count: {error}")),
        }
        Ok(())
    }

    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let input =
            std::str::from_utf8(input).map_err(|_| PluginError::new("input is not UTF-8"))?;
        match method {
            "incr" => {
                let (name, step) = match input.split_once(':') {
                    Some((name, step)) => (name, step),
                    None => (DEFAULT, input),
                };
                let step: i64 = match step.trim() {
                    "" => 1,
                    step => step.parse().map_err(|_| {
                        PluginError::new(format!("incr: `{step}` is not an integer"))
                    })?,
                };
                let value = read(host, name)?
                    .checked_add(step)
                    .ok_or_else(|| PluginError::new("incr: overflow"))?;
                host.kv_put(name, value.to_string().as_bytes())?;
                Ok(value.to_string().into_bytes())
            }
            "get" => Ok(read(host, name_or_default(input))?.to_string().into_bytes()),
            "reset" => Ok(if host.kv_delete(name_or_default(input))? {
                b"deleted".to_vec()
            } else {
                b"absent".to_vec()
            }),
            "list" => Ok(host.kv_list(input)?.join("\n").into_bytes()),
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

fn name_or_default(input: &str) -> &str {
    match input.trim() {
        "" => DEFAULT,
        name => name,
    }
}

/// The value of counter `name`, 0 when it was never set.
fn read(host: &Host, name: &str) -> Result<i64, PluginError> {
    match host.kv_get(name)? {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| PluginError::new(format!("counter `{name}` holds no integer"))),
    }
}

export_plugin!(Counter);
