// Loads a TF.js graph model (graph and weights) in Node as an app would, and prints what TF.js hands the app as
// `model.metadata` (model.json's userDefinedMetadata) with the signature's names, as JSON.
// Usage: node read_metadata.mjs MODEL_JSON
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

import * as tf from "@tensorflow/tfjs";

async function main() {
  const [modelJsonPath] = process.argv.slice(2);
  if (!modelJsonPath) throw new Error("usage: node read_metadata.mjs MODEL_JSON");
  await tf.setBackend("cpu");
  const modelJson = JSON.parse(await readFile(modelJsonPath, "utf8"));
  const loadWeights = async (manifest) => {
    const buffers = [];
    for (const group of manifest) for (const path of group.paths) buffers.push(await readFile(join(dirname(modelJsonPath), path)));
    const all = Buffer.concat(buffers);
    return [manifest.flatMap((group) => group.weights), all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
  };
  const model = await tf.loadGraphModel({ load: () => tf.io.getModelArtifactsForJSON(modelJson, loadWeights) });
  const signature = model.modelSignature || {};
  const names = (specs) => Object.keys(specs || {}).sort();
  process.stdout.write(JSON.stringify({ metadata: model.metadata ?? null, inputs: names(signature.inputs), outputs: names(signature.outputs) }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`edgezoo-harness-error: ${error && error.message ? error.message : error}\n`);
  process.exit(1);
});
