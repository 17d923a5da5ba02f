#!/usr/bin/env node
// Accuracy and latency of a classifier in ONNX Runtime, for `qat pipeline`'s
// table: default session options (all graph optimizations, so QDQ models run
// on ONNX Runtime's int8 kernels), one intra-op and one inter-op thread.
//
//   node ort_eval.js MODEL.onnx IDX_DIR [--shape 784|1,28,28] [--batch 64]
//        [--seconds 1] [--limit N] [--mean M] [--std S]
//
// Accuracy is measured on the IDX test set (t10k files, normalized as
// libqat's Dataset::FromIdx does); latency is the median wall time of
// session.run on one batch of `--batch` test images, after 5 warm-up runs,
// repeated for about `--seconds` (at least 10 runs).
// Prints {"accuracy": ..., "images": ..., "latency_ms": ..., "runs": ...}.
// Exit 77 when ONNX Runtime is missing, 1 on an error.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { loadOrt } = require('./ort_loader.js');

function readIdx(dir, stem) {
  const plain = path.join(dir, stem);
  const buf = fs.existsSync(plain) ? fs.readFileSync(plain)
    : zlib.gunzipSync(fs.readFileSync(`${plain}.gz`));
  const rank = buf[3];
  const dims = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  return { dims, data: buf.subarray(4 + 4 * rank) };
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const [model, dir] = args;
  const limit = Number(opt('--limit', '0'));
  const batchSize = Number(opt('--batch', '64'));
  const seconds = Number(opt('--seconds', '1'));
  const mean = Number(opt('--mean', '0.2860'));
  const std = Number(opt('--std', '0.3530'));
  const exampleShape = opt('--shape', '784').split(',').map(Number);
  const ort = loadOrt();
  // --optimizations disabled|basic|extended|all (default: ORT's own, all).
  const level = opt('--optimizations', '');
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1,
    ...(level ? { graphOptimizationLevel: level } : {}),
  });
  const images = readIdx(dir, 't10k-images-idx3-ubyte');
  const labels = readIdx(dir, 't10k-labels-idx1-ubyte');
  const n = limit > 0 ? Math.min(limit, images.dims[0]) : images.dims[0];
  const pixels = images.dims[1] * images.dims[2];
  if (exampleShape.reduce((a, b) => a * b, 1) !== pixels) {
    throw new Error(`--shape ${exampleShape} does not hold ${pixels} pixels`);
  }
  const input = session.inputNames[0];
  const batchOf = (start, m) => {
    const x = new Float32Array(m * pixels);
    for (let i = 0; i < m * pixels; i++) x[i] = (images.data[start * pixels + i] / 255 - mean) / std;
    return { [input]: new ort.Tensor('float32', x, [m, ...exampleShape]) };
  };
  let correct = 0;
  for (let start = 0; start < n; start += 500) {
    const m = Math.min(500, n - start);
    const out = await session.run(batchOf(start, m));
    const z = out[session.outputNames[0]];
    const classes = z.dims[1];
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (z.data[i * classes + c] > z.data[i * classes + best]) best = c;
      if (best === labels.data[start + i]) correct++;
    }
  }
  const feeds = batchOf(0, Math.min(batchSize, images.dims[0]));
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const times = [];
  const begin = process.hrtime.bigint();
  while (times.length < 10 || Number(process.hrtime.bigint() - begin) / 1e9 < seconds) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    accuracy: correct / n, images: n, latency_ms: times[Math.floor(times.length / 2)],
    runs: times.length, batch: batchSize,
  }));
}

main().catch((e) => {
  console.error(`ort_eval: ${e.message}`);
  process.exit(1);
});
