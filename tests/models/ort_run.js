#!/usr/bin/env node
// Runs a model in ONNX Runtime on the .npy files of an input folder (one per
// model input, by name) and writes each output as OUT_DIR/<name>.npy, named
// as `qat run` names them.  The real-model suite's reference for the models
// without a PyTorch original, and its check that ORT runs an export.
//
//   node ort_run.js MODEL.onnx INPUT_DIR OUT_DIR
//
// Exit codes: 0 ran, 1 an error (printed), 77 ONNX Runtime is not installed.
'use strict';
const fs = require('fs');
const path = require('path');
const npy = require('../ort/npy.js');
const { loadOrt } = require('../ort/ort_loader.js');

const DESCR = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int8: '|i1',
  uint8: '|u1', bool: '|b1' };

async function main() {
  const [model, inputDir, outDir] = process.argv.slice(2);
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: 1,
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const t = npy.read(path.join(inputDir, `${name}.npy`));
    feeds[name] = new ort.Tensor(t.dtype, t.data, t.shape);
  }
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of session.outputNames) {
    const t = results[name];
    const file = path.join(outDir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.npy`);
    npy.write(file, DESCR[t.type], Array.from(t.dims), t.data);
  }
}

main().catch((e) => {
  console.log(`ort_run: ${e.message}`);
  process.exit(1);
});
