#!/usr/bin/env node
// Accuracy of a classifier in ONNX Runtime (default graph optimizations, so
// QDQ models run on its int8 kernels) on an IDX test set.
//
//   node ort_accuracy.js MODEL.onnx IDX_DIR [--limit N] [--mean M] [--std S]
//
// Prints {"accuracy": ...}.  Exit 77 when ONNX Runtime is missing.
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
  const mean = Number(opt('--mean', '0.2860'));
  const std = Number(opt('--std', '0.3530'));
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const images = readIdx(dir, 't10k-images-idx3-ubyte');
  const labels = readIdx(dir, 't10k-labels-idx1-ubyte');
  const n = limit > 0 ? Math.min(limit, images.dims[0]) : images.dims[0];
  const pixels = images.dims[1] * images.dims[2];
  const inputMeta = session.inputNames[0];
  let correct = 0;
  const batch = 500;
  for (let start = 0; start < n; start += batch) {
    const m = Math.min(batch, n - start);
    const x = new Float32Array(m * pixels);
    for (let i = 0; i < m * pixels; i++) x[i] = (images.data[start * pixels + i] / 255 - mean) / std;
    const out = await session.run({ [inputMeta]: new ort.Tensor('float32', x, [m, pixels]) });
    const z = out[session.outputNames[0]];
    const classes = z.dims[1];
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (z.data[i * classes + c] > z.data[i * classes + best]) best = c;
      if (best === labels.data[start + i]) correct++;
    }
  }
  console.log(JSON.stringify({ accuracy: correct / n, images: n }));
}

main().catch((e) => {
  console.error(`ort_accuracy: ${e.message}`);
  process.exit(1);
});
