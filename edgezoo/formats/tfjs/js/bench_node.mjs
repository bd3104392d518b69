// Latency of a TF.js graph model in Node, for `edgezoo bench`: warm-up runs, then timed runs on one sample.
// Usage: node bench_node.mjs SPEC_JSON, where SPEC names the model.json, the inputs (harness.mjs' inputs.json
// form, one sample each), warmup and runs. Prints {"times_ms", "peak_rss_bytes", "runtime_rss_bytes"}.
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";

import * as tf from "@tensorflow/tfjs";

import { readArrays, signatureOf } from "./harness.mjs";
import { loadGraphModelFile } from "./load_node.mjs";

async function main() {
  const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
  await tf.setBackend("cpu");
  await tf.ready();
  const runtimeRss = process.memoryUsage().rss; // TF.js loaded, no model yet
  const { model, modelJson } = await loadGraphModelFile(tf, spec.model);
  const signature = signatureOf(modelJson);
  const arrays = await readArrays(spec.inputs, (file) => readFile(join(dirname(process.argv[2]), file)));
  const feed = {};
  for (const [name, array] of Object.entries(arrays)) feed[signature.inputs[name].tensor] = tf.tensor(array.data, array.shape, array.dtype);
  const outputs = Object.values(signature.outputs).map((o) => o.tensor);
  const run = async () => {
    const result = await model.executeAsync(feed, outputs);
    await Promise.all((Array.isArray(result) ? result : [result]).map((t) => t.data()));
    tf.dispose(result);
  };
  for (let i = 0; i < spec.warmup; i++) await run();
  const times = [];
  for (let i = 0; i < spec.runs; i++) {
    const start = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const peak = process.resourceUsage().maxRSS * 1024; // kilobytes
  process.stdout.write(JSON.stringify({ times_ms: times, peak_rss_bytes: peak, runtime_rss_bytes: runtimeRss }) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: `${error && error.message ? error.message : error}` }) + "\n");
  process.exit(1);
});
