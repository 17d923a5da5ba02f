#!/usr/bin/env node
// Times ONNX Runtime's forward pass of a model (default graph optimizations,
// one intra-op thread unless --threads), printing JSON: the best of 5 rounds
// of --iters runs (default 50) after as many warm-up runs (at most 20).
// The input is float32 in [0, 1), or with --ids V int64 token ids in [0, V).
//   node ort_forward_time.js MODEL.onnx "64x784" [--threads T] [--iters K] [--ids V]
'use strict';
const { loadOrt } = require('../tests/ort/ort_loader.js');

function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main() {
  const [model, shapeSpec] = process.argv.slice(2);
  const threads = flag('--threads', 1);
  const iters = flag('--iters', 50);
  const vocab = flag('--ids', 0);
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads });
  const shape = shapeSpec.split('x').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  let tensor;
  if (vocab > 0) {
    const ids = new BigInt64Array(count);
    for (let k = 0; k < count; k++) ids[k] = BigInt((k * 7919) % vocab);
    tensor = new ort.Tensor('int64', ids, shape);
  } else {
    const data = new Float32Array(count);
    for (let k = 0; k < count; k++) data[k] = (k % 97) / 97;
    tensor = new ort.Tensor('float32', data, shape);
  }
  const feeds = { [session.inputNames[0]]: tensor };
  for (let k = 0; k < Math.min(20, iters); k++) await session.run(feeds);
  let best = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < iters; k++) await session.run(feeds);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iters / 1e6);
  }
  console.log(JSON.stringify({ ms: best }));
}

main().catch((e) => { console.error(e.message); process.exit(1); });
