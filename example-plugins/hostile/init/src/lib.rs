//! `hostile-init`: a plugin whose shared-library constructor runs at
//! `dlopen`, before any plugin API call, and tries to run a shell.
//! The worker's sandbox is in force before `dlopen`, so this never gets
//! far: for corral's tests only.

use corral_plugin_api::{Host, Plugin, PluginError, export_plugin};

/// Runs when the library is loaded.
extern "C" fn escape() {
    let argv = [
        c"/bin/sh".as_ptr(),
        c"-c".as_ptr(),
        c"id".as_ptr(),
        std::ptr::null(),
    ];
    // SAFETY: NUL-terminated strings and a NULL-terminated argv.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
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
