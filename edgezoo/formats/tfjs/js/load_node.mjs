// A TF.js graph model read from disk in Node (the pure-JS @tensorflow/tfjs has no file:// loader of its own).
// Node only: the browser page loads harness.mjs, which must not import node:fs.
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

// The model.json as parsed, and the graph model with its weight shards read from beside it.
export async function loadGraphModelFile(tf, modelJsonPath) {
  const modelJson = JSON.parse(await readFile(modelJsonPath, "utf8"));
  const folder = dirname(modelJsonPath);
  const loadWeights = async (manifest) => {
    const specs = manifest.flatMap((group) => group.weights);
    const buffers = [];
    for (const group of manifest) for (const path of group.paths) buffers.push(await readFile(join(folder, path)));
    const all = Buffer.concat(buffers);
    return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
  };
  const model = await tf.loadGraphModel({ load: () => tf.io.getModelArtifactsForJSON(modelJson, loadWeights) });
  return { model, modelJson };
}
