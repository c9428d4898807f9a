//! `greeter`: calls into its dependency `hello` through the host. Needs
//! `[dependencies] hello = "^1"` and `host = ["call:hello"]`.
//!
//! | method  | input        | reply                                      |
//! |---------|--------------|--------------------------------------------|
//! | `greet` | a name       | `HELLO, NAME!` (hello's `upper` of it)     |
//! | `relay` | `PLUGIN METHOD INPUT` | what that plugin answers (tests call into any plugin the manifest allows) |

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};

/// The plugin; it keeps no state.
#[derive(Default)]
pub struct Greeter;

impl Plugin for Greeter {
    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let input =
            std::str::from_utf8(input).map_err(|_| PluginError::new("input is not UTF-8"))?;
        match method {
            "greet" => {
                let upper = host.call("hello", "upper", format!("hello, {input}").as_bytes())?;
                let mut reply = upper;
                reply.push(b'!');
                Ok(reply)
            }
            "relay" => {
                let mut parts = input.splitn(3, ' ');
                let (Some(plugin), Some(method)) = (parts.next(), parts.next()) else {
                    return Err(PluginError::new("relay: expected PLUGIN METHOD [INPUT]"));
                };
                Ok(host.call(plugin, method, parts.next().unwrap_or("").as_bytes())?)
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

export_plugin!(Greeter);
