// Runs a TF.js graph model on named inputs for edgezoo's parity checks. Shared by run_node.mjs (Node)
// and index.html (headless browser); each passes in its own TF.js and its own way to read and write files.
//
// Exchange with Python, in one folder: inputs.json {"inputs": {NAME: {shape, dtype, file}}} with raw
// little-endian arrays in the named files; the outputs come back the same way as outputs.json.
// NAME is always the signature's name: graph tensor names (Identity:0, StatefulPartitionedCall:1) stay inside.

const ARRAY_TYPES = { float32: Float32Array, int32: Int32Array };
const DEFAULT_BATCH = 32;

// The signature's names -> graph tensor names and static batch size (-1 when dynamic).
export function signatureOf(modelJson) {
  const table = (entries) =>
    Object.fromEntries(
      Object.entries(entries || {}).map(([name, spec]) => {
        const dims = (spec.tensorShape && spec.tensorShape.dim) || [];
        return [name, { tensor: spec.name, batch: dims.length ? Number(dims[0].size ?? -1) : -1 }];
      }),
    );
  const signature = modelJson.signature || {};
  return { inputs: table(signature.inputs), outputs: table(signature.outputs) };
}

export async function readArrays(manifest, readBytes) {
  const arrays = {};
  for (const [name, spec] of Object.entries(manifest)) {
    const Type = ARRAY_TYPES[spec.dtype];
    if (!Type) throw new Error(`input ${name} has dtype ${spec.dtype}; the harness takes ${Object.keys(ARRAY_TYPES).join(", ")}`);
    const bytes = new Uint8Array(await readBytes(spec.file)); // a fresh, aligned copy
    arrays[name] = { shape: spec.shape, dtype: spec.dtype, data: new Type(bytes.buffer) };
  }
  return arrays;
}

export async function writeArrays(arrays, writeBytes) {
  const manifest = {};
  let index = 0;
  for (const [name, array] of Object.entries(arrays)) {
    const file = `output_${index++}.bin`;
    await writeBytes(file, new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength));
    manifest[name] = { shape: array.shape, dtype: array.dtype, file };
  }
  return { outputs: manifest };
}

// A batch of rows [start, start+count) as a tensor; padded by repeating the last row up to `size`.
function batchTensor(tf, array, start, count, size) {
  const rowShape = array.shape.slice(1);
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const Type = array.data.constructor;
  const data = new Type(size * rowSize);
  data.set(array.data.subarray(start * rowSize, (start + count) * rowSize));
  for (let row = count; row < size; row++) data.copyWithin(row * rowSize, (count - 1) * rowSize, count * rowSize);
  return tf.tensor(data, [size, ...rowShape], array.dtype);
}

export async function runModel(tf, model, signature, inputs) {
  const inputNames = Object.keys(signature.inputs);
  const missing = inputNames.filter((name) => !(name in inputs));
  if (missing.length) throw new Error(`missing inputs ${missing.join(", ")}; given ${Object.keys(inputs).join(", ")}`);
  const outputNames = Object.keys(signature.outputs);
  const outputTensors = outputNames.map((name) => signature.outputs[name].tensor);
  const count = inputs[inputNames[0]].shape[0];
  const fixedBatch = signature.inputs[inputNames[0]].batch;
  const step = fixedBatch > 0 ? fixedBatch : DEFAULT_BATCH;
  const parts = Object.fromEntries(outputNames.map((name) => [name, []]));
  const meta = {};
  for (let start = 0; start < count; start += step) {
    const taken = Math.min(step, count - start);
    const feed = {};
    for (const name of inputNames) feed[signature.inputs[name].tensor] = batchTensor(tf, inputs[name], start, taken, step);
    let results = await model.executeAsync(feed, outputTensors);
    results = Array.isArray(results) ? results : [results];
    for (let i = 0; i < outputNames.length; i++) {
      const tensor = results[i];
      const rowSize = tensor.size / tensor.shape[0];
      meta[outputNames[i]] = { rowShape: tensor.shape.slice(1), dtype: tensor.dtype };
      // Values by the tensor's dtype: TF.js' CPU backend hands back some float32 tensors' values as an Int32Array (a
      // detector's NonMaxSuppressionV4 count cast to float32), whose raw bytes would read as 6e-45 instead of 4.
      const values = await tensor.data();
      const Type = ARRAY_TYPES[tensor.dtype];
      parts[outputNames[i]].push((Type && !(values instanceof Type) ? Type.from(values) : values).slice(0, rowSize * taken));
    }
    tf.dispose([...Object.values(feed), ...results]);
  }
  const outputs = {};
  for (const name of outputNames) {
    const Type = parts[name][0].constructor;
    const data = new Type(parts[name].reduce((total, part) => total + part.length, 0));
    let offset = 0;
    for (const part of parts[name]) {
      data.set(part, offset);
      offset += part.length;
    }
    outputs[name] = { shape: [count, ...meta[name].rowShape], dtype: meta[name].dtype, data };
  }
  return outputs;
}
