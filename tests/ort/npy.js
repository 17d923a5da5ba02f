// Minimal .npy (v1.0) reading and writing for the interop tests: float32,
// float64, int64, int32, int8, uint8 and bool, little-endian, C order.
'use strict';
const fs = require('fs');

const DTYPES = {
  '<f4': { array: Float32Array, ort: 'float32' },
  '<f8': { array: Float64Array, ort: 'float64' },
  '<i8': { array: BigInt64Array, ort: 'int64' },
  '<i4': { array: Int32Array, ort: 'int32' },
  '|i1': { array: Int8Array, ort: 'int8' },
  '|u1': { array: Uint8Array, ort: 'uint8' },
  '|b1': { array: Uint8Array, ort: 'bool' },
};

function read(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not an .npy file`);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim())
    .filter((s) => s.length > 0).map(Number);
  const type = DTYPES[descr];
  if (!type) throw new Error(`${path}: unsupported dtype ${descr}`);
  const start = 10 + headerLen;
  const bytes = buf.subarray(start);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  let data = new type.array(copy.buffer);
  if (type.ort === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { dtype: type.ort, shape, data };
}

function write(path, descr, shape, data) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

module.exports = { read, write };
