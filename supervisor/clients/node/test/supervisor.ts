// The test harness: a real `corral serve` in a temporary folder with the
// `hello` example plugin (and `pdf`, the same library providing the
// `exporter` extension point), stopped by `stop()`, which kills only the
// process it started and removes the folder.

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Corral, CorralError, type PluginInfo } from "../src/index.js";

/** The package folder (this file runs from dist/test/). */
const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
/** The repository root. */
const REPO = path.resolve(PACKAGE, "../../..");

/** How long to wait for the supervisor or a plugin. */
const WAIT_MS = 30_000;

const BUILD_HINT =
  "run `cargo build -p corral --bin corral --bin corral-worker --bin corral-worker-native && cargo build -p hello` " +
  "at the repository root first, or set CORRAL_BIN and CORRAL_HELLO_LIB";

/** The `corral` binary: `$CORRAL_BIN`, else target/debug/corral of this repository. */
export function corralBin(): string {
  return process.env.CORRAL_BIN || path.join(REPO, "target/debug/corral");
}

/** The hello plugin's library: `$CORRAL_HELLO_LIB`, else libhello.so beside the corral binary. */
function helloLib(): string {
  return process.env.CORRAL_HELLO_LIB || path.join(path.dirname(corralBin()), "libhello.so");
}

let started = 0;

/** A running `corral serve`. */
export class Supervisor {
  private exited: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly socket: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    // Whatever happens to the test process, the supervisor goes with it.
    process.once("exit", () => this.child.exitCode === null && this.child.kill("SIGKILL"));
  }

  /** Starts `corral serve` on a fresh folder and waits until `hello` and `pdf` are ready. */
  static async start(): Promise<Supervisor> {
    for (const [file, what] of [
      [corralBin(), "the corral binary"],
      [helloLib(), "the hello plugin's library"],
    ] as const) {
      if (!fs.existsSync(file)) {
        throw new Error(`${what} is missing at ${file}: ${BUILD_HINT}`);
      }
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-node-"));
    const plugins = path.join(dir, "plugins");
    // The example folder as a host installs it: its manifest, the built library.
    const hello = path.join(plugins, "hello");
    fs.mkdirSync(hello, { recursive: true });
    fs.copyFileSync(path.join(REPO, "example-plugins/hello/plugin.toml"), path.join(hello, "plugin.toml"));
    fs.copyFileSync(helloLib(), path.join(hello, "libhello.so"));
    const pdf = path.join(plugins, "pdf");
    fs.mkdirSync(pdf);
    fs.copyFileSync(helloLib(), path.join(pdf, "libhello.so"));
    fs.writeFileSync(
      path.join(pdf, "plugin.toml"),
      '[plugin]\nname = "pdf"\nversion = "1.0.0"\nkind = "native"\nentry = "libhello.so"\napi = 1\nprovides = ["exporter"]\n',
    );
    const socket = path.join(dir, "corral.sock");
    const log = fs.openSync(path.join(dir, "corral.log"), "w");
    // Worker uids of their own, apart from concurrent test processes'.
    const uidBase = 400_000 + ((process.pid * 4 + started++) % 20_000) * 32;
    const env: NodeJS.ProcessEnv = { ...process.env, CORRAL_LOG: "debug" };
    delete env.CORRAL_SOCKET;
    const child = spawn(
      corralBin(),
      [
        "serve",
        "--plugins", plugins,
        "--socket", socket,
        "--state-dir", path.join(dir, "state"),
        "--worker-uid-base", String(uidBase),
      ],
      { stdio: ["ignore", log, log], env },
    );
    fs.closeSync(log);
    const supervisor = new Supervisor(dir, socket, child);
    try {
      await supervisor.waitAnswering();
      for (const plugin of ["hello", "pdf"]) {
        await supervisor.waitReady(plugin);
      }
    } catch (error) {
      await supervisor.stop();
      throw error;
    }
    return supervisor;
  }

  /** Whether the supervisor still runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Its pid. */
  get pid(): number {
    return this.child.pid!;
  }

  /** What it logged so far. */
  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, "corral.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** A client connected to it. */
  connect(): Promise<Corral> {
    return Corral.connect({ socket: this.socket, client: "node tests" });
  }

  /** Waits until `plugin` is ready, with another worker than `notPid` when given. */
  async waitReady(plugin: string, notPid?: number | null): Promise<PluginInfo> {
    const corral = await this.connect();
    try {
      return await until(`plugin ${plugin} ready`, async () => {
        const info = (await corral.list()).find((p) => p.name === plugin);
        return info?.state === "ready" && info.pid !== notPid ? info : undefined;
      }, this);
    } finally {
      corral.close();
    }
  }

  /** Kills it with `signal` and waits until it has exited. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.running) {
      this.child.kill(signal);
    }
    await this.exited;
  }

  /** Stops it (SIGTERM, then SIGKILL after 10 s) and removes its folder. */
  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitAnswering(): Promise<void> {
    await until("the socket answers", async () => {
      if (!this.running) {
        throw new Error(`corral serve exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.log()}`);
      }
      try {
        (await this.connect()).close();
        return true;
      } catch (error) {
        if (error instanceof CorralError && error.kind === "connect") {
          return undefined;
        }
        throw error;
      }
    }, this);
  }
}

/** Polls `check` every 50 ms until it gives a value; fails after 30 s with the supervisor's log. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, supervisor?: Supervisor): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() - start > WAIT_MS) {
      const log = supervisor ? `; corral's log:\n${supervisor.log()}` : "";
      throw new Error(`no ${what} within ${WAIT_MS} ms${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
