//! The worker on its own: `corral-worker` started by the test with a
//! socketpair on fd 3, spoken to frame by frame, as the supervisor does.

use corral_plugin_api::ErrorKind;
use corral_plugin_api::wire::{
    self, Arena, Call, FromWorker, Hello, Outcome, PROTOCOL_VERSION, PeerArena, PluginKind, Slot,
    ToWorker,
};
use corral_tests::artifact;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAX: u32 = wire::DEFAULT_MAX_FRAME;

/// A worker process and the supervisor's end of its channel.
struct Worker {
    child: Child,
    channel: UnixStream,
    buf: Vec<u8>,
}

impl Worker {
    fn start() -> Self {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let fd = theirs.as_raw_fd();
        let mut command = Command::new(artifact("corral-worker"));
        command.stdin(Stdio::null()).stderr(Stdio::piped());
        // SAFETY: dup2 is async-signal-safe; it puts the channel on fd 3
        // without FD_CLOEXEC, as the supervisor does.
        unsafe {
            command.pre_exec(move || match libc::dup2(fd, 3) {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        let child = command.spawn().unwrap();
        Worker {
            child,
            channel: ours,
            buf: Vec::new(),
        }
    }

    fn send<T: serde::Serialize>(&mut self, message: &T) {
        let mut buf = Vec::new();
        wire::write_frame(&mut self.channel, message, &mut buf, MAX).unwrap();
    }

    fn recv(&mut self) -> Option<FromWorker> {
        match wire::read_frame(&mut self.channel, &mut self.buf, MAX) {
            Ok(true) => Some(wire::decode_body(&self.buf).unwrap()),
            Ok(false) => None,
            Err(error) => panic!("reading from the worker: {error}"),
        }
    }

    fn hello(&mut self, entry: &str) -> FromWorker {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            plugin: "hello".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Native,
            wasi: false,
            dir: "/".into(),
            entry: entry.into(),
            entry_fd: None,
            max_frame: MAX,
            read: Vec::new(),
            write: Vec::new(),
            network: false,
            memory_bytes: 64 << 20,
            cache_dir: None,
            wasm_fuel: 0,
            standby: false,
            config: String::new(),
            debug: false,
            syscalls: Vec::new(),
            profile: false,
            listener_fd: None,
            recording: corral_plugin_api::wire::Recording::default(),
            methods: Vec::new(),
        };
        self.send(&hello);
        self.recv().expect("an answer to hello")
    }

    /// Waits for the worker to exit; returns its exit code and stderr.
    fn exit(mut self) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
                return (status.code(), stderr);
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "worker did not exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hello_lib() -> String {
    artifact("libhello.so").display().to_string()
}

fn call(id: u64, method: &str, input: &[u8]) -> ToWorker {
    ToWorker::Call(Call {
        id,
        method: method.into(),
        input: input.to_vec(),
        deadline_ms: 1000,
    })
}

#[test]
fn worker_answers_ready_pings_and_pipelined_calls_then_shuts_down() {
    let mut worker = Worker::start();
    match worker.hello(&hello_lib()) {
        FromWorker::Ready(ready) => {
            assert_eq!(
                (
                    ready.protocol,
                    ready.plugin.as_str(),
                    ready.version.as_str()
                ),
                (PROTOCOL_VERSION, "hello", "1.0.0")
            );
        }
        other => panic!("expected Ready, got {other:?}"),
    }
    worker.send(&ToWorker::Ping { nonce: 42 });
    assert_eq!(worker.recv(), Some(FromWorker::Pong { nonce: 42 }));

    // Several calls in flight at once; each reply carries its id.
    for id in 1..=20u64 {
        worker.send(&call(id, "echo", format!("call {id}").as_bytes()));
    }
    worker.send(&call(21, "nope", b""));
    for id in 1..=20u64 {
        let expected = FromWorker::Reply {
            id,
            outcome: Outcome::Ok(format!("call {id}").into_bytes()),
        };
        assert_eq!(worker.recv(), Some(expected));
    }
    match worker.recv() {
        Some(FromWorker::Reply {
            id: 21,
            outcome: Outcome::Err(error),
        }) => assert_eq!(error.kind, ErrorKind::UnknownMethod),
        other => panic!("expected an unknown-method reply, got {other:?}"),
    }

    worker.send(&ToWorker::Shutdown);
    assert_eq!(worker.exit().0, Some(0));
}

#[test]
fn worker_exits_cleanly_when_the_supervisor_goes_away() {
    let mut worker = Worker::start();
    assert!(matches!(worker.hello(&hello_lib()), FromWorker::Ready(_)));
    worker.channel.shutdown(std::net::Shutdown::Both).unwrap();
    assert_eq!(worker.exit().0, Some(0));
}

#[test]
fn worker_reports_a_library_it_cannot_load_and_exits_3() {
    let mut worker = Worker::start();
    match worker.hello("/nonexistent/libnothing.so") {
        FromWorker::Failed { message } => assert!(
            message.contains("cannot load /nonexistent/libnothing.so"),
            "{message}"
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
    let (code, stderr) = worker.exit();
    assert_eq!(code, Some(3), "{stderr}");
}

#[test]
fn worker_refuses_another_protocol_version_naming_both() {
    let mut worker = Worker::start();
    worker.send(&(PROTOCOL_VERSION + 1, "a hello from the future"));
    assert_eq!(worker.recv(), None, "no answer to a foreign hello");
    let (code, stderr) = worker.exit();
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!(
            "supervisor speaks protocol {}, this worker speaks {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        )),
        "{stderr}"
    );
}

#[test]
fn worker_started_by_hand_says_how_it_is_meant_to_run() {
    let out = Command::new(artifact("corral-worker"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fd 3 is not an open socket"), "{stderr}");
    assert!(stderr.contains("started by `corral serve`"), "{stderr}");
}

/// A direct channel attached to `worker`: the host app's end, reading the
/// fds that come with frames (arena segments).
struct DirectEnd {
    socket: UnixStream,
    frames: wire::FrameBuffer,
    buf: Vec<u8>,
}

impl DirectEnd {
    fn attach(worker: &mut Worker) -> Self {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        wire::write_message_fd(
            worker.channel.as_fd(),
            &ToWorker::Attach,
            Some(theirs.as_fd()),
            &mut buf,
            MAX,
        )
        .unwrap();
        let mut frames = wire::FrameBuffer::new(MAX);
        frames.accept_fds();
        DirectEnd {
            socket: ours,
            frames,
            buf,
        }
    }

    fn send(&mut self, message: &ToWorker, fd: Option<BorrowedFd<'_>>) {
        wire::write_message_fd(self.socket.as_fd(), message, fd, &mut self.buf, MAX).unwrap();
    }

    fn recv(&mut self) -> (FromWorker, Option<OwnedFd>) {
        let mut frame = self
            .frames
            .read_frame(self.socket.as_fd())
            .unwrap()
            .unwrap();
        let message = wire::decode_body(self.frames.body(&frame)).unwrap();
        (message, frame.fd.take())
    }
}

fn call_in(id: u64, slot: Slot) -> ToWorker {
    ToWorker::CallIn {
        call: Call {
            id,
            method: "echo".into(),
            input: Vec::new(),
            deadline_ms: 1000,
        },
        slot,
    }
}

#[test]
fn direct_arenas_lend_reply_slots_until_released_and_refuse_slots_never_sent() {
    let mut worker = Worker::start();
    assert!(matches!(worker.hello(&hello_lib()), FromWorker::Ready(_)));
    let mut direct = DirectEnd::attach(&mut worker);
    let mut ours = Arena::new(64 << 20);
    let mut theirs = PeerArena::new(64 << 20);
    let len = 1 << 20;

    // A slot in a segment the worker never got: that call fails, the
    // channel serves on.
    let never = Slot {
        segment: 3,
        offset: 0,
        len: 10,
    };
    direct.send(&call_in(1, never), None);
    match direct.recv() {
        (
            FromWorker::Reply {
                id: 1,
                outcome: Outcome::Err(error),
            },
            None,
        ) => {
            assert_eq!(error.kind, ErrorKind::BadRequest, "{error}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Input in our arena, its segment sent with the first call naming it;
    // the reply in the worker's, its segment sent with the first reply.
    let mut replies = Vec::new();
    for id in 2..5u64 {
        let input = ours.alloc(len).unwrap();
        ours.bytes_mut(input).unwrap().fill(id.to_le_bytes()[0]);
        let fd = ours.announce(input);
        direct.send(&call_in(id, input), fd);
        let (reply, fd) = direct.recv();
        let FromWorker::ReplyIn { id: got, slot } = reply else {
            panic!("expected a reply in the arena, got {reply:?}");
        };
        assert_eq!(got, id);
        let new = replies
            .iter()
            .all(|seen: &Slot| seen.segment < slot.segment);
        assert_eq!(
            fd.is_some(),
            new,
            "a segment comes with its first slot: {slot:?}"
        );
        if let Some(fd) = fd {
            theirs.adopt(fd).unwrap();
        }
        ours.free(input);
        replies.push(slot);
    }
    // Unreleased replies are lent: none shares bytes with another, and
    // each still holds its call's bytes.
    for (index, slot) in replies.iter().enumerate() {
        let view = theirs.view(*slot).unwrap();
        assert!(
            view.iter().all(|&b| usize::from(b) == index + 2),
            "reply {index}"
        );
        for other in &replies[index + 1..] {
            assert!(
                slot.segment != other.segment
                    || slot.offset + slot.len <= other.offset
                    || other.offset + other.len <= slot.offset,
                "{slot:?} overlaps {other:?}"
            );
        }
    }
    // Released, the first slot is lent again.
    direct.send(
        &ToWorker::Release {
            slots: replies.clone(),
        },
        None,
    );
    let input = ours.alloc(len).unwrap();
    direct.send(&call_in(9, input), None);
    match direct.recv() {
        (FromWorker::ReplyIn { id: 9, slot }, None) => assert_eq!(slot, replies[0]),
        other => panic!("expected a reply in the released slot, got {other:?}"),
    }

    worker.send(&ToWorker::Shutdown);
    assert_eq!(direct.recv().0, FromWorker::Goodbye);
    assert_eq!(worker.exit().0, Some(0));
}
