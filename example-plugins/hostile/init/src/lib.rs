//! `hostile-init`: a plugin whose shared-library constructor runs at
//! `dlopen`, before any plugin API call, and tries to open a TCP socket.
//! The worker's sandbox is in force before `dlopen`, so this never gets
//! far: for corral's tests only.

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};

/// Runs when the library is loaded.
extern "C" fn escape() {
    let _ = std::net::TcpStream::connect("127.0.0.1:9");
}

/// Registers `escape` as a constructor.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = escape;

/// Never gets to serve.
#[derive(Default)]
pub struct HostileInit;

impl Plugin for HostileInit {
    fn call(&mut self, _host: &Host, method: &str, _input: &[u8]) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::unknown_method(method))
    }
}

export_plugin!(HostileInit);
