//! WebAssembly plugins: a module exporting the guest ABI of
//! `corral_plugin_api::export::wasm`, run by wasmtime.
//!
//! - memory: a `ResourceLimiter` holds the guest to `memory_mb`;
//! - deadlines: epoch interruption, ticked by one thread every
//!   [`TICK`]; a call past its deadline traps and comes back as a `timeout`
//!   error, and the worker keeps serving;
//! - fuel (`wasm_fuel`): when set, a call that burns it all is stopped;
//! - compiled modules are cached in the plugin's cache folder;
//! - WASI preview 1 only when the manifest asks for it ([`super::wasi`]);
//! - traps (unreachable, out-of-bounds, stack overflow, a panic in the
//!   guest) come back as `plugin` errors; the instance is then thrown away
//!   and a fresh one made (2–6 µs), since a trap can leave the guest's own
//!   state half-updated (done right after the failing call's reply is
//!   sent, so neither that reply nor the next call waits for it).

use super::wasi::{self, Wasi};
use super::{LoadError, Runtime};
use crate::link::Link;
use crate::reply::ReplyBuf;
use corral_plugin_api::wire::Hello;
use corral_plugin_api::{ErrorKind, LogLevel, RemoteError};
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, Trap,
    TypedFunc,
};

/// Epoch tick: the resolution of call deadlines.
const TICK: Duration = Duration::from_millis(2);

/// What the store carries for host functions and the limiter.
struct State {
    limits: StoreLimits,
    /// Linked only when the manifest asks for WASI.
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    /// Host services go to the supervisor over it.
    link: Arc<Link>,
}

/// The guest's exports.
struct Exports {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    dealloc: TypedFunc<(u32, u32), ()>,
    call: TypedFunc<(u32, u32, u32, u32, u32), i32>,
    /// Optional: a module without one is healthy while it answers.
    health: Option<TypedFunc<(), i32>>,
}

/// A loaded wasm plugin and its live instance.
pub(crate) struct WasmPlugin {
    engine: Engine,
    module: Module,
    linker: Linker<State>,
    memory_bytes: usize,
    /// Fuel per call; 0 = no metering.
    fuel: u64,
    wasi: Option<Wasi>,
    link: Arc<Link>,
    store: Store<State>,
    exports: Exports,
    /// A trap left the instance in doubt: replace it before the next call.
    poisoned: bool,
}

impl WasmPlugin {
    /// Compiles the module (from the fd the supervisor passed, or its
    /// path), links the host functions and instantiates it.
    pub(crate) fn load(hello: &Hello, link: Arc<Link>) -> Result<Self, LoadError> {
        let path = hello.entry.clone();
        let wasm = super::read_entry(hello)?;
        let wasm_error = |error: wasmtime::Error| LoadError::Wasm {
            path: path.clone(),
            message: format!("{error:#}"),
        };
        let engine = engine(hello.wasm_fuel > 0).map_err(wasm_error)?;
        let module = compile(&engine, &wasm, hello.cache_dir.as_deref().map(Path::new))
            .map_err(wasm_error)?;
        let wasi = Wasi::new(hello);
        check_imports(&module, wasi.is_some()).map_err(|message| LoadError::Wasm {
            path: path.clone(),
            message,
        })?;
        if let Some(wasi) = &wasi {
            tracing::info!("WASI preview 1: {}", wasi.describe());
        }
        let linker = linker(&engine, wasi.is_some()).map_err(wasm_error)?;
        start_ticker(&engine).map_err(|source| LoadError::Wasm {
            path: path.clone(),
            message: format!(
                "cannot start the epoch ticker that enforces call deadlines: {source}"
            ),
        })?;
        let memory_bytes = usize::try_from(hello.memory_bytes).unwrap_or(usize::MAX);
        let (store, exports) = instantiate(
            &engine,
            &module,
            &linker,
            memory_bytes,
            hello.wasm_fuel,
            wasi.as_ref(),
            &link,
        )
        .map_err(|message| LoadError::Wasm {
            path: path.clone(),
            message,
        })?;
        Ok(Self {
            engine,
            module,
            linker,
            memory_bytes,
            fuel: hello.wasm_fuel,
            wasi,
            link,
            store,
            exports,
            poisoned: false,
        })
    }

    /// Runs the guest's `call`, copying its reply (or message) once out of
    /// linear memory into `reply`.
    fn run(
        &mut self,
        method: &str,
        input: &[u8],
        reply: &mut ReplyBuf<'_>,
    ) -> wasmtime::Result<i32> {
        let store = &mut self.store;
        let e = &self.exports;
        let method_ptr = put(store, e, method.as_bytes())?;
        let input_ptr = put(store, e, input)?;
        let out = e.alloc.call(&mut *store, 8)?;
        let code = e.call.call(
            &mut *store,
            (
                method_ptr,
                len32(method.len())?,
                input_ptr,
                len32(input.len())?,
                out,
            ),
        )?;
        let mut pair = [0u8; 8];
        e.memory.read(&*store, out as usize, &mut pair)?;
        let ptr = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
        let len = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
        // Checked before allocating: a hostile guest may claim any length.
        let end = u64::from(ptr) + u64::from(len);
        if end > e.memory.data_size(&*store) as u64 {
            wasmtime::bail!("the reply [{ptr}, {ptr} + {len}) lies outside the module's memory");
        }
        let Some(to) = reply.reserve(len as usize) else {
            wasmtime::bail!("{}", super::too_large(len as usize).message);
        };
        e.memory.read(&*store, ptr as usize, to)?;
        for (ptr, len) in [
            (method_ptr, method.len()),
            (input_ptr, input.len()),
            (ptr, len as usize),
            (out, 8),
        ] {
            e.dealloc.call(&mut *store, (ptr, len32(len)?))?;
        }
        Ok(code)
    }

    /// Throws the instance away and makes a fresh one.
    fn reinstantiate(&mut self) -> Result<(), String> {
        let (store, exports) = instantiate(
            &self.engine,
            &self.module,
            &self.linker,
            self.memory_bytes,
            self.fuel,
            self.wasi.as_ref(),
            &self.link,
        )?;
        self.store = store;
        self.exports = exports;
        Ok(())
    }
}

impl Runtime for WasmPlugin {
    /// The guest's `health` export (healthy when it has none); a trap is
    /// unhealthy.
    fn health(&mut self) -> bool {
        self.recover();
        let Some(health) = self.exports.health.clone() else {
            return true;
        };
        self.store
            .set_epoch_deadline(u64::try_from(1_000 / TICK.as_millis()).unwrap_or(u64::MAX));
        match health.call(&mut self.store, ()) {
            Ok(code) => code == 0,
            Err(_) => {
                self.poisoned = true; // a trap, as in a call
                false
            }
        }
    }

    /// Replaces an instance a trap left in doubt; runs between calls.
    fn recover(&mut self) {
        if std::mem::take(&mut self.poisoned)
            && let Err(problem) = self.reinstantiate()
        {
            tracing::error!("cannot make a fresh instance after a trap: {problem}");
            std::process::exit(3);
        }
    }

    fn call(
        &mut self,
        method: &str,
        input: &[u8],
        deadline: Duration,
        out: &mut ReplyBuf<'_>,
    ) -> Result<(), RemoteError> {
        self.recover();
        let ticks = (super::stop_within(deadline).as_millis() / TICK.as_millis()).max(1);
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        if self.fuel > 0
            && let Err(error) = self.store.set_fuel(self.fuel)
        {
            return Err(RemoteError::new(
                ErrorKind::Plugin,
                format!("cannot set fuel: {error:#}"),
            ));
        }
        let result = self.run(method, input, out);
        match result {
            Ok(code) => super::outcome(code, out),
            Err(error) => {
                let remote = match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => RemoteError::new(
                        ErrorKind::Timeout,
                        format!(
                            "call `{method}` ran past its deadline ({} ms) and was stopped",
                            deadline.as_millis()
                        ),
                    ),
                    Some(Trap::OutOfFuel) => RemoteError::new(
                        ErrorKind::Plugin,
                        format!(
                            "call `{method}` ran out of fuel ({} units) and was stopped",
                            self.fuel
                        ),
                    ),
                    Some(trap) => RemoteError::new(
                        ErrorKind::Plugin,
                        format!("wasm trap in `{method}`: {trap}"),
                    ),
                    None => RemoteError::new(
                        ErrorKind::Plugin,
                        format!("wasm call `{method}` failed: {error:#}"),
                    ),
                };
                // A fresh instance once this reply is sent (`recover`).
                self.poisoned = true;
                Err(remote)
            }
        }
    }
}

fn len32(len: usize) -> wasmtime::Result<u32> {
    u32::try_from(len).map_err(|_| wasmtime::format_err!("{len} bytes do not fit wasm32 memory"))
}

/// Copies `bytes` into guest memory it allocates.
fn put(store: &mut Store<State>, e: &Exports, bytes: &[u8]) -> wasmtime::Result<u32> {
    let ptr = e.alloc.call(&mut *store, len32(bytes.len())?)?;
    e.memory.write(&mut *store, ptr as usize, bytes)?;
    Ok(ptr)
}

/// Compiles `wasm`, or loads it from `cache_dir` when this module was
/// compiled before by the same wasmtime with the same settings (the file
/// name holds the module's SHA-256 and the engine's compatibility hash).
fn compile(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> wasmtime::Result<Module> {
    let started = Instant::now();
    let Some(cache_dir) = cache_dir else {
        return Module::new(engine, wasm);
    };
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = cache_dir.join(format!("{digest}-{:016x}.cwasm", engine_hash.finish()));
    if path.is_file() {
        #[allow(unsafe_code, reason = "loads precompiled native code")]
        // SAFETY: the file was written by `Module::serialize` of an engine
        // with the same compatibility hash, in a folder only this plugin's
        // workers can write. A worker that tampered with it gains nothing
        // its sandbox does not already allow it.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => {
                tracing::info!("compiled module from the cache in {:?}", started.elapsed());
                return Ok(module);
            }
            Err(error) => tracing::warn!(
                "cached module {} unusable, compiling: {error:#}",
                path.display()
            ),
        }
    }
    let module = Module::new(engine, wasm)?;
    tracing::info!("compiled module in {:?}", started.elapsed());
    let staged = path.with_extension("tmp");
    let stored = module
        .serialize()
        .and_then(|bytes| Ok(std::fs::write(&staged, bytes)?))
        .and_then(|()| Ok(std::fs::rename(&staged, &path)?));
    if let Err(error) = stored {
        tracing::warn!(
            "cannot cache the compiled module in {}: {error:#}",
            cache_dir.display()
        );
    }
    Ok(module)
}

/// Refuses a module that imports WASI when the manifest does not ask for
/// it, naming the import and the fix (instead of wasmtime's "unknown
/// import").
fn check_imports(module: &Module, wasi: bool) -> Result<(), String> {
    if wasi {
        return Ok(());
    }
    match module
        .imports()
        .find(|import| import.module().starts_with("wasi"))
    {
        Some(import) => Err(format!(
            "the module imports WASI ({}::{}), which this plugin does not ask for: \
             set `wasi = true` in [plugin] of plugin.toml",
            import.module(),
            import.name()
        )),
        None => Ok(()),
    }
}

/// The host functions of module `corral`, and WASI preview 1 when `wasi`.
fn linker(engine: &Engine, wasi: bool) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    if wasi {
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut State| &mut state.wasi)?;
    }
    linker.func_wrap(
        "corral",
        "log",
        |mut caller: wasmtime::Caller<'_, State>, level: i32, ptr: u32, len: u32| {
            let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
                return;
            };
            let mut text = vec![0u8; (len as usize).min(64 * 1024)];
            if memory.read(&caller, ptr as usize, &mut text).is_ok() {
                crate::host::log_message(
                    LogLevel::from_abi(level),
                    &String::from_utf8_lossy(&text),
                );
            }
        },
    )?;
    linker.func_wrap("corral", "now_ms", crate::host::unix_ms)?;
    linker.func_wrap("corral", "host_call", host_call)?;
    Ok(linker)
}

/// `host_call(op, op_len, input, input_len, out) -> i32`: a host service
/// for the guest. The reply (or error message) goes into guest memory
/// from the guest's own `alloc`, as `[ptr, len]` at `out`.
fn host_call(
    mut caller: wasmtime::Caller<'_, State>,
    op: u32,
    op_len: u32,
    input: u32,
    input_len: u32,
    out: u32,
) -> wasmtime::Result<i32> {
    let memory = caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
        .ok_or_else(|| wasmtime::format_err!("the module exports no `memory`"))?;
    let read = |caller: &wasmtime::Caller<'_, State>, ptr: u32, len: u32| {
        let data = memory.data(caller);
        let start = ptr as usize;
        data.get(start..start.saturating_add(len as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| wasmtime::format_err!("host_call: buffer out of bounds"))
    };
    let op = String::from_utf8_lossy(&read(&caller, op, op_len)?).into_owned();
    let input = read(&caller, input, input_len)?;
    let link = caller.data().link.clone();
    let (code, bytes) = match link.host_call(&op, &input) {
        Ok(reply) => (corral_plugin_api::abi::CALL_OK, reply),
        Err(error) => (error.kind.code(), error.message.into_bytes()),
    };
    let len = u32::try_from(bytes.len())
        .map_err(|_| wasmtime::format_err!("host_call: reply too large for wasm32"))?;
    let ptr = if len == 0 {
        0
    } else {
        let alloc = caller
            .get_export("alloc")
            .and_then(wasmtime::Extern::into_func)
            .ok_or_else(|| wasmtime::format_err!("the module exports no `alloc`"))?
            .typed::<u32, u32>(&caller)?;
        let ptr = alloc.call(&mut caller, len)?;
        memory.write(&mut caller, ptr as usize, &bytes)?;
        ptr
    };
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&ptr.to_le_bytes());
    pair[4..].copy_from_slice(&len.to_le_bytes());
    memory.write(&mut caller, out as usize, &pair)?;
    Ok(code)
}

fn instantiate(
    engine: &Engine,
    module: &Module,
    linker: &Linker<State>,
    memory_bytes: usize,
    fuel: u64,
    wasi: Option<&Wasi>,
    link: &Arc<Link>,
) -> Result<(Store<State>, Exports), String> {
    let limits = StoreLimitsBuilder::new()
        .memory_size(memory_bytes)
        .instances(1)
        .memories(1)
        .tables(4)
        .build();
    let wasi = match wasi {
        Some(wasi) => wasi.context()?,
        None => wasi::none(),
    };
    let mut store = Store::new(
        engine,
        State {
            limits,
            wasi,
            link: link.clone(),
        },
    );
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(u64::MAX / 2);
    if fuel > 0 {
        // Instantiation and `init` get the same budget as one call.
        store.set_fuel(fuel).map_err(|error| format!("{error:#}"))?;
    }
    let instance: Instance = linker
        .instantiate(&mut store, module)
        .map_err(|error| format!("{error:#}"))?;
    let export_error =
        |name: &str, error: wasmtime::Error| format!("the module's `{name}` export: {error:#}");
    // A WASI reactor (`wasm32-wasip1` cdylib) runs its constructors here.
    if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
        initialize
            .call(&mut store, ())
            .map_err(|error| format!("the module's `_initialize` trapped: {error:#}"))?;
    }
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| "the module exports no `memory`".to_owned())?;
    let exports = Exports {
        memory,
        alloc: instance
            .get_typed_func(&mut store, "alloc")
            .map_err(|e| export_error("alloc", e))?,
        dealloc: instance
            .get_typed_func(&mut store, "dealloc")
            .map_err(|e| export_error("dealloc", e))?,
        call: instance
            .get_typed_func(&mut store, "call")
            .map_err(|e| export_error("call", e))?,
        health: instance.get_typed_func(&mut store, "health").ok(),
    };
    let version: TypedFunc<(), u32> = instance
        .get_typed_func(&mut store, "corral_abi_version")
        .map_err(|e| export_error("corral_abi_version", e))?;
    let found = version.call(&mut store, ()).map_err(|e| format!("{e:#}"))?;
    if found != corral_plugin_api::abi::ABI_VERSION {
        return Err(format!(
            "the module speaks plugin ABI {found}, this worker speaks {}",
            corral_plugin_api::abi::ABI_VERSION
        ));
    }
    let init: TypedFunc<(), i32> = instance
        .get_typed_func(&mut store, "init")
        .map_err(|e| export_error("init", e))?;
    match init.call(&mut store, ()) {
        Ok(0) => Ok((store, exports)),
        Ok(code) => Err(format!(
            "plugin init failed (code {code}; see the plugin's log)"
        )),
        Err(error) => Err(format!("plugin init trapped: {error:#}")),
    }
}

/// The engine a zygote made before forking ([`prepare`]): the one most
/// plugins use, without fuel.
static PREPARED: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();

/// Makes, in a wasm zygote, the engine its workers share: its
/// configuration checked and its code generator set up once, not per
/// worker.
pub(crate) fn prepare() {
    match engine_for(false) {
        Ok(engine) => drop(PREPARED.set(engine)),
        Err(error) => tracing::warn!("cannot prepare the wasm engine: {error:#}"),
    }
}

/// The engine for a plugin with or without fuel metering: the prepared
/// one when it fits.
fn engine(fuel: bool) -> wasmtime::Result<Engine> {
    match PREPARED.get() {
        Some(engine) if !fuel => Ok(engine.clone()),
        _ => engine_for(fuel),
    }
}

fn engine_for(fuel: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    // No memfd images: the sandbox does not allow memfd_create.
    config.memory_init_cow(false);
    Engine::new(&config)
}

/// Ticks the engine's epoch for call deadlines, for the worker's life.
fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("corral-epoch".into())
        .spawn(move || {
            // Epochs follow the clock, not the number of wake-ups: under
            // load a sleep overshoots, and the ticker catches up.
            let start = std::time::Instant::now();
            let mut ticks: u128 = 0;
            loop {
                std::thread::sleep(TICK);
                let due = start.elapsed().as_millis() / TICK.as_millis();
                while ticks < due {
                    engine.increment_epoch();
                    ticks += 1;
                }
            }
        })
        .map(drop)
}
