//! Call latency: a 64-byte `echo` from a host app through the supervisor to
//! a worker and back, beside the raw floor measured in the same run and
//! mode: the same message ping-ponged over plain Unix sockets with a 4-byte
//! length prefix, through one hop (client ⇄ echo) and two (client ⇄ relay ⇄
//! echo), every hop a real process.
//!
//! Rows for each runtime: the native `hello`, the same source as wasm, and
//! its TypeScript twins on direct channels (`hello-ts` on the JavaScript
//! engine, `as-hello` in AssemblyScript).
//!
//! Beside them, for comparison, hashicorp go-plugin 1.0.1's own echo over
//! net/rpc (on yamux, over a Unix socket), one hop: a Go client and plugin
//! built offline from Debian's packages by `tests/goplugin/build.sh` (which
//! apt-get installs them when missing and it may), timed by the Go client
//! itself the same way and reported to this bench as one JSON line. When it
//! cannot be built the row is skipped with a note on stderr.
//!
//! Runs pinned to CPU 0 (every child inherits it) unless
//! `CORRAL_BENCH_UNPINNED=1`; `CORRAL_BENCH_CALLS` sets the number of timed
//! calls; `CORRAL_BENCH_ROWS=TEXT` runs only the rows whose name contains
//! TEXT beside the floors (to profile one path, e.g. `direct`). Prints a
//! table and writes the figures to `target/bench/call_latency.json`. It
//! reports; it asserts no speed.
//!
//! The floor's helper processes are this binary again, told their role by
//! `CORRAL_BENCH_ROLE` and their sockets' fds by `CORRAL_BENCH_FDS`.

#![allow(clippy::print_stdout, reason = "a bench prints its results")]

use corral_tests::bench::{self, Summary};
use corral_tests::{Corral, Workspace};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const MESSAGE_LEN: u8 = 64;
const WARMUP: usize = 2_000;
const DEFAULT_CALLS: usize = 20_000;
const ROLE_ENV: &str = "CORRAL_BENCH_ROLE";
const FDS_ENV: &str = "CORRAL_BENCH_FDS";
const GO_PLUGIN_ROW: &str = "go-plugin 1.0.1, 1 hop (net/rpc)";

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("echo") => return echo_role(),
        Ok("relay") => return relay_role(),
        Ok(other) => panic!("unknown {ROLE_ENV} `{other}`"),
        Err(_) => {}
    }
    // Built before pinning, so that a first build is not held to one CPU.
    let go_plugin_binary = build_go_plugin();
    let pinned = bench::pin_unless_unpinned();
    let calls = bench::count_from_env("CORRAL_BENCH_CALLS", DEFAULT_CALLS);
    let message: Vec<u8> = (0..MESSAGE_LEN).collect();

    let only = std::env::var("CORRAL_BENCH_ROWS").unwrap_or_default();
    let wanted = |what: &str| what.contains(only.as_str());
    let mut rows = vec![
        ("raw floor, 1 hop", raw_floor(1, &message, calls)),
        ("raw floor, 2 hops", raw_floor(2, &message, calls)),
    ];
    let corral_row = |what: &'static str, plugin: Plugin, route: Route| {
        wanted(what).then(|| (what, corral(&message, calls, plugin, route)))
    };
    rows.extend(corral_row(
        "corral (host→sup→worker)",
        Plugin::Native,
        Route::Relayed,
    ));
    rows.extend(corral_row(
        "corral direct (host→worker)",
        Plugin::Native,
        Route::Direct,
    ));
    if wanted(GO_PLUGIN_ROW) {
        match go_plugin_binary.and_then(|binary| go_plugin(&binary, calls)) {
            Ok(stats) => rows.push((GO_PLUGIN_ROW, stats)),
            Err(reason) => eprintln!("go-plugin row skipped: {reason}"),
        }
    }
    if corral_tests::wasm_module("hello").is_file() {
        rows.extend(corral_row(
            "corral, wasm worker",
            Plugin::Wasm,
            Route::Relayed,
        ));
        rows.extend(corral_row(
            "corral direct, wasm worker",
            Plugin::Wasm,
            Route::Direct,
        ));
    } else {
        eprintln!("wasm row skipped: run example-plugins/build-wasm.sh first");
    }
    if corral_tests::js_bundle("hello-ts").is_file() {
        rows.extend(corral_row(
            "corral direct, TypeScript (JavaScript engine)",
            Plugin::TypeScript,
            Route::Direct,
        ));
        rows.extend(corral_row(
            "corral direct, AssemblyScript (wasm)",
            Plugin::AssemblyScript,
            Route::Direct,
        ));
    } else {
        eprintln!("TypeScript rows skipped: run example-plugins/build-js.sh first");
    }
    rows.push(("raw floor, 4 hops", raw_floor(4, &message, calls)));
    rows.extend(corral_row(
        "corral, plugin→plugin call",
        Plugin::Dependent,
        Route::Relayed,
    ));
    report(&rows, pinned, calls);
}

/// Latency figures of one measurement.
struct Stats {
    latency: Summary,
    calls_per_s: f64,
}

/// Makes `WARMUP` untimed calls, then times `calls` calls one by one.
fn time_calls(calls: usize, mut call: impl FnMut()) -> Stats {
    for _ in 0..WARMUP {
        call();
    }
    let mut latencies = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let sent = Instant::now();
        call();
        latencies.push(sent.elapsed());
    }
    let wall = start.elapsed();
    Stats {
        calls_per_s: latencies.len() as f64 / wall.as_secs_f64(),
        latency: Summary::of(latencies),
    }
}

/// What serves the corral rows: `hello` natively or as wasm, its
/// TypeScript twins (`hello-ts` on the JavaScript engine, `as-hello` in
/// AssemblyScript), or `greeter` relaying each call to `hello` through a
/// host call (four hops: host → supervisor → greeter → supervisor →
/// hello).
enum Plugin {
    Native,
    Wasm,
    TypeScript,
    AssemblyScript,
    Dependent,
}

/// How the client's calls travel.
#[derive(PartialEq)]
enum Route {
    /// Through the supervisor.
    Relayed,
    /// On a direct channel to the worker.
    Direct,
}

/// The corral round trip: blocking client → supervisor → `hello` worker,
/// or blocking client → `hello` worker on a direct channel.
fn corral(message: &[u8], calls: usize, plugin: Plugin, route: Route) -> Stats {
    let builder = Corral::builder();
    let (corral, plugin, input) = match plugin {
        Plugin::Native => (builder.hello("hello"), "hello", message.to_vec()),
        Plugin::Wasm => (
            builder.wasm_with("hello", "hello", ""),
            "hello",
            message.to_vec(),
        ),
        Plugin::TypeScript => (
            builder.js_with("hello", "hello-ts", ""),
            "hello",
            message.to_vec(),
        ),
        Plugin::AssemblyScript => (
            builder.example("as-hello", &["build/as-hello.wasm"]),
            "as-hello",
            message.to_vec(),
        ),
        Plugin::Dependent => (
            builder.hello("hello").native_with(
                "greeter",
                "greeter",
                "[dependencies]\nhello = \"^1\"\n\n[permissions]\nhost = [\"call:hello\"]\n",
            ),
            "greeter",
            [&b"hello echo "[..], message].concat(),
        ),
    };
    let corral = corral.start();
    corral.wait_ready(plugin);
    let mut client = corral.client();
    client.set_direct(route == Route::Direct);
    let method = if plugin == "greeter" { "relay" } else { "echo" };
    time_calls(calls, || {
        let reply = client.call(plugin, method, &input).expect("echo call");
        assert_eq!(reply, message, "corral echoed something else");
    })
}

/// Builds the go-plugin echo, or brings it up to date (a second or less
/// when it is), with `tests/goplugin/build.sh`; says why when it cannot.
fn build_go_plugin() -> Result<PathBuf, String> {
    let binary = corral_tests::target_dir()
        .parent()
        .expect("target dir has a parent")
        .join("goplugin")
        .join("goplugin-echo");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("goplugin/build.sh");
    let status = Command::new(&script)
        .arg(&binary)
        .status()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    Ok(binary)
}

/// What the go-plugin echo prints: its own timing of `calls` calls after
/// the same warmup, summarised the way [`Summary`] does.
#[derive(serde::Deserialize)]
struct GoPluginFigures {
    p50_us: f64,
    p99_us: f64,
    min_us: f64,
    mean_us: f64,
    calls_per_s: f64,
    calls: usize,
}

/// hashicorp go-plugin's round trip: a Go client calling a 64-byte echo in
/// the plugin process it started. The Go client times the calls itself,
/// since that is how go-plugin is used; driving it from Rust would add a
/// hop of our own.
fn go_plugin(binary: &Path, calls: usize) -> Result<Stats, String> {
    let output = Command::new(binary)
        .arg(calls.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", binary.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", binary.display(), output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .ok_or_else(|| format!("{} printed no figures", binary.display()))?;
    let figures: GoPluginFigures = serde_json::from_str(line)
        .map_err(|error| format!("bad figures `{line}` from {}: {error}", binary.display()))?;
    if figures.calls != calls {
        return Err(format!(
            "{} timed {} calls, not {calls}",
            binary.display(),
            figures.calls
        ));
    }
    Ok(Stats {
        latency: Summary {
            count: figures.calls,
            min_us: figures.min_us,
            p50_us: figures.p50_us,
            p99_us: figures.p99_us,
            mean_us: figures.mean_us,
        },
        calls_per_s: figures.calls_per_s,
    })
}

/// The raw floor: length-prefixed frames over `hops` Unix socket hops,
/// each hop's far end a process of its own.
fn raw_floor(hops: usize, message: &[u8], calls: usize) -> Stats {
    let (client, mut far_end) = UnixStream::pair().expect("socketpair");
    let mut helpers = Vec::new();
    for _ in 1..hops {
        let (relay_down, next) = UnixStream::pair().expect("socketpair");
        helpers.push(Helper::spawn("relay", [far_end, relay_down]));
        far_end = next;
    }
    helpers.push(Helper::spawn("echo", [far_end]));

    let mut frame = Vec::from(frame_len(message).to_le_bytes());
    frame.extend_from_slice(message);
    let mut writer = client.try_clone().expect("clone socket");
    let mut reader = BufReader::new(client);
    let mut reply = Vec::new();
    let stats = time_calls(calls, || {
        writer.write_all(&frame).expect("send frame");
        assert!(
            read_frame(&mut reader, &mut reply).expect("read frame"),
            "echo hung up"
        );
        assert_eq!(reply, frame, "the floor echoed something else");
    });
    drop(helpers);
    stats
}

/// A helper process of the floor; killed and reaped when dropped.
struct Helper(Child);

impl Helper {
    /// Runs this binary as `role`, handing it `sockets` (closed here once
    /// it has them).
    fn spawn<const N: usize>(role: &str, sockets: [UnixStream; N]) -> Self {
        let fds = sockets.map(OwnedFd::from);
        let raw: [RawFd; N] = std::array::from_fn(|i| fds[i].as_raw_fd());
        let list = raw.map(|fd| fd.to_string()).join(" ");
        let mut command = Command::new(std::env::current_exe().expect("bench binary path"));
        command.env(ROLE_ENV, role).env(FDS_ENV, list);
        let inherit = move || {
            for fd in raw {
                // SAFETY: fcntl(F_SETFD) only clears the close-on-exec flag
                // of an fd open in this forked child; it is async-signal-safe.
                if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        };
        // SAFETY: the hook runs between fork and exec and only calls fcntl,
        // which is async-signal-safe; it neither allocates nor locks.
        unsafe { command.pre_exec(inherit) };
        let child = command.spawn().expect("start a floor helper");
        drop(fds); // the helper holds its own copies now
        Self(child)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sockets the parent handed this helper, in order.
fn inherited_sockets() -> Vec<UnixStream> {
    let list = std::env::var(FDS_ENV).unwrap_or_else(|_| panic!("{FDS_ENV} is not set"));
    list.split(' ')
        .map(|fd| {
            let fd: RawFd = fd
                .parse()
                .unwrap_or_else(|_| panic!("bad {FDS_ENV} `{list}`"));
            // SAFETY: the parent cleared close-on-exec on exactly these fds
            // for this process, and nothing else in it owns them.
            UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Echoes every frame back until the client hangs up.
fn echo_role() {
    let [socket] = <[UnixStream; 1]>::try_from(inherited_sockets()).expect("one socket");
    let mut writer = socket.try_clone().expect("clone socket");
    let mut reader = BufReader::new(socket);
    let mut frame = Vec::new();
    while read_frame(&mut reader, &mut frame).expect("echo: read") {
        writer.write_all(&frame).expect("echo: write");
    }
}

/// Forwards each frame from upstream to downstream and the answer back,
/// until upstream hangs up.
fn relay_role() {
    let [up, down] = <[UnixStream; 2]>::try_from(inherited_sockets()).expect("two sockets");
    let (mut up_writer, mut down_writer) = (
        up.try_clone().expect("clone socket"),
        down.try_clone().expect("clone socket"),
    );
    let (mut up_reader, mut down_reader) = (BufReader::new(up), BufReader::new(down));
    let mut frame = Vec::new();
    while read_frame(&mut up_reader, &mut frame).expect("relay: read request") {
        down_writer
            .write_all(&frame)
            .expect("relay: forward request");
        assert!(
            read_frame(&mut down_reader, &mut frame).expect("relay: read reply"),
            "echo hung up"
        );
        up_writer.write_all(&frame).expect("relay: forward reply");
    }
}

/// Reads one whole frame (header included) into `frame`; `false` on end
/// of stream before a frame.
fn read_frame(reader: &mut impl Read, frame: &mut Vec<u8>) -> io::Result<bool> {
    let mut header = [0; 4];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    }
    let len = usize::try_from(u32::from_le_bytes(header)).expect("u32 fits usize");
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(4 + len, 0);
    reader.read_exact(&mut frame[4..])?;
    Ok(true)
}

fn frame_len(message: &[u8]) -> u32 {
    u32::try_from(message.len()).expect("message under 4 GiB")
}

/// Prints the table and writes the JSON file.
fn report(rows: &[(&str, Stats)], pinned: bool, calls: usize) {
    let floor_of = |row: &str| {
        rows.iter()
            .find(|(what, _)| *what == row)
            .map(|(_, stats)| &stats.latency)
            .unwrap_or_else(|| panic!("a `{row}` row"))
    };
    let (floor, one_hop) = (floor_of("raw floor, 2 hops"), floor_of("raw floor, 1 hop"));
    let mode = bench::mode(pinned);
    let width = rows
        .iter()
        .map(|(what, _)| what.chars().count())
        .max()
        .unwrap_or(0);
    println!("corral call latency ({MESSAGE_LEN} B echo, {mode}, N={calls})");
    println!(
        "{:<width$} {:>8} {:>8} {:>9} {:>9}   p50 / p99 vs 2-hop floor   vs 1-hop floor",
        "what", "p50 µs", "p99 µs", "mean µs", "calls/s"
    );
    let mut results = Vec::new();
    for (what, stats) in rows {
        let latency = &stats.latency;
        let (p50_ratio, p99_ratio) = (latency.p50_us / floor.p50_us, latency.p99_us / floor.p99_us);
        let (p50_1hop, p99_1hop) = (
            latency.p50_us / one_hop.p50_us,
            latency.p99_us / one_hop.p99_us,
        );
        println!(
            "{what:<width$} {:>8.2} {:>8.2} {:>9.2} {:>9.0}   {p50_ratio:.2}x / {p99_ratio:.2}x            {p50_1hop:.2}x / {p99_1hop:.2}x",
            latency.p50_us, latency.p99_us, latency.mean_us, stats.calls_per_s
        );
        results.push(serde_json::json!({
            "what": what,
            "p50_us": latency.p50_us,
            "p99_us": latency.p99_us,
            "mean_us": latency.mean_us,
            "calls_per_s": stats.calls_per_s,
            "p50_vs_2hop_floor": p50_ratio,
            "p99_vs_2hop_floor": p99_ratio,
            "p50_vs_1hop_floor": p50_1hop,
            "p99_vs_1hop_floor": p99_1hop,
        }));
    }
    let json = serde_json::json!({
        "bench": "call_latency",
        "message_bytes": MESSAGE_LEN,
        "pinned": pinned,
        "warmup_calls": WARMUP,
        "calls": calls,
        "results": results,
    });
    let path = bench::write_json("call_latency", &json);
    eprintln!("figures written to {}", path.display());
}
