//! `@NAME@`: a corral plugin.
//!
//! | method  | input      | reply                           |
//! |---------|------------|---------------------------------|
//! | `greet` | a name     | `GREETING, NAME!`               |
//!
//! `GREETING` is the `greeting` setting: `[config]` in plugin.toml, which
//! an admin may override in corral.toml (`[plugins.@NAME@.config]`).

use corral_plugin_api::{Host, LogLevel, Plugin, PluginError, export_plugin};
use serde::Deserialize;

/// The plugin's settings, as in plugin.toml's `[config]`.
#[derive(Deserialize)]
struct Settings {
    greeting: String,
}

/// One instance runs in its own sandboxed worker process.
#[derive(Default)]
pub struct @TYPE@ {
    greeting: String,
}

impl Plugin for @TYPE@ {
    fn init(&mut self, host: &Host) -> Result<(), PluginError> {
        self.greeting = host.config::<Settings>()?.greeting;
        host.log(LogLevel::Info, "@NAME@ ready");
        Ok(())
    }

    fn call(&mut self, _host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "greet" => {
                let name = std::str::from_utf8(input)
                    .map_err(|_| PluginError::new("greet: the name is not UTF-8"))?;
                Ok(format!("{}, {name}!", self.greeting).into_bytes())
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

export_plugin!(@TYPE@);

#[cfg(test)]
mod tests {
    use super::*;
    use corral_plugin_api::testing::TestHost;

    #[test]
    fn greets_with_the_configured_greeting() {
        let mut plugin = @TYPE@::default();
        TestHost::with_config("greeting = \"Hi\"").run(|host| {
            plugin.init(host).expect("init");
            assert_eq!(plugin.call(host, "greet", b"corral").unwrap(), b"Hi, corral!");
            let error = plugin.call(host, "nope", b"").unwrap_err();
            assert!(error.is_unknown_method(), "{error}");
        });
    }
}
