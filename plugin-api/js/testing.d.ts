// Types of `corral/testing`: a plugin's tests under Node.

/** The fake host the `corral` module runs on under Node. */
export const host: {
  /** The plugin's `[config]`, as `config()` returns it. */
  config: Record<string, unknown>;
  /** The plugin's storage. */
  kv: Map<string, Uint8Array>;
  /** Publications, in order. */
  published: { topic: string; payload: Uint8Array }[];
  /** Log lines, in order (level 1 error … 5 trace). */
  logs: { level: number; text: string }[];
  /** `"PLUGIN/METHOD"` → what that plugin answers, for `call`. */
  plugins: Map<string, (input: Uint8Array) => Uint8Array | string>;
  /** Host services granted, as `[permissions] host` lists them; `undefined`: all. */
  grants: string[] | undefined;
};

/** A loaded plugin, called as the worker calls it. */
export interface Loaded {
  /** The reply's bytes; rejects with a `CorralError` as the worker would answer. */
  call(method: string, input?: Uint8Array | string): Promise<Uint8Array>;
  callText(method: string, input?: Uint8Array | string): Promise<string>;
  /** Delivers a publication on `topic` to the plugin's `on_event`. */
  event(topic: string, payload?: Uint8Array): Promise<void>;
}

/** Runs the module's `init` and returns a caller for its methods. */
export function load(module: object): Promise<Loaded>;

/** Empties storage, publications, logs, fakes and settings. */
export function reset(): void;
