//! `counter`: a counter in the host's key-value storage, so it survives
//! worker crashes and supervisor restarts. Needs `host = ["kv"]`.
//!
//! | method  | input                    | reply                          |
//! |---------|--------------------------|--------------------------------|
//! | `incr`  | a step as text (or none) | the new value of `NAME`        |
//! | `get`   | a counter name (or none) | its value (0 when never set)   |
//! | `reset` | a counter name (or none) | `deleted` or `absent`          |
//! | `list`  | a prefix (or none)       | counter names, one per line    |
//! | `page`  | `PREFIX|START|LIMIT`     | one page of names, then `next: NAME` when more follow |
//! | `move`  | `FROM:TO:AMOUNT`         | `FROM=N TO=M`, both written together (a batch) |
//!
//! `incr` counts the counter named `count`; `incr` with `NAME:STEP` counts
//! `NAME`.

use corral_plugin_api::kv::KvWrite;
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
            "page" => {
                let mut parts = input.splitn(3, '|');
                let (prefix, start) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let limit = parts.next().unwrap_or("100").trim().parse().map_err(|_| {
                    PluginError::new("page: expected PREFIX|START|LIMIT, LIMIT a number")
                })?;
                let page = host.kv_list_page(prefix, start, limit)?;
                let mut lines = page.keys;
                lines.extend(page.next.map(|next| format!("next: {next}")));
                Ok(lines.join("\n").into_bytes())
            }
            "move" => {
                let mut parts = input.splitn(3, ':');
                let (Some(from), Some(to), Some(amount)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(PluginError::new("move: expected FROM:TO:AMOUNT"));
                };
                if from == to {
                    return Err(PluginError::new("move: FROM and TO are the same counter"));
                }
                let amount: i64 = amount
                    .trim()
                    .parse()
                    .map_err(|_| PluginError::new(format!("move: `{amount}` is not an integer")))?;
                let overflow = || PluginError::new("move: overflow");
                let left = read(host, from)?.checked_sub(amount).ok_or_else(overflow)?;
                let right = read(host, to)?.checked_add(amount).ok_or_else(overflow)?;
                let (left_text, right_text) = (left.to_string(), right.to_string());
                host.kv_batch(&[
                    KvWrite::Put(from, left_text.as_bytes()),
                    KvWrite::Put(to, right_text.as_bytes()),
                ])?;
                Ok(format!("{from}={left} {to}={right}").into_bytes())
            }
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
