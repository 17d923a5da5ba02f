#!/usr/bin/env node
// Runs a model in ONNX Runtime on the .npy files of an input folder and
// compares every output with the .npy of the same name in an expected
// folder (what libqat computed).
//
//   node ort_compare.js MODEL.onnx INPUT_DIR EXPECTED_DIR [--rtol R] [--atol A]
//        [--optimizations disabled|all] [--rel-l2 R]
//
// An element passes when |ort - expected| <= atol + rtol * |expected| (or
// both are NaN, or both the same infinity).  With --rel-l2, an output passes
// instead when ||ort - expected||_2 <= R * ||expected||_2.  Each output's line
// gives its max abs error and relative L2 error.
// Exit codes: 0 all close, 1 a mismatch or an error, 77 ONNX Runtime is not
// installed (ctest reports the test as skipped).
'use strict';
const fs = require('fs');
const path = require('path');
const npy = require('./npy.js');
const { loadOrt } = require('./ort_loader.js');

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const [model, inputDir, expectedDir] = args.filter((a, i) => !a.startsWith('--') &&
    !(i > 0 && args[i - 1].startsWith('--')));
  const rtol = Number(opt('--rtol', '1e-4'));
  const atol = Number(opt('--atol', '0'));
  const relL2Tol = args.includes('--rel-l2') ? Number(opt('--rel-l2', '0')) : null;
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: opt('--optimizations', 'disabled'),
    intraOpNumThreads: 1,
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const t = npy.read(path.join(inputDir, `${name}.npy`));
    feeds[name] = new ort.Tensor(t.dtype, t.data, t.shape);
  }
  const results = await session.run(feeds);
  let failures = 0;
  let compared = 0;
  for (const name of session.outputNames) {
    const file = path.join(expectedDir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.npy`);
    if (!fs.existsSync(file)) {
      console.log(`${name}: no expected file ${file}`);
      failures++;
      continue;
    }
    const want = npy.read(file);
    const got = results[name];
    if (JSON.stringify(want.shape) !== JSON.stringify(Array.from(got.dims))) {
      console.log(`${name}: shape ${got.dims} vs expected ${want.shape}`);
      failures++;
      continue;
    }
    let worst = 0;
    let worstAt = -1;
    let bad = 0;
    let maxAbs = 0;
    let diff2 = 0;
    let norm2 = 0;
    for (let i = 0; i < want.data.length; i++) {
      const w = Number(want.data[i]);
      const g = Number(got.data[i]);
      const same = g === w || (Number.isNaN(g) && Number.isNaN(w));
      const err = same ? 0 : Math.abs(g - w);
      const tol = atol + rtol * Math.abs(w);
      const over = same ? -Infinity : (err <= tol ? err - tol : Infinity);
      if (over > 0) bad++;
      if (over > worst || worstAt < 0) {
        worst = over;
        worstAt = i;
      }
      maxAbs = Number.isNaN(err) || err > maxAbs ? err : maxAbs;
      if (!same) diff2 += err * err;
      if (Number.isFinite(w)) norm2 += w * w;
    }
    const relL2 = diff2 === 0 ? 0 : Math.sqrt(diff2) / Math.sqrt(norm2);
    if (relL2Tol !== null) bad = relL2 <= relL2Tol ? 0 : 1;
    compared++;
    const stats = `max abs error ${maxAbs.toPrecision(3)}, relative L2 error ${relL2.toPrecision(3)}`;
    const outside = relL2Tol !== null ? (bad ? `relative L2 above ${relL2Tol}` : 'within relative L2')
      : `${bad} outside tolerance`;
    console.log(`${name}: ${want.data.length} elements, ${outside}; ${stats}` +
      (bad ? ` (worst at ${worstAt}: ort ${got.data[worstAt]} vs libqat ${want.data[worstAt]})` : ''));
    if (bad) failures++;
  }
  console.log(`${compared - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(`ort_compare: ${e.message}`);
  process.exit(1);
});
