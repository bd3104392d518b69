// Which TF.js kernels a graph model dispatches, and which kernels the WebGL, WASM and CPU backends register.
// Usage: node kernels_node.mjs MODEL_JSON
// Runs the model once on the CPU backend, on zeros (dynamic dimensions as 1), under tf.profile, which records every
// kernel run in order. Kernel names are the same on every backend (ops call ENGINE.runKernel(name)); a backend lacks
// a kernel when it has not registered that name. Registering happens when a backend's package is imported, so
// WebGL's list is complete in Node although WebGL itself cannot start here.
// Prints one JSON object; on failure, exit code 1 and a line `edgezoo-harness-error: MESSAGE` on stderr.

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";

import { loadGraphModelFile } from "./load_node.mjs";

async function main() {
  const [modelJsonPath] = process.argv.slice(2);
  if (!modelJsonPath) throw new Error("usage: node kernels_node.mjs MODEL_JSON");
  if (!(await tf.setBackend("cpu"))) throw new Error("the TF.js cpu backend could not start");
  await tf.ready();
  const { model } = await loadGraphModelFile(tf, modelJsonPath);
  const feed = {};
  for (const input of model.inputs) {
    const shape = (input.shape || []).map((d) => (d == null || d < 0 ? 1 : d));
    feed[input.name] = tf.zeros(shape, input.dtype === "int32" || input.dtype === "bool" ? input.dtype : "float32");
  }
  const info = await tf.profile(async () => {
    const out = await model.executeAsync(feed);
    tf.dispose(out);
  });
  const kernels = info.kernels.map((k) => ({ name: k.name, inputShapes: k.inputShapes, outputShapes: k.outputShapes }));
  const registered = Object.fromEntries(
    ["webgl", "wasm", "cpu"].map((backend) => [backend, tf.getKernelsForBackend(backend).map((k) => k.kernelName)]),
  );
  process.stdout.write(JSON.stringify({ tfjs_version: tf.version.tfjs, kernels, registered }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`edgezoo-harness-error: ${error && error.message ? error.message : error}\n${error && error.stack}\n`);
  process.exit(1);
});
