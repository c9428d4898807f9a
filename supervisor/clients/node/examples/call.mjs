#!/usr/bin/env node
// Calls one plugin method and prints the reply's bytes:
//
//     node examples/call.mjs PLUGIN METHOD [INPUT]     (INPUT `-`: read stdin)
//
// The socket is $CORRAL_SOCKET, else corral's default. Exit codes: 0 the
// reply is on stdout; 1 corral or the plugin said no (kind and message on
// stderr); 2 bad usage.

import { Corral, CorralError } from "@corral/client";

const [plugin, method, input = ""] = process.argv.slice(2);
if (!plugin || !method || process.argv.length > 5) {
  console.error("usage: node examples/call.mjs PLUGIN METHOD [INPUT]");
  process.exit(2);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

let corral;
try {
  corral = await Corral.connect({ client: "call.mjs" });
  const reply = await corral.call(plugin, method, input === "-" ? await readStdin() : input);
  process.stdout.write(reply);
} catch (error) {
  if (!(error instanceof CorralError)) {
    throw error;
  }
  console.error(`corral: ${error.kind}: ${error.message}`);
  process.exitCode = 1;
} finally {
  corral?.close();
}
