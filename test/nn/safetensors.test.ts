// Safetensors I/O: bit-exact round trips (NaN payloads, -0, all dtypes), metadata, the on-disk
// layout the Python library expects, atomic saves, rejection of hand-made malformed files, a
// header over the cap refused before it is read, and a seeded mutation fuzz of the reader.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Rng } from '../../src/nn/rng';
import { fuzzLoader, mutate } from '../fuzz';
import {
  MAX_HEADER_BYTES,
  NamedArray,
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  requireTensor,
  saveSafetensors,
} from '../../src/nn/safetensors';

const tmpDir = path.join(__dirname, '..', '..', '..', 'data', `.test-safetensors-${process.pid}`);

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A file with the given header object and data bytes (for malformed cases). */
function handMade(header: unknown, data: Buffer, headerLenOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

test('round trip is bit-exact, including NaN payloads, -0 and infinities', () => {
  const f32 = new Float32Array([0, -0, 1.5, -3.25e-38, Infinity, -Infinity, NaN, 1e-45]);
  new Uint32Array(f32.buffer)[6] = 0x7fc12345; // a NaN with a payload
  const u32 = new Uint32Array(f32.buffer).slice();
  const f64 = new Float64Array([Math.PI, -0, NaN]);
  const tensors: Record<string, NamedArray> = {
    'h.0.attn.c_attn.weight': { dtype: 'F32', shape: [2, 4], data: f32 },
    '0': { dtype: 'I32', shape: [3], data: new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31)]) },
    bytes: { dtype: 'U8', shape: [1, 3, 1], data: new Uint8Array([0, 128, 255]) },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
    empty: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
    double: { dtype: 'F64', shape: [3], data: f64 },
    long: { dtype: 'I64', shape: [2], data: new BigInt64Array([-5n, 2n ** 62n]) },
  };
  const buf = encodeSafetensors(tensors);
  const back = decodeSafetensors(buf, 'mem');
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const r = back.tensors[name]!;
    assert.equal(r.dtype, t.dtype, name);
    assert.deepEqual(r.shape, t.shape, name);
    assert.ok(bytesOf(r.data).equals(bytesOf(t.data)), `${name} bytes differ`);
  }
  assert.deepEqual(
    new Uint32Array((back.tensors['h.0.attn.c_attn.weight']!.data as Float32Array).buffer),
    u32,
  );
  assert.deepEqual(back.metadata, {});
});

test('metadata round trips; layout matches the Python library (padding, alignment, order)', () => {
  const tensors: Record<string, NamedArray> = {
    b: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    c: { dtype: 'F64', shape: [1], data: new Float64Array([3]) },
  };
  const metadata = { config: JSON.stringify({ d_model: 128 }), note: 'ünïcode ✓' };
  const buf = encodeSafetensors(tensors, metadata);
  const headerLen = Number(buf.readBigUInt64LE(0));
  assert.equal(headerLen % 8, 0, 'header padded to 8 bytes');
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { data_offsets: number[] }
  >;
  assert.deepEqual(Object.keys(header), ['__metadata__', 'c', 'a', 'b']); // by dtype size, name
  assert.deepEqual(header['c']!.data_offsets, [0, 8]);
  assert.deepEqual(header['a']!.data_offsets, [8, 16]);
  assert.deepEqual(header['b']!.data_offsets, [16, 19]);
  assert.equal(buf.length, 8 + headerLen + 19);
  const back = decodeSafetensors(buf, 'mem');
  assert.deepEqual({ ...back.metadata }, metadata);
});

test('saveSafetensors writes atomically; loadSafetensors reads it back; requireTensor checks', () => {
  fs.mkdirSync(tmpDir, { recursive: true });
  try {
    const file = path.join(tmpDir, 'w.safetensors');
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    saveSafetensors(file, { w: { dtype: 'F32', shape: [2, 3], data } }, { step: '10' });
    saveSafetensors(file, { w: { dtype: 'F32', shape: [2, 3], data } }, { step: '11' });
    assert.deepEqual(fs.readdirSync(tmpDir), ['w.safetensors'], 'no temp files left behind');
    const loaded = loadSafetensors(file);
    assert.equal(loaded.metadata['step'], '11');
    assert.deepEqual(requireTensor(loaded, 'w', 'F32', [2, -1]).data, data);
    assert.throws(
      () => requireTensor(loaded, 'w', 'F32', [3, 2]),
      /w\.safetensors.*shape \[2, 3\], expected \[3, 2\]/,
    );
    assert.throws(() => requireTensor(loaded, 'w', 'I32'), /dtype F32, expected I32/);
    assert.throws(() => requireTensor(loaded, 'v', 'F32'), /missing tensor 'v'.*file has: w/);
    assert.throws(
      () => loadSafetensors(path.join(tmpDir, 'nope.safetensors')),
      /cannot read.*nope/,
    );
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
});

test('encode rejects inconsistent tensors', () => {
  assert.throws(
    () => encodeSafetensors({ x: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
    /'x'.*4 elements.*3 data elements/,
  );
  assert.throws(
    () =>
      encodeSafetensors({
        x: { dtype: 'F32', shape: [1], data: new Int32Array(1) } as unknown as NamedArray,
      }),
    /dtype F32 but data is a Int32Array/,
  );
});

const good = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
const eightBytes = Buffer.alloc(8);

const malformed: Array<[string, Buffer, RegExp]> = [
  ['shorter than the length prefix', Buffer.alloc(5), /truncated: 5 bytes/],
  ['absurd header length', handMade(good, eightBytes, 2n ** 40n), /absurd header length/],
  [
    'header length beyond the file',
    handMade(good, eightBytes, 5000n),
    /header length 5000 bytes exceeds the file size/,
  ],
  ['invalid JSON', handMade('{"t": {', eightBytes), /not valid JSON/],
  ['header not an object', handMade([1, 2], eightBytes), /must be a JSON object/],
  [
    'unknown dtype',
    handMade({ t: { dtype: 'Q7', shape: [2], data_offsets: [0, 8] } }, eightBytes),
    /tensor 't': unknown or unsupported dtype "Q7"/,
  ],
  [
    'bad shape',
    handMade({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, eightBytes),
    /shape must be an array of non-negative integers/,
  ],
  [
    'offsets out of range (truncated data)',
    handMade(good, Buffer.alloc(6)),
    /data_offsets \[0, 8\] out of range: the data section has 6 bytes/,
  ],
  [
    'byte size does not match shape x dtype',
    handMade({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eightBytes),
    /byte size 8 does not match shape \[3\] x F32 .* = 12 bytes/,
  ],
  [
    'overlapping offsets',
    handMade(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      Buffer.alloc(12),
    ),
    /tensor 'b' data_offsets \[4, 12\] overlap tensor 'a'/,
  ],
  [
    'gap between tensors',
    handMade(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      Buffer.alloc(12),
    ),
    /gap in the data section: bytes \[4, 8\)/,
  ],
  ['trailing bytes', handMade(good, Buffer.alloc(12)), /4 trailing bytes/],
  [
    'end before begin',
    handMade({ t: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, Buffer.alloc(4)),
    /end before begin/,
  ],
  [
    'non-string metadata',
    handMade({ __metadata__: { step: 3 }, ...good }, eightBytes),
    /metadata 'step' must be a string/,
  ],
];

for (const [name, buf, message] of malformed) {
  test(`rejects a malformed file: ${name}`, () => {
    assert.throws(
      () => decodeSafetensors(buf, 'bad.safetensors'),
      (err: Error) => {
        assert.match(err.message, /^safetensors file 'bad\.safetensors': /);
        assert.match(err.message, message);
        return true;
      },
    );
  });
}

test('every truncation of a valid file is rejected, never partially loaded', () => {
  const buf = encodeSafetensors(
    { a: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) } },
    { k: 'v' },
  );
  for (let len = 0; len < buf.length; len++) {
    assert.throws(
      () => decodeSafetensors(buf.subarray(0, len), 'cut.safetensors'),
      /cut\.safetensors/,
    );
  }
});

test('a header over the cap is refused before it is read (a sparse 3 GB file)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-st-'));
  const file = path.join(dir, 'huge.safetensors');
  const fd = fs.openSync(file, 'w');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(2_500_000_000n);
    fs.writeSync(fd, length, 0, 8, 0);
    fs.ftruncateSync(fd, 3_000_000_000); // sparse: no disk space, but too large to read whole
  } finally {
    fs.closeSync(fd);
  }
  try {
    const t0 = performance.now();
    assert.throws(
      () => loadSafetensors(file),
      new RegExp(
        `safetensors file '${file}': absurd header length 2500000000 bytes \\(limit ${MAX_HEADER_BYTES}\\)`,
      ),
    );
    assert.ok(performance.now() - t0 < 1000, 'refused without reading the file');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('fuzz: 3000 mutants of a safetensors file load or fail cleanly, fast, without huge allocations', () => {
  const tensors: Record<string, NamedArray> = {
    'model.wte.weight': { dtype: 'F32', shape: [4, 3], data: new Float32Array(12).fill(0.5) },
    'model.h.0.bias': { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
    counts: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
    codes: { dtype: 'I32', shape: [2, 2], data: new Int32Array([1, 2, 3, 4]) },
    pixels: { dtype: 'U8', shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) },
  };
  const good = encodeSafetensors(tensors, { mmgpt: '{"format":"x","step":12}' });
  const header = good.subarray(8, 8 + Number(good.readBigUInt64LE(0))).toString('utf8');
  const started = performance.now();
  const outcome = fuzzLoader({
    seed: 13,
    cases: 3000,
    make: (rng: Rng, i: number) => {
      if (i % 3 !== 0) return mutate(good, rng);
      // A header whose numbers (shapes, offsets) are set to extremes, with its length field kept
      // consistent so the parser gets past it.
      const extremes = ['0', '1', '4294967295', '9007199254740993', '1e308', '-1', '2.5'];
      const json = header.replace(/\d+/g, (m) =>
        rng.int(4) === 0 ? extremes[rng.int(extremes.length)]! : m,
      );
      const body = Buffer.from(json, 'utf8');
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(body.length));
      return Buffer.concat([length, body, good.subarray(8 + header.length)]);
    },
    load: (input, name) => {
      const contents = decodeSafetensors(input, name);
      for (const t of Object.values(contents.tensors))
        assert.equal(
          t.data.byteLength,
          t.shape.reduce((a, b) => a * b, 1) * (t.data.BYTES_PER_ELEMENT ?? 1),
        );
    },
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(outcome.refused > 1000 && outcome.loaded > 100, JSON.stringify(outcome));
  assert.ok(seconds < 10, `${seconds.toFixed(1)} s`);
});
