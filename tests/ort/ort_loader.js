// Finds onnxruntime-node: $QAT_ORT_NODE_DIR, else the copy .ci/install-ort.sh
// puts in <repo>/.deps/ort, else one node resolves itself (NODE_PATH, a
// global install: how an installed `qat pipeline` finds it).  Exits with 77
// (skip) and says why when absent.
'use strict';
const path = require('path');

function loadOrt() {
  const candidates = [
    process.env.QAT_ORT_NODE_DIR,
    path.join(__dirname, '..', '..', '.deps', 'ort', 'node_modules', 'onnxruntime-node'),
    'onnxruntime-node',
  ].filter(Boolean);
  for (const dir of candidates) {
    try {
      return require(dir);
    } catch (e) {
      // try the next one
    }
  }
  console.log(`SKIPPED: onnxruntime-node is not installed (looked in ${candidates.join(', ')}); ` +
    'run .ci/install-ort.sh');
  process.exit(77);
}

module.exports = { loadOrt };
