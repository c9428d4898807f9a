//! JavaScript plugins: one ES module (a bundle, e.g. TypeScript built by
//! esbuild) run by QuickJS (quickjs-ng, through `rquickjs`).
//!
//! - the plugin imports the host services from the built-in module
//!   `corral` (`plugin-api/js/corral.js`, bound to the worker by
//!   `globalThis.__corral`, removed before the plugin runs); its exports
//!   are its methods, `init`, `on_event` and `health`, sync or async;
//! - memory: the engine's allocator is held to `memory_mb` (past it, an
//!   allocation throws `out of memory`); the process's `RLIMIT_DATA` gets
//!   room for the engine beside it;
//! - deadlines: the engine's interrupt handler stops a call past its
//!   deadline with an exception JavaScript cannot catch; the caller gets a
//!   `timeout` error and the worker lives. The plugin's state is then in
//!   doubt (stopped anywhere), so a fresh engine loads the module and runs
//!   `init` again after the reply, as a wasm instance is replaced after a
//!   trap;
//! - promises are driven on the calling thread until they settle: host
//!   services answer at once, so `await kv.get(…)` works; there are no
//!   timers, and a promise that can never settle fails the call.

use super::{LoadError, Runtime};
use crate::link::Link;
use crate::reply::ReplyBuf;
use corral_plugin_api::wire::Hello;
use corral_plugin_api::{ErrorKind, LogLevel, RemoteError, abi};
use rquickjs::CaughtError;
use rquickjs::loader::{BuiltinLoader, BuiltinResolver};
use rquickjs::{
    Array, CatchResultExt, Context, Ctx, Function, Module, Object, Persistent, Promise,
    Runtime as Engine, TypedArray, Value,
};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The built-in module `corral`.
const HOST_MODULE: &str = include_str!("../../../plugin-api/js/corral.js");

/// The engine's own stack limit: a runaway recursion is an exception
/// (`Maximum call stack size exceeded`), far from the thread's end.
const STACK_BYTES: usize = 1 << 20;

/// How long `init` and a health check may run.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// A loaded JavaScript plugin.
pub(crate) struct JsPlugin {
    spec: Spec,
    instance: Instance,
    /// A call was stopped anywhere: load afresh before the next.
    poisoned: bool,
}

/// What an engine is made from.
struct Spec {
    path: String,
    source: Vec<u8>,
    memory_bytes: usize,
    link: Arc<Link>,
    /// When the code running now must stop; read by the interrupt handler.
    deadline: Rc<Cell<Option<Instant>>>,
    /// Set by the interrupt handler when it stopped the code.
    interrupted: Rc<Cell<bool>>,
}

/// One engine with the module loaded. Fields drop in order: the
/// persistent values before the context, the context before the engine.
struct Instance {
    serve: Persistent<Function<'static>>,
    plugin: Persistent<Object<'static>>,
    context: Context,
    _engine: Engine,
}

impl JsPlugin {
    /// Reads the bundle (from the fd the supervisor passed, or its path),
    /// evaluates it and runs its `init`.
    pub(crate) fn load(hello: &Hello, link: Arc<Link>) -> Result<Self, LoadError> {
        let path = hello.entry.clone();
        let source = super::read_entry(hello)?;
        let spec = Spec {
            path,
            source,
            memory_bytes: usize::try_from(hello.memory_bytes).unwrap_or(usize::MAX),
            link,
            deadline: Rc::default(),
            interrupted: Rc::default(),
        };
        let instance = spec.instantiate().map_err(|message| LoadError::Js {
            path: spec.path.clone(),
            message,
        })?;
        Ok(Self {
            spec,
            instance,
            poisoned: false,
        })
    }

    /// Runs `what` within `limit`; a stopped run leaves the instance to be
    /// replaced. Returns what `what` did, and whether it was stopped.
    fn bounded<R>(&mut self, limit: Duration, what: impl FnOnce(&Instance) -> R) -> (R, bool) {
        self.spec.deadline.set(Some(Instant::now() + limit));
        let result = what(&self.instance);
        self.spec.deadline.set(None);
        let stopped = self.spec.interrupted.take();
        self.poisoned |= stopped;
        (result, stopped)
    }
}

impl Spec {
    /// A fresh engine with the module evaluated and `init` run.
    fn instantiate(&self) -> Result<Instance, String> {
        let started = Instant::now();
        let engine = Engine::new().map_err(|error| format!("cannot start the engine: {error}"))?;
        engine.set_memory_limit(self.memory_bytes);
        engine.set_max_stack_size(STACK_BYTES);
        engine.set_loader(
            BuiltinResolver::default().with_module("corral"),
            BuiltinLoader::default().with_module("corral", HOST_MODULE),
        );
        let (deadline, interrupted) = (self.deadline.clone(), self.interrupted.clone());
        engine.set_interrupt_handler(Some(Box::new(move || {
            let stop = deadline.get().is_some_and(|at| Instant::now() >= at);
            if stop {
                interrupted.set(true);
            }
            stop
        })));
        let context =
            Context::full(&engine).map_err(|error| format!("cannot make a context: {error}"))?;
        self.deadline.set(Some(Instant::now() + HOUSEKEEPING));
        let loaded = context.with(|ctx| self.evaluate(&ctx));
        self.deadline.set(None);
        if self.interrupted.take() {
            return Err(format!(
                "loading the module and `init` ran past {} s and were stopped",
                HOUSEKEEPING.as_secs()
            ));
        }
        let (serve, plugin) = loaded?;
        tracing::debug!(
            "module evaluated and initialized in {:?}",
            started.elapsed()
        );
        Ok(Instance {
            serve,
            plugin,
            context,
            _engine: engine,
        })
    }

    /// Evaluates the module and runs its `init`; returns `corral`'s
    /// dispatcher and the module's exports.
    #[allow(
        clippy::type_complexity,
        reason = "the two persistent handles an instance keeps"
    )]
    fn evaluate<'js>(
        &self,
        ctx: &Ctx<'js>,
    ) -> Result<(Persistent<Function<'static>>, Persistent<Object<'static>>), String> {
        bind(ctx, &self.link).map_err(|error| format!("cannot bind the host: {error}"))?;
        let (module, evaluated) =
            Module::declare(ctx.clone(), self.path.as_str(), self.source.as_slice())
                .catch(ctx)
                .map_err(|error| format!("cannot parse the module: {}", describe(&error)))?
                .eval()
                .catch(ctx)
                .map_err(|error| format!("the module failed: {}", describe(&error)))?;
        evaluated
            .finish::<()>()
            .catch(ctx)
            .map_err(|error| format!("the module failed: {}", describe(&error)))?;
        let exports = module
            .namespace()
            .catch(ctx)
            .map_err(|error| format!("the module's exports: {}", describe(&error)))?;
        let host: Object<'js> = Module::import(ctx, "corral")
            .and_then(|imported| imported.finish())
            .catch(ctx)
            .map_err(|error| format!("the `corral` module failed: {}", describe(&error)))?;
        let serve: Function<'js> = host
            .get("__serve")
            .map_err(|error| format!("the `corral` module has no dispatcher: {error}"))?;
        if let Ok(init) = exports.get::<_, Function<'js>>("init") {
            let done: Value<'js> = init
                .call(())
                .catch(ctx)
                .map_err(|error| format!("init failed: {}", describe(&error)))?;
            if let Some(promise) = done.as_promise() {
                promise
                    .finish::<Value<'js>>()
                    .catch(ctx)
                    .map_err(|error| format!("init failed: {}", describe(&error)))?;
            }
        }
        Ok((Persistent::save(ctx, serve), Persistent::save(ctx, exports)))
    }
}

impl Instance {
    /// Runs `method` through the dispatcher of `corral` and copies the
    /// reply into `out`.
    fn run(&self, method: &str, input: &[u8], out: &mut ReplyBuf<'_>) -> Result<(), RemoteError> {
        self.context.with(|ctx| {
            let failed = |error: CaughtError<'_>| {
                RemoteError::new(
                    ErrorKind::Plugin,
                    format!("call `{method}` failed: {}", describe(&error)),
                )
            };
            let serve = self
                .serve
                .clone()
                .restore(&ctx)
                .catch(&ctx)
                .map_err(failed)?;
            let plugin = self
                .plugin
                .clone()
                .restore(&ctx)
                .catch(&ctx)
                .map_err(failed)?;
            let input = TypedArray::<u8>::new_copy(ctx.clone(), input)
                .catch(&ctx)
                .map_err(failed)?;
            let pending: Promise<'_> = serve
                .call((plugin, method, input))
                .catch(&ctx)
                .map_err(failed)?;
            let reply: Value<'_> = match pending.finish::<Value<'_>>() {
                Err(rquickjs::Error::WouldBlock) => {
                    return Err(RemoteError::new(
                        ErrorKind::Plugin,
                        format!(
                            "call `{method}` awaits a promise nothing can settle \
                             (a plugin can await host services, not timers or I/O)"
                        ),
                    ));
                }
                other => other.catch(&ctx).map_err(failed)?,
            };
            if let Ok(bytes) = TypedArray::<u8>::from_value(reply.clone()) {
                return copy_out(&bytes, out);
            }
            let answer: Array<'_> = reply.get().catch(&ctx).map_err(failed)?;
            let code: i32 = answer.get(0).catch(&ctx).map_err(failed)?;
            let message: String = answer.get(1).catch(&ctx).map_err(failed)?;
            Err(RemoteError::new(ErrorKind::from_code(code), message))
        })
    }
}

impl Runtime for JsPlugin {
    fn call(
        &mut self,
        method: &str,
        input: &[u8],
        deadline: Duration,
        out: &mut ReplyBuf<'_>,
    ) -> Result<(), RemoteError> {
        self.recover();
        let (result, stopped) = self.bounded(super::stop_within(deadline), |instance| {
            instance.run(method, input, out)
        });
        if stopped {
            return Err(RemoteError::new(
                ErrorKind::Timeout,
                format!(
                    "call `{method}` ran past its deadline ({} ms) and was stopped",
                    deadline.as_millis()
                ),
            ));
        }
        result
    }

    /// The module's `health` export (healthy when it has none): anything
    /// but `false` (or a promise of it) is healthy; a throw is not.
    fn health(&mut self) -> bool {
        self.recover();
        let (healthy, _) = self.bounded(Duration::from_secs(1), |instance| {
            instance.context.with(|ctx| {
                let plugin = instance.plugin.clone().restore(&ctx).ok()?;
                let Ok(health) = plugin.get::<_, Function<'_>>("health") else {
                    return Some(true);
                };
                // A throw is caught here, so that it is not left pending.
                let mut verdict: Value<'_> = health.call(()).catch(&ctx).ok()?;
                if let Some(promise) = verdict.as_promise() {
                    verdict = promise.finish().catch(&ctx).ok()?;
                }
                Some(verdict.as_bool() != Some(false))
            })
        });
        healthy.unwrap_or(false)
    }

    /// Loads the module afresh after a call was stopped; runs between
    /// calls.
    fn recover(&mut self) {
        if !std::mem::take(&mut self.poisoned) {
            return;
        }
        match self.spec.instantiate() {
            Ok(instance) => self.instance = instance,
            Err(problem) => {
                tracing::error!("cannot load the module afresh after a stopped call: {problem}");
                std::process::exit(3);
            }
        }
    }
}

/// An exception as one line: `Name: message at FUNCTION (FILE:LINE:COLUMN)`,
/// with the plugin folder's path left out; a module that imports anything
/// but `corral` is told how to bundle.
fn describe(error: &CaughtError<'_>) -> String {
    let CaughtError::Exception(exception) = error else {
        return error.to_string();
    };
    let name: String = exception.get("name").unwrap_or_else(|_| "Error".to_owned());
    let message = exception.message().unwrap_or_default();
    let mut line = format!("{name}: {message}");
    let place = exception.stack().and_then(|stack| {
        let frame = stack
            .lines()
            .map(str::trim)
            .find(|frame| frame.starts_with("at "))?;
        Some(shorten(frame))
    });
    if let Some(place) = place {
        line = format!("{line} {place}");
    }
    if message.contains("resolving module") {
        line += " (a plugin imports only `corral`: bundle its npm packages into the module, \
                 e.g. `esbuild --bundle --format=esm --external:corral`; Node's built-in \
                 modules do not exist here)";
    }
    line
}

/// `frame` with the folders of its file names left out.
fn shorten(frame: &str) -> String {
    let mut out = String::with_capacity(frame.len());
    for word in frame.split_inclusive(['(', ' ']) {
        match word.rfind('/') {
            Some(slash) => out.push_str(&word[slash + 1..]),
            None => out.push_str(word),
        }
    }
    out
}

/// Copies the reply's bytes into `out`.
#[allow(unsafe_code, reason = "reads the engine's buffer in place")]
fn copy_out(bytes: &TypedArray<'_, u8>, out: &mut ReplyBuf<'_>) -> Result<(), RemoteError> {
    let Some(raw) = bytes.as_raw() else {
        return Err(RemoteError::new(
            ErrorKind::Plugin,
            "the reply's buffer was detached",
        ));
    };
    let len = raw.len();
    let Some(to) = out.reserve(len) else {
        return Err(super::too_large(len));
    };
    // SAFETY: `as_raw` points at the array's `len` live bytes, valid until
    // JavaScript runs again, which it does not before this copy.
    to.copy_from_slice(unsafe { raw.as_ref() });
    Ok(())
}

/// The bytes of a `Uint8Array` argument.
#[allow(unsafe_code, reason = "reads the engine's buffer in place")]
fn bytes_of(array: &TypedArray<'_, u8>) -> Vec<u8> {
    // SAFETY: as in `copy_out`: no JavaScript runs while the slice lives.
    array
        .as_raw()
        .map(|raw| unsafe { raw.as_ref() }.to_vec())
        .unwrap_or_default()
}

/// Installs `globalThis.__corral`, what `corral.js` binds to.
fn bind<'js>(ctx: &Ctx<'js>, link: &Arc<Link>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "log",
        Function::new(ctx.clone(), |level: i32, text: String| {
            crate::host::log_message(LogLevel::from_abi(level), &text);
        })?,
    )?;
    #[allow(
        clippy::cast_precision_loss,
        reason = "milliseconds since 1970 stay below 2^53"
    )]
    host.set(
        "nowMs",
        Function::new(ctx.clone(), || crate::host::unix_ms() as f64)?,
    )?;
    let service = link.clone();
    host.set(
        "call",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, op: String, input: TypedArray<'js, u8>| {
                let (code, reply) = match service.host_call(&op, &bytes_of(&input)) {
                    Ok(reply) => (abi::CALL_OK, reply),
                    Err(error) => (error.kind.code(), error.message.into_bytes()),
                };
                let answer = Array::new(ctx.clone())?;
                answer.set(0, code)?;
                answer.set(1, TypedArray::<u8>::new(ctx, reply)?)?;
                Ok::<_, rquickjs::Error>(answer)
            },
        )?,
    )?;
    let settings = link.clone();
    host.set(
        "config",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
            let text = settings
                .host_call(abi::OP_CONFIG, &[])
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            let table: toml::Table = toml::from_str(&text).unwrap_or_default();
            to_js(&ctx, &toml::Value::Table(table))
        })?,
    )?;
    host.set(
        "encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| {
            TypedArray::<u8>::new(ctx, text.into_bytes())
        })?,
    )?;
    host.set(
        "decode",
        Function::new(ctx.clone(), |bytes: TypedArray<'js, u8>| {
            String::from_utf8_lossy(&bytes_of(&bytes)).into_owned()
        })?,
    )?;
    ctx.globals().set("__corral", host)
}

/// A TOML value as a JavaScript one (dates as their TOML text).
fn to_js<'js>(ctx: &Ctx<'js>, value: &toml::Value) -> rquickjs::Result<Value<'js>> {
    use rquickjs::IntoJs;
    Ok(match value {
        toml::Value::String(text) => text.as_str().into_js(ctx)?,
        #[allow(clippy::cast_precision_loss, reason = "JavaScript numbers are doubles")]
        toml::Value::Integer(number) => (*number as f64).into_js(ctx)?,
        toml::Value::Float(number) => number.into_js(ctx)?,
        toml::Value::Boolean(flag) => flag.into_js(ctx)?,
        toml::Value::Datetime(datetime) => datetime.to_string().into_js(ctx)?,
        toml::Value::Array(items) => {
            let array = Array::new(ctx.clone())?;
            for (index, item) in items.iter().enumerate() {
                array.set(index, to_js(ctx, item)?)?;
            }
            array.into_value()
        }
        toml::Value::Table(table) => {
            let object = Object::new(ctx.clone())?;
            for (key, item) in table {
                object.set(key.as_str(), to_js(ctx, item)?)?;
            }
            object.into_value()
        }
    })
}
