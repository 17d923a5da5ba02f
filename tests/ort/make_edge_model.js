#!/usr/bin/env node
// Writes a model of libqat's custom ops and inputs on their edge cases, for
// the decompose interop check (run_interop.sh decompose-edges):
//   node make_edge_model.js MODEL.onnx INPUT_DIR
// The model (ONNX opset 13; com.microsoft and ai.libqat 1):
//   FakeQuant per tensor (scale 0.25, zero point 3, range [0, 15]) of x -> y, mask
//   FakeQuantGrad(dy, mask) -> dx
//   FakeQuantLsqGrad per tensor of (x, dy) -> lsq_dx, lsq_ds, lsq_dz
//   ai.libqat FakeQuant per channel (axis 1 of [2, 3, 4], int8 [-127, 127]) of x2 -> y2, mask2
//   FakeQuantLsqGrad per channel of (x2, dy2) -> lsq2_dx, lsq2_ds, lsq2_dz
// x holds exact halves of the grid (round half to even), the range's ends,
// values outside it, NaN, +-Inf, -0, denormals and the largest floats.
// The protobuf is written by hand (a few fields of onnx.proto), so that the
// check needs nothing but node.
'use strict';
const path = require('path');
const fs = require('fs');
const npy = require('./npy.js');

// ---- protobuf encoding --------------------------------------------------------
function varint(value) {
  let n = BigInt(value);
  if (n < 0n) n += 1n << 64n;  // int64 two's complement
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}
const key = (field, wire) => varint((field << 3) | wire);
const int = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const bytes = (field, buf) => Buffer.concat([key(field, 2), varint(buf.length), buf]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, ...parts) => bytes(field, Buffer.concat(parts));
function float32(field, v) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return Buffer.concat([key(field, 5), b]);
}

const FLOAT = 1;
const BOOL = 9;
const attrInt = (name, v) => msg(5, str(1, name), int(3, v), int(20, 2));
const attrFloat = (name, v) => msg(5, str(1, name), float32(2, v), int(20, 1));
function node(op, domain, inputs, outputs, attrs = []) {
  return msg(1, ...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)),
    str(3, `${op}_${outputs[0]}`), str(4, op), ...attrs, str(7, domain));
}
function valueInfo(field, name, elemType, dims) {
  const shape = msg(2, ...dims.map((d) => msg(1, int(1, d))));
  return msg(field, str(1, name), msg(2, msg(1, int(1, elemType), shape)));
}
function initializer(name, dims, values) {
  const raw = Buffer.from(new Float32Array(values).buffer);
  return msg(5, ...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, raw));
}

// ---- the model ----------------------------------------------------------------
const edges = [0.125, 0.375, -0.125, 0.625, -0.625, 2.375, 2.875, 3.125, 3.375, -0.75, -0.875,
  NaN, Infinity, -Infinity, -0, 0, 1e30, -1e30, 3.4028234663852886e38, -3.4028234663852886e38,
  1e-45, -1e-45, 0.3, 1, 0.12500001, 0.12499999, 2.9999, 3];
const n = edges.length;
const shape2 = [2, 3, 4];
const scales2 = [0.25, 0.1, 0.03];
const zps2 = [0, 4, -6];

let state = 2463534242;
function next() {  // xorshift32, as make_inputs.js
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
}
const uniform = (count, lo, hi) => Array.from({ length: count }, () => lo + (hi - lo) * next());

const perTensor = [attrInt('quant_min', 0), attrInt('quant_max', 15)];
const perChannel = [attrInt('quant_min', -127), attrInt('quant_max', 127), attrInt('axis', 1)];
const graph = Buffer.concat([
  node('FakeQuant', 'com.microsoft', ['x', 's', 'z'], ['y', 'mask'], perTensor),
  node('FakeQuantGrad', 'com.microsoft', ['dy', 'mask'], ['dx']),
  node('FakeQuantLsqGrad', 'ai.libqat', ['x', 'dy', 's', 'z'], ['lsq_dx', 'lsq_ds', 'lsq_dz'],
    [...perTensor, attrFloat('grad_scale', 0.37)]),
  node('FakeQuant', 'ai.libqat', ['x2', 's2', 'z2'], ['y2', 'mask2'], perChannel),
  node('FakeQuantLsqGrad', 'ai.libqat', ['x2', 'dy2', 's2', 'z2'],
    ['lsq2_dx', 'lsq2_ds', 'lsq2_dz'], [...perChannel, attrFloat('grad_scale', 0.2)]),
  str(2, 'decompose_edges'),
  initializer('s', [], [0.25]), initializer('z', [], [3]),
  initializer('s2', [3], scales2), initializer('z2', [3], zps2),
  valueInfo(11, 'x', FLOAT, [n]), valueInfo(11, 'dy', FLOAT, [n]),
  valueInfo(11, 'x2', FLOAT, shape2), valueInfo(11, 'dy2', FLOAT, shape2),
  valueInfo(12, 'y', FLOAT, [n]), valueInfo(12, 'mask', BOOL, [n]), valueInfo(12, 'dx', FLOAT, [n]),
  valueInfo(12, 'lsq_dx', FLOAT, [n]), valueInfo(12, 'lsq_ds', FLOAT, []),
  valueInfo(12, 'lsq_dz', FLOAT, []),
  valueInfo(12, 'y2', FLOAT, shape2), valueInfo(12, 'mask2', BOOL, shape2),
  valueInfo(12, 'lsq2_dx', FLOAT, shape2), valueInfo(12, 'lsq2_ds', FLOAT, [3]),
  valueInfo(12, 'lsq2_dz', FLOAT, [3]),
]);
const model = Buffer.concat([
  int(1, 8),
  msg(8, str(1, ''), int(2, 13)), msg(8, str(1, 'com.microsoft'), int(2, 1)),
  msg(8, str(1, 'ai.libqat'), int(2, 1)),
  bytes(7, graph),
]);

const [modelPath, inputDir] = process.argv.slice(2);
fs.writeFileSync(modelPath, model);
fs.mkdirSync(inputDir, { recursive: true });
const write = (name, dims, values) =>
  npy.write(path.join(inputDir, `${name}.npy`), '<f4', dims, new Float32Array(values));
write('x', [n], edges);
write('dy', [n], uniform(n, -1, 1));
// x2: the first edge values (NaN among them) times 4, then random values
// over the three channels' ranges and beyond.
write('x2', shape2, [...edges.slice(0, 12).map((v) => v * 4), ...uniform(12, -6, 6)]);
write('dy2', shape2, uniform(24, -1, 1));
