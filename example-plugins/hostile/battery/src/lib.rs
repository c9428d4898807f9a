//! `hostile`: a plugin that misbehaves on purpose, for corral's tests.
//! Never install it anywhere else.
//!
//! | method          | what it does                                              |
//! |-----------------|-----------------------------------------------------------|
//! | `echo`          | returns its input (to show the plugin works between faults) |
//! | `sleep`         | sleeps as many milliseconds as the input says              |
//! | `garbage`       | writes an undecodable frame on the worker's channel (fd 3) |
//! | `oversize`      | writes a frame header announcing 4 GiB on fd 3             |
//! | `terabyte`      | writes a small frame whose bytes claim a 1 TiB length      |
//! | `unsealed-fd`   | sends a reply whose shared payload is an unsealed memfd    |
//! | `stray-fds`     | sends fds with frames that claim none                      |
//! | `exit`          | exits the worker with the code given as text               |
//! | `close-channel` | shuts the channel down, then hangs for a minute            |
//! | `panic`         | panics (caught at the ABI boundary)                        |
//! | `big`           | replies with as many bytes as the input says               |
//! | `spin`          | busy-loops forever                                         |
//! | `balloon`       | allocates and touches 1 MiB blocks until refused           |
//! | `balloon-abort` | allocates 1 GiB the infallible way (aborts when refused)   |
//! | `fds`           | opens file descriptors until refused                       |
//! | `write-file`    | writes 1 MiB blocks to the path given, up to 16 MiB         |
//! | `read-file`     | reads the path given                                       |
//! | `fs-ops`        | makes, lists, renames and removes files in the folder given |
//! | `exec`          | `execv("/bin/sh", ...)`                                    |
//! | `fork-bomb`     | forks in a loop                                            |
//! | `connect`       | connects to 127.0.0.1:9 over TCP                           |
//! | `ptrace`        | attaches to its parent (the supervisor)                    |
//! | `peek`          | reads its parent's memory with `process_vm_readv`          |
//! | `threads`       | starts as many threads as the input says, then joins them  |
//! | `segfault`      | writes to address 0                                        |
//! | `thread-bomb`   | starts hanging threads until refused                       |
//! | `spin-thread`   | busy-loops in a background thread, answers at once         |
//! | `flood`         | writes as many MiB of short lines to stderr as asked       |
//! | `sick`          | fails every health check from now on                       |
//! | `kv-fill`       | stores 64 KiB values in host storage until refused          |
//! | `kv-time`       | `OP N SIZE [BATCH]`: times N storage operations one by one (`put` of SIZE-byte values under `bench/{i}`, `get` of those, `batch` of BATCH puts under `batch/{i}`), after a few untimed gets; replies with each one's nanoseconds, little-endian u64s |
//! | `syscall`       | makes the syscall the input names, with integer arguments: `unshare 0x10000000` |
//! | `sigsys`        | tries to take over `SIGSYS` (`signal(SIGSYS, SIG_IGN)`)     |
//! | `int80`         | x86_64: a 32-bit syscall (`int 0x80`, getpid)               |
//!
//! Installed under a name starting with `hang-init`, its `init` never
//! returns.

use corral_plugin_api::kv::KvWrite;
use corral_plugin_api::{Host, Plugin, PluginError, export_plugin, wire};
use std::io::Write;
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The fd the worker serves its channel on.
const CHANNEL_FD: i32 = 3;

/// The plugin; its only state is whether it plays sick.
#[derive(Default)]
pub struct Hostile {
    sick: bool,
}

impl Plugin for Hostile {
    /// Installed under a name starting with `hang-init`, the plugin never
    /// finishes initializing (the supervisor's start deadline must act).
    fn init(&mut self, _host: &Host) -> Result<(), PluginError> {
        let name = std::env::var("CORRAL_PLUGIN").unwrap_or_default();
        if name.starts_with("hang-init") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(())
    }

    fn health(&mut self, _host: &Host) -> Result<(), PluginError> {
        if self.sick {
            Err(PluginError::new("playing sick"))
        } else {
            Ok(())
        }
    }

    fn call(&mut self, host: &Host, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "kv-fill" => {
                let block = vec![b'k'; 64 * 1024];
                for n in 0.. {
                    if let Err(error) = host.kv_put(&format!("fill-{n}"), &block) {
                        return Ok(format!(
                            "stored {n} blocks, then {}: {}",
                            error.kind, error.message
                        )
                        .into_bytes());
                    }
                }
                unreachable!("the quota ends the loop")
            }
            "kv-time" => kv_time(host, text(input)?),
            "sick" => {
                self.sick = true;
                Ok(b"sick".to_vec())
            }
            "syscall" => raw_syscall(text(input)?),
            "int80" => int80(),
            "sigsys" => {
                // SAFETY: SIG_IGN is a valid disposition; the filter
                // should never let this through.
                let old = unsafe { libc::signal(libc::SIGSYS, libc::SIG_IGN) };
                Ok(format!("signal(SIGSYS) returned {old}").into_bytes())
            }
            "echo" => Ok(input.to_vec()),
            "sleep" => {
                let ms = number(input)?;
                std::thread::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
                Ok(format!("slept {ms} ms").into_bytes())
            }
            "garbage" => {
                channel()
                    .write_all(&[8, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8])
                    .map_err(io)?;
                hang()
            }
            "terabyte" => {
                // A small Reply frame (variant 2, id 1, Ok) whose bytes
                // claim a length of 2^40: it must cost the supervisor
                // nothing but this worker.
                let mut body = vec![2u8, 1, 0, 0xfd];
                body.extend_from_slice(&(1u64 << 40).to_le_bytes());
                let len = u32::try_from(body.len()).map_err(|_| PluginError::new("too long"))?;
                let mut frame = len.to_le_bytes().to_vec();
                frame.extend_from_slice(&body);
                channel().write_all(&frame).map_err(io)?;
                hang()
            }
            "unsealed-fd" => {
                // Reply { id: 1, Ok(empty) } marked as carrying a shared
                // payload, with a memfd this worker could still truncate
                // under the reader's mapping.
                let frame = shared_frame(&[2, 1, 0, 0]);
                let memfd = memfd()?;
                wire::send_frame(fd3(), &frame, Some(memfd.as_fd())).map_err(io)?;
                hang()
            }
            "stray-fds" => {
                // Pong frames (variant 3), each with an fd no frame claims.
                let memfd = memfd()?;
                for nonce in 0..16u8 {
                    let frame = [2, 0, 0, 0, 3, nonce];
                    wire::send_frame(fd3(), &frame, Some(memfd.as_fd())).map_err(io)?;
                }
                hang()
            }
            "oversize" => {
                channel().write_all(&u32::MAX.to_le_bytes()).map_err(io)?;
                hang()
            }
            "exit" => std::process::exit(number(input)?),
            "close-channel" => {
                channel().shutdown(Shutdown::Both).map_err(io)?;
                hang()
            }
            "panic" => panic!("hostile panic"),
            "big" => Ok(vec![b'x'; usize::try_from(number(input)?).unwrap_or(0)]),
            "spin" => spin(),
            "balloon" => balloon(),
            "balloon-abort" => {
                // Infallible allocation: Rust's handler prints and aborts.
                let huge: Vec<u8> = Vec::with_capacity(1 << 30);
                Ok(format!("got {} bytes", huge.capacity()).into_bytes())
            }
            "fds" => fds(),
            "write-file" => write_file(input),
            "read-file" => std::fs::read(text(input)?).map_err(io),
            "fs-ops" => fs_ops(text(input)?).map_err(io),
            "exec" => {
                let argv = [
                    c"/bin/sh".as_ptr(),
                    c"-c".as_ptr(),
                    c"id".as_ptr(),
                    std::ptr::null(),
                ];
                // SAFETY: NUL-terminated strings and a NULL-terminated argv.
                let ret = unsafe { libc::execv(argv[0], argv.as_ptr()) };
                Ok(format!("execv returned {ret}").into_bytes())
            }
            "fork-bomb" => loop {
                // SAFETY: the child only loops on fork too; nothing is shared
                // that fork could corrupt.
                if unsafe { libc::fork() } < 0 {
                    return Err(PluginError::new("fork failed"));
                }
            },
            "connect" => {
                std::net::TcpStream::connect("127.0.0.1:9").map_err(io)?;
                Ok(b"connected".to_vec())
            }
            "ptrace" => {
                // SAFETY: ptrace(PTRACE_ATTACH) takes integers only.
                let ret = unsafe { libc::ptrace(libc::PTRACE_ATTACH, libc::getppid(), 0, 0) };
                Ok(format!("ptrace returned {ret}").into_bytes())
            }
            "peek" => peek_parent(),
            "threads" => threads(number(input)?),
            "segfault" => {
                // SAFETY: none; this write to address 0 is meant to crash.
                unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
                Ok(Vec::new())
            }
            "thread-bomb" => {
                let mut started = 0;
                loop {
                    match std::thread::Builder::new().spawn(|| hang()) {
                        Ok(_) => started += 1,
                        Err(error) => {
                            return Err(PluginError::new(format!(
                                "thread refused after {started} more: {error}"
                            )));
                        }
                    }
                }
            }
            "spin-thread" => {
                std::thread::spawn(|| spin());
                Ok(b"spinning in the background".to_vec())
            }
            "scribble" => {
                // Garbage on every socket but the supervisor channel: the
                // host apps' direct channels, this call's among them.
                let mut hit = 0;
                for fd in direct_sockets() {
                    let garbage = [8u8, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8];
                    // SAFETY: writes from a live buffer to an open fd.
                    unsafe { libc::write(fd, garbage.as_ptr().cast(), garbage.len()) };
                    hit += 1;
                }
                Ok(format!("scribbled on {hit} sockets").into_bytes())
            }
            "bad_slot" => {
                // A well-formed reply in a slot far outside any arena, on
                // every direct channel: a worker reaching past its memory.
                let reply = wire::FromWorker::ReplyIn {
                    id: 1,
                    slot: wire::Slot {
                        segment: 0,
                        offset: 1 << 40,
                        len: 4096,
                    },
                };
                let mut frame = Vec::new();
                wire::encode_frame(&reply, &mut frame, wire::DEFAULT_MAX_FRAME)
                    .map_err(|error| PluginError::new(error.to_string()))?;
                let mut hit = 0;
                for fd in direct_sockets() {
                    // SAFETY: writes from a live buffer to an open fd.
                    unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
                    hit += 1;
                }
                Ok(format!("sent a bad slot on {hit} sockets").into_bytes())
            }
            "flood" => {
                // 64 KiB of 64-byte lines
                let block: Vec<u8> = (0..1 << 16)
                    .map(|i| if i % 64 == 63 { b'\n' } else { b'x' })
                    .collect();
                let mut stderr = std::io::stderr();
                for _ in 0..number(input)? * 16 {
                    stderr.write_all(&block).map_err(io)?;
                }
                Ok(b"flooded".to_vec())
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

/// Every socket but the supervisor channel: the host apps' direct
/// channels (and the seccomp listener's socket, if still open).
fn direct_sockets() -> impl Iterator<Item = i32> {
    (CHANNEL_FD + 1..256).filter(|&fd| {
        // SAFETY: fstat only writes `stat`; a closed fd fails.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::fstat(fd, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK }
    })
}

/// The worker's channel, borrowed without taking ownership.
fn channel() -> ManuallyDrop<UnixStream> {
    // SAFETY: fd 3 is the worker's open channel socket; ManuallyDrop keeps
    // this handle from closing it. Abusing it is this plugin's purpose.
    ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(CHANNEL_FD) })
}

fn fd3() -> BorrowedFd<'static> {
    // SAFETY: fd 3 is the worker's channel and stays open for the
    // process's life.
    unsafe { BorrowedFd::borrow_raw(CHANNEL_FD) }
}

/// A frame of `body` marked as carrying a shared payload.
fn shared_frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(0) | wire::SHARED_FLAG;
    let mut frame = len.to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A memfd with a page of bytes and no seals.
fn memfd() -> Result<OwnedFd, PluginError> {
    // SAFETY: the name is NUL-terminated; the flags are valid.
    let raw = unsafe { libc::memfd_create(c"hostile".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(&[0x41; 4096]).map_err(io)?;
    Ok(file.into())
}

fn hang() -> ! {
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(0)
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Allocates until the allocator says no; the error says how far it got.
fn balloon() -> Result<Vec<u8>, PluginError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() || blocks.try_reserve(1).is_err() {
            return Err(PluginError::new(format!(
                "out of memory after {} MiB",
                blocks.len()
            )));
        }
        block.resize(1 << 20, 1);
        blocks.push(block);
    }
}

/// Duplicates stdin until the fd limit says no.
fn fds() -> Result<Vec<u8>, PluginError> {
    use std::os::fd::AsFd;
    let mut fds = Vec::new();
    loop {
        match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => fds.push(fd),
            Err(error) => {
                return Err(PluginError::new(format!(
                    "{error} after {} more fds",
                    fds.len()
                )));
            }
        }
    }
}

/// What a well-behaved plugin does in its write folder.
fn fs_ops(dir: &str) -> std::io::Result<Vec<u8>> {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir(dir.join("sub"))?;
    std::fs::write(dir.join("sub/a.txt"), b"a")?;
    std::fs::rename(dir.join("sub/a.txt"), dir.join("sub/b.txt"))?;
    let listed: Vec<_> = std::fs::read_dir(dir.join("sub"))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    let size = std::fs::metadata(dir.join("sub/b.txt"))?.len();
    std::fs::remove_file(dir.join("sub/b.txt"))?;
    std::fs::remove_dir(dir.join("sub"))?;
    Ok(format!("{listed:?} {size}").into_bytes())
}

/// Times storage operations from inside the plugin, so that the host
/// app's call around them is not counted: `OP N SIZE [BATCH]`.
fn kv_time(host: &Host, request: &str) -> Result<Vec<u8>, PluginError> {
    let usage = || {
        PluginError::new(format!(
            "expected `put|get|batch N SIZE [BATCH]`, got {request:?}"
        ))
    };
    let words: Vec<&str> = request.split_whitespace().collect();
    let (op, numbers) = words.split_first().ok_or_else(usage)?;
    let numbers: Vec<usize> = numbers
        .iter()
        .map(|word| word.parse().map_err(|_| usage()))
        .collect::<Result<_, _>>()?;
    let (count, size, batch) = match (*op, numbers.as_slice()) {
        ("put" | "get", &[count, size]) => (count, size, 1),
        ("batch", &[count, size, batch]) if batch > 0 => (count, size, batch),
        _ => return Err(usage()),
    };
    let value = vec![b'v'; size];
    let failed = |error: corral_plugin_api::RemoteError| {
        PluginError::new(format!("{op}: {}: {}", error.kind, error.message))
    };
    // Untimed: opens the database and warms the path to the supervisor.
    for _ in 0..10 {
        host.kv_get("warm-up").map_err(failed)?;
    }
    let mut nanos = Vec::with_capacity(count * 8);
    let mut timed = |op: &mut dyn FnMut() -> Result<(), PluginError>| {
        let start = Instant::now();
        op()?;
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos.extend_from_slice(&took.to_le_bytes());
        Ok::<(), PluginError>(())
    };
    for i in 0..count {
        match *op {
            "put" => {
                let key = format!("bench/{i}");
                timed(&mut || host.kv_put(&key, &value).map_err(failed))?;
            }
            "get" => {
                let key = format!("bench/{i}");
                timed(&mut || match host.kv_get(&key).map_err(failed)? {
                    Some(stored) if stored.len() == size => Ok(()),
                    Some(stored) => Err(PluginError::new(format!(
                        "{key} holds {} bytes, not {size}: run put with the same SIZE first",
                        stored.len()
                    ))),
                    None => Err(PluginError::new(format!(
                        "{key} is not stored: run put first"
                    ))),
                })?;
            }
            _ => {
                let keys: Vec<String> = (i * batch..(i + 1) * batch)
                    .map(|n| format!("batch/{n}"))
                    .collect();
                let writes: Vec<KvWrite<'_>> =
                    keys.iter().map(|key| KvWrite::Put(key, &value)).collect();
                timed(&mut || host.kv_batch(&writes).map_err(failed))?;
            }
        }
    }
    Ok(nanos)
}

fn text(input: &[u8]) -> Result<&str, PluginError> {
    std::str::from_utf8(input).map_err(|_| PluginError::new("input is not UTF-8"))
}

/// Reads 8 bytes of the parent's memory.
fn peek_parent() -> Result<Vec<u8>, PluginError> {
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: 0x400000 as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec points to `buf`, valid for its length; the
    // remote one is only read by the kernel, in the other process.
    let ret = unsafe { libc::process_vm_readv(libc::getppid(), &local, 1, &remote, 1, 0) };
    Ok(format!("process_vm_readv returned {ret}").into_bytes())
}

fn threads(count: i32) -> Result<Vec<u8>, PluginError> {
    let handles: Vec<_> = (0..count)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("hostile-{i}"))
                .spawn(move || std::thread::sleep(Duration::from_millis(10)))
        })
        .collect::<Result<_, _>>()
        .map_err(io)?;
    for handle in handles {
        handle
            .join()
            .map_err(|_| PluginError::new("a thread panicked"))?;
    }
    Ok(format!("{count} threads ran").into_bytes())
}

fn write_file(input: &[u8]) -> Result<Vec<u8>, PluginError> {
    let path = text(input)?;
    let mut file = std::fs::File::create(path).map_err(io)?;
    for _ in 0..16 {
        file.write_all(&[0; 1 << 20]).map_err(io)?;
    }
    Ok(b"wrote 16 MiB".to_vec())
}

/// A 32-bit syscall through the legacy gate, which 64-bit seccomp filters
/// see with another architecture.
#[cfg(target_arch = "x86_64")]
fn int80() -> Result<Vec<u8>, PluginError> {
    let mut eax: u32 = 20; // getpid in the i386 table
    // SAFETY: getpid takes no arguments and touches no memory; the
    // filter's architecture check is what this method tests.
    unsafe { std::arch::asm!("int 0x80", inout("eax") eax) };
    Ok(format!("int 0x80 returned {eax}").into_bytes())
}

#[cfg(not(target_arch = "x86_64"))]
fn int80() -> Result<Vec<u8>, PluginError> {
    Err(PluginError::new("int 0x80 is x86_64 only"))
}

/// Makes the syscall `NAME ARG...` names (integer arguments, decimal or
/// `0x` hex): `returned N`, or `failed: errno E (message)`.
fn raw_syscall(request: &str) -> Result<Vec<u8>, PluginError> {
    let mut words = request.split_whitespace();
    let name = words
        .next()
        .ok_or_else(|| PluginError::new("expected NAME ARG..."))?;
    let number = corral_plugin_api::seccomp::number(name)
        .ok_or_else(|| PluginError::new(format!("no syscall {name} here")))?;
    let mut args = [0i64; 6];
    for (slot, word) in args.iter_mut().zip(words) {
        let parsed = match word.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => word.parse(),
        };
        *slot = parsed.map_err(|_| PluginError::new(format!("bad argument {word:?}")))?;
    }
    // SAFETY: integer arguments only; what the kernel makes of them is
    // what this method tests. Pointers are never passed.
    let ret =
        unsafe { libc::syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if ret < 0 {
        let error = std::io::Error::last_os_error();
        return Ok(format!(
            "{name} failed: errno {} ({error})",
            error.raw_os_error().unwrap_or(0)
        )
        .into_bytes());
    }
    Ok(format!("{name} returned {ret}").into_bytes())
}

fn number(input: &[u8]) -> Result<i32, PluginError> {
    std::str::from_utf8(input)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| PluginError::new("expected a number as text"))
}

fn io(error: std::io::Error) -> PluginError {
    PluginError::new(error.to_string())
}

export_plugin!(Hostile);
