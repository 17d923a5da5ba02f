#!/usr/bin/env node
// Times ONNX Runtime's forward pass of a model at batch 64 (default graph
// optimizations, one intra-op thread unless --threads), printing JSON.
//   node ort_forward_time.js MODEL.onnx "64x784" [--threads T]
'use strict';
const { loadOrt } = require('../tests/ort/ort_loader.js');

async function main() {
  const [model, shapeSpec] = process.argv.slice(2);
  const i = process.argv.indexOf('--threads');
  const threads = i > 0 ? Number(process.argv[i + 1]) : 1;
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads });
  const shape = shapeSpec.split('x').map(Number);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let k = 0; k < data.length; k++) data[k] = (k % 97) / 97;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, shape) };
  for (let k = 0; k < 20; k++) await session.run(feeds);
  let best = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < 50; k++) await session.run(feeds);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 50 / 1e6);
  }
  console.log(JSON.stringify({ ms: best }));
}

main().catch((e) => { console.error(e.message); process.exit(1); });
