#!/usr/bin/env node
// Writes seeded random inputs for the interop tests.
//   node make_inputs.js DIR NAME=float:D0xD1x...[:lo:hi] NAME=labels:N:CLASSES ...
'use strict';
const fs = require('fs');
const path = require('path');
const npy = require('./npy.js');

let state = 12345;
function next() {  // xorshift32: reproducible everywhere
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
}

const [dir, ...specs] = process.argv.slice(2);
fs.mkdirSync(dir, { recursive: true });
for (const spec of specs) {
  const [name, kind, dims, a, b] = spec.split(/[=:]/);
  if (kind === 'float') {
    const shape = dims.split('x').map(Number);
    const lo = a === undefined ? -1 : Number(a);
    const hi = b === undefined ? 1 : Number(b);
    const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * next();
    npy.write(path.join(dir, `${name}.npy`), '<f4', shape, data);
  } else if (kind === 'labels') {
    const n = Number(dims);
    const classes = Number(a);
    const data = new BigInt64Array(n);
    for (let i = 0; i < n; i++) data[i] = BigInt(Math.floor(next() * classes));
    npy.write(path.join(dir, `${name}.npy`), '<i8', [n], data);
  } else {
    throw new Error(`unknown input kind in ${spec}`);
  }
}
