//! Faults a test injects into a real supervisor's workers, and a
//! well-behaved neighbour that keeps calling throughout.

use super::Corral;
use super::process::{is_alive, send_signal};
use corral_plugin_api::wire::Fault;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

impl Corral {
    /// Calls `plugin`'s `echo` in a loop on a thread of its own, counting
    /// calls and failures, until [`Neighbour::finish`].
    pub fn keep_calling(&self, plugin: &str) -> Neighbour {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicUsize::new(0));
        let mut client = self.client();
        let plugin = plugin.to_owned();
        let thread = {
            let (stop, errors) = (stop.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut calls = 0;
                loop {
                    match client.call(&plugin, "echo", b"ping") {
                        Ok(reply) if reply == b"ping" => {}
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    calls += 1;
                    if stop.load(Ordering::Relaxed) {
                        return calls;
                    }
                }
            })
        };
        Neighbour {
            stop,
            errors,
            thread: Some(thread),
        }
    }

    /// The pid of `name`'s serving worker; panics when it has none.
    pub fn worker_pid(&self, name: &str) -> u32 {
        self.plugin(name)
            .pid
            .unwrap_or_else(|| panic!("plugin {name} has no worker\n{}", self.log()))
    }

    /// Fault: SIGKILLs `name`'s serving worker, as a crash would end it;
    /// returns its pid. Its calls in flight fail with `crashed`, and its
    /// restart policy decides what follows.
    pub fn kill_worker(&self, name: &str) -> u32 {
        let pid = self.worker_pid(name);
        send_signal(pid, libc::SIGKILL);
        pid
    }

    /// Fault: `name`'s worker aborts when its next call arrives, with that
    /// call in flight.
    pub fn crash_on_next_call(&self, name: &str) {
        self.inject(name, Fault::CrashOnNextCall);
    }

    /// Fault: `name`'s worker allocates memory until its memory limit
    /// (`[limits] memory_mb`) refuses more, and dies of it.
    pub fn fill_memory(&self, name: &str) {
        self.inject(name, Fault::FillMemory);
    }

    fn inject(&self, name: &str, fault: Fault) {
        self.client()
            .inject(name, fault)
            .unwrap_or_else(|e| panic!("inject {fault:?} into {name}: {e}\n{}", self.log()));
    }

    /// Fault: stops (SIGSTOP) `name`'s worker, as a hang would look: its
    /// calls wait until their deadline, which kills it. It continues when
    /// the [`Frozen`] is dropped, if it still lives.
    pub fn freeze(&self, name: &str) -> Frozen {
        let pid = self.worker_pid(name);
        send_signal(pid, libc::SIGSTOP);
        Frozen { pid }
    }

    /// Fault: a host app that sends a call of `method` on `plugin` and
    /// hangs up before the reply, as a crashing host app would. Returns
    /// once the call is sent and the connection closed.
    pub fn hang_up_during_call(&self, plugin: &str, method: &str, input: &[u8]) {
        use corral_plugin_api::wire::{
            self as wire, ClientHello, PROTOCOL_VERSION, Request, RequestBody,
        };
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let mut frames = Vec::new();
        let hello = ClientHello {
            protocol: PROTOCOL_VERSION,
            client: "hang-up".into(),
            shared_payloads: false,
        };
        let call = Request {
            id: 1,
            body: RequestBody::Call {
                plugin: plugin.to_owned(),
                method: method.to_owned(),
                input: input.to_vec(),
                timeout_ms: 0,
            },
        };
        wire::encode_frame(&hello, &mut frames, wire::DEFAULT_MAX_FRAME).expect("hello frame");
        wire::encode_frame(&call, &mut frames, wire::DEFAULT_MAX_FRAME).expect("call frame");
        stream.write_all(&frames).expect("send the call");
        // The server's hello, so that the call was read, then hang up.
        let mut header = [0; wire::HEADER_LEN];
        let _ = stream.read_exact(&mut header);
    }
}

/// A plugin being called in the background by [`Corral::keep_calling`].
pub struct Neighbour {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
    thread: Option<JoinHandle<usize>>,
}

impl Neighbour {
    /// Stops calling; panics unless the neighbour answered every call (and
    /// was called at least once).
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        let calls = thread.join().expect("neighbour thread");
        let errors = self.errors.load(Ordering::Relaxed);
        assert!(calls > 0, "the neighbour was never called");
        assert_eq!(errors, 0, "the neighbour failed {errors} of {calls} calls");
    }
}

impl Drop for Neighbour {
    /// A test that fails before [`finish`](Self::finish) stops the calls
    /// too, instead of leaving them looping on a dead supervisor.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A worker stopped by [`Corral::freeze`]; dropping it continues the
/// worker.
pub struct Frozen {
    pid: u32,
}

impl Frozen {
    /// The frozen worker's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if is_alive(self.pid) {
            send_signal(self.pid, libc::SIGCONT);
        }
    }
}
