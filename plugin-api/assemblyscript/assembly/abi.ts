// The WebAssembly guest ABI, version 1 (README, "WebAssembly guest ABI"):
// the exports corral calls. AssemblyScript exports only what the entry
// file exports, so a plugin's entry file says
//
//     export * from "@corral/plugin-as/assembly/abi";
//
// Memory handed to the host comes from the allocator directly
// (`heap.alloc`), outside the garbage collector: it stays valid until the
// host gives it back with `dealloc`, whatever the collector does.

import { dispatch, runHealth, runInit, runShutdown } from "./plugin";
import { CallCode, Reply, fail } from "./reply";
import { LogLevel, writeLog } from "./host";
import { text, utf8 } from "./utf8";

let initialized = false;

/** The guest ABI version this library speaks. */
export function corral_abi_version(): i32 {
  return 1;
}

/** `len` bytes for the host to write into (0 for none). */
export function alloc(len: usize): usize {
  return len == 0 ? 0 : heap.alloc(len);
}

/** Frees what `alloc` or a reply allocated. */
export function dealloc(ptr: usize, len: usize): void {
  if (ptr != 0) heap.free(ptr);
}

/** Runs the plugin's `onInit`: 0 when it is ready. */
export function init(): i32 {
  let reply = runInit();
  if (!reply.ok) {
    writeLog(LogLevel.Error, "init failed: " + text(reply.bytes));
    return 1;
  }
  initialized = true;
  return 0;
}

/** One call: the reply (or UTF-8 message) as `[ptr, len]` at `out`. */
export function call(method: usize, methodLen: usize, input: usize, inputLen: usize, out: usize): i32 {
  let reply: Reply;
  let name = new Uint8Array(<i32>methodLen);
  memory.copy(name.dataStart, method, methodLen);
  let methodName = utf8(name);
  if (!initialized) {
    reply = fail("plugin is not initialized");
  } else if (methodName === null) {
    reply = fail("method name is not UTF-8");
  } else {
    let data = new Uint8Array(<i32>inputLen);
    memory.copy(data.dataStart, input, inputLen);
    reply = dispatch(methodName, data);
  }
  let code = reply.code;
  if (code < CallCode.Ok || code > CallCode.Panic) {
    code = CallCode.Plugin;
  }
  let len = <usize>reply.bytes.byteLength;
  let ptr: usize = 0;
  if (len != 0) {
    ptr = heap.alloc(len);
    memory.copy(ptr, reply.bytes.dataStart, len);
  }
  store<u32>(out, <u32>ptr);
  store<u32>(out, <u32>len, 4);
  return code;
}

/** 0 when healthy (`onHealth`; healthy without one). */
export function health(): i32 {
  if (!initialized) return 1;
  return runHealth() ? 0 : 1;
}

/** The instance is about to go (`onShutdown`). */
export function shutdown(): void {
  if (initialized) runShutdown();
  initialized = false;
}
