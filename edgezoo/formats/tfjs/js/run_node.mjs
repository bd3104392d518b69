// Runs a TF.js graph model in Node on the inputs in an exchange folder (see harness.mjs).
// Usage: node run_node.mjs MODEL_JSON EXCHANGE_DIR [cpu|wasm]
// Prints {"backend": ...} on success; on failure, exit code 1 and a line `edgezoo-harness-error: MESSAGE` on stderr.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import * as tf from "@tensorflow/tfjs";

import { readArrays, runModel, signatureOf, writeArrays } from "./harness.mjs";
import { loadGraphModelFile } from "./load_node.mjs";

async function main() {
  const [modelJsonPath, exchangeDir, backend = "cpu"] = process.argv.slice(2);
  if (!modelJsonPath || !exchangeDir) throw new Error("usage: node run_node.mjs MODEL_JSON EXCHANGE_DIR [cpu|wasm]");
  if (backend === "wasm") await import("@tensorflow/tfjs-backend-wasm");
  if (!(await tf.setBackend(backend))) throw new Error(`the TF.js ${backend} backend could not start`);
  await tf.ready();
  const { model, modelJson } = await loadGraphModelFile(tf, modelJsonPath);
  const manifest = JSON.parse(await readFile(join(exchangeDir, "inputs.json"), "utf8"));
  const inputs = await readArrays(manifest.inputs, (file) => readFile(join(exchangeDir, file)));
  const outputs = await runModel(tf, model, signatureOf(modelJson), inputs);
  const written = await writeArrays(outputs, (file, bytes) => writeFile(join(exchangeDir, file), bytes));
  await writeFile(join(exchangeDir, "outputs.json"), JSON.stringify(written));
  process.stdout.write(JSON.stringify({ backend: tf.getBackend() }) + "\n");
}

main().catch((error) => {
  // One marked line for edgezoo's message, then the stack for whoever debugs the harness.
  process.stderr.write(`edgezoo-harness-error: ${error && error.message ? error.message : error}\n${error && error.stack}\n`);
  process.exit(1);
});
