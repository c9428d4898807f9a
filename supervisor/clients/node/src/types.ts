// The data the supervisor answers with, as its JSON has them: field names
// in snake_case, exactly as `corral ps --json` and `corral inspect --json`
// print them (`corral_plugin_api::wire::host`).

/** Where a plugin is in its lifecycle. */
export type PluginState =
  | "installed"
  | "starting"
  | "ready"
  | "unhealthy"
  | "backoff"
  | "crashloop"
  | "stopping"
  | "stopped"
  | "failed"
  | "disabled";

/** An admin action on a plugin ({@link Corral.control}). */
export type Action = "start" | "stop" | "restart" | "enable" | "disable" | "reload";

/** A fault to inject into a worker (`corral serve --faults` only; for tests). */
export type Fault = "crash_on_next_call" | "fill_memory";

/** How a worker process ended. */
export interface ExitInfo {
  at_unix_ms: number;
  code: number | null;
  signal: number | null;
  /** `clean`, `exit_code`, `signal`, `seccomp`, `cpu_limit`, `out_of_memory`, `call_deadline`, … */
  cause: string;
  /** One line for people: `killed by SIGKILL`, `exited with code 3: …`. */
  description: string;
  /** The worker's last lines of output. */
  output: string[];
}

/** One plugin's status, as `corral ps` shows it. */
export interface PluginInfo {
  name: string;
  version: string | null;
  dir: string;
  state: PluginState;
  pid: number | null;
  uptime_ms: number | null;
  start_us: number | null;
  restarts: number;
  generation: number;
  rss_bytes: number | null;
  cpu_percent: number | null;
  memory_limit_bytes: number | null;
  last_exit: ExitInfo | null;
  error: string | null;
  calls: number;
  /** Failed calls by error kind: `[kind, count]` pairs. */
  errors: Array<[string, number]>;
  in_flight: number;
  latency_p50_us: number | null;
  latency_p99_us: number | null;
  spare_pid: number | null;
  /** The extension points it serves (`[plugin] provides`). */
  provides: string[];
  spawn_mode: "zygote" | "exec" | null;
}

/** The limits a worker runs under. */
export interface EffectiveLimits {
  memory_bytes: number;
  cpu_seconds: number | null;
  cpu_percent: number | null;
  call_timeout_ms: number;
  open_files: number;
  threads: number;
  file_size_bytes: number;
  wasm_fuel: number;
  storage_bytes: number;
  storage_keys: number;
}

/** Everything `corral inspect` shows about one plugin. */
export interface PluginDetails {
  info: PluginInfo;
  manifest: string;
  kind: "native" | "wasm" | "js";
  entry: string;
  read: string[];
  write: string[];
  network: boolean;
  limits: EffectiveLimits;
  /** The sandbox layers of the current (or last) worker. */
  layers: Array<{ name: string; active: boolean; detail: string }>;
  /** Recent exits, newest last. */
  exits: ExitInfo[];
  host: string[];
  subscribe: string[];
  /** Declared methods: `[name, description]` pairs. */
  methods: Array<[string, string]>;
  /** The effective `[config]`, TOML text. */
  config: string;
  syscalls: string[];
  refused: Array<{ syscall: string; tier: string; count: number }>;
  /** Fields a newer supervisor adds. */
  [more: string]: unknown;
}

/** Something that happened to a plugin, as `corral events` shows it. */
export interface CorralEvent {
  /** Increases by one per event, from 1: pass the last one seen as `after`. */
  seq: number;
  at_unix_ms: number;
  /** The plugin; empty for the supervisor itself. */
  plugin: string;
  generation: number;
  /** `state`, `exit`, `reload`, `reload_failed`, `health`, `admin`, `denied`, `limit`. */
  kind: string;
  /** What happened, for people (`ready -> backoff`). */
  detail: string;
}

/** A publication, as a subscriber receives it. */
export interface Message {
  /** The topic it was published on. */
  topic: string;
  /** Who published it: a plugin's name, or empty for a host app. */
  from: string;
  payload: Uint8Array;
}
