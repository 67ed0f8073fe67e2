// What only the wasm backend has: buffers are handles into the module's memory (upload and
// download copy; free returns the block, so a loop of alloc/free does not grow the memory), the
// views of that memory follow its growth, freed and foreign handles are refused with a
// TypeError, and the asynchronous compile (a page's) gives the same backend as the synchronous
// one (Node's). Its kernels are tested against the reference backend by the suite parametrised
// by backend (backends.test.ts, backends_fused.test.ts); its GEMM, which has its own blocking
// (native/wasm/kernels_wasm.cc), is also tested here across every block boundary. Skipped with
// the reason when the module is not built, except in CI (backend_targets.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';

import type { Backend } from '../../src/engine/backend';
import { createWasmBackend, createWasmBackendSync } from '../../src/engine/backends/wasm';
import { wasmModulePath } from '../../src/engine/backends/wasm_node';
import { backendOf, targetOf } from './backend_targets';
import { checkMatmul, makeRng, matmulParams, randArray } from './backend_helpers';

const target = targetOf('wasm');
const { skip } = target;

function moduleBytes(): Buffer {
  const file = wasmModulePath();
  if (typeof file !== 'string') throw new Error(file.error);
  return fs.readFileSync(file);
}

/** The size of a backend's memory, through a buffer's view (its length grows with the memory). */
function memoryBytes(be: Backend): number {
  const probe = be.alloc(1, 'float32') as { memory: { heap(): { f32: Float32Array } } };
  const bytes = probe.memory.heap().f32.buffer.byteLength;
  be.free(probe);
  return bytes;
}

test('upload and download copy; the memory grows and data stays put', { skip }, () => {
  const be = createWasmBackendSync(moduleBytes()); // a fresh instance: its memory starts small
  const data = randArray(makeRng(1), 1000);
  const kept = be.upload(data);
  data[0] = 42; // the upload was a copy
  const before = memoryBytes(be);
  const big = be.alloc(16 << 20, 'float32'); // 64 MiB: more than the initial memory
  assert.ok(memoryBytes(be) > before, 'the memory should have grown');
  const back = be.download(kept, 1000, 'float32');
  assert.equal(back[0], Math.fround(randArray(makeRng(1), 1)[0]));
  back[1] = 42; // the download is a copy too
  assert.notEqual(be.download(kept, 2, 'float32')[1], 42);
  be.fill(big, 16 << 20, 2);
  assert.equal(be.sumSquares(big, 16 << 20), 4 * (16 << 20));
  be.free(big);
  be.free(kept);
});

test('free returns the memory: allocating and freeing in a loop does not grow it', { skip }, () => {
  const be = createWasmBackendSync(moduleBytes());
  const warm = be.alloc(1 << 20, 'float32');
  be.free(warm);
  const before = memoryBytes(be);
  for (let i = 0; i < 200; i++) be.free(be.alloc(1 << 20, i % 2 ? 'float32' : 'int32'));
  assert.equal(memoryBytes(be), before);
});

test('freed, foreign and host buffers are refused with a TypeError', { skip }, () => {
  const be = backendOf(target);
  const other = createWasmBackendSync(moduleBytes());
  const x = be.alloc(4, 'float32');
  const y = be.alloc(4, 'float32');
  const foreign = other.alloc(4, 'float32');
  assert.throws(() => be.unary('exp', foreign, y, 4), {
    name: 'TypeError',
    message: /unary: x must be a wasm buffer, got a float32 buffer of another wasm backend/,
  });
  be.free(x);
  be.free(x); // a second free does nothing
  assert.throws(() => be.unary('exp', x, y, 4), {
    name: 'TypeError',
    message: /x was already freed/,
  });
  assert.throws(
    () => be.download(y, 4, 'int32'),
    /buffer holds float32 but dtype 'int32' was given/,
  );
  assert.throws(() => be.download(y, 5, 'float32'), /download of 5 elements from a buffer of 4/);
  assert.throws(
    () => be.free(new Float32Array(4)),
    /buf must be a wasm buffer, got a Float32Array/,
  );
  assert.throws(() => be.upload(new Float64Array(2) as unknown as Float32Array), {
    name: 'TypeError',
    message: /data must be a Float32Array or Int32Array, got a Float64Array/,
  });
  be.free(y);
  other.free(foreign);
});

test(
  'the asynchronous compile gives the same results as the synchronous one',
  { skip },
  async () => {
    const bytes = moduleBytes();
    const results = [];
    for (const be of [await createWasmBackend(bytes), createWasmBackendSync(bytes)]) {
      assert.equal(be.name, 'wasm');
      const rng = makeRng(7);
      const a = be.upload(randArray(rng, 37 * 29));
      const b = be.upload(randArray(rng, 29 * 41));
      const c = be.alloc(37 * 41, 'float32');
      const p = { batch: 1, m: 37, n: 41, k: 29, transA: false, transB: false };
      be.matmul(a, b, c, { ...p, strideA: 0, strideB: 0, strideC: 0, alpha: 1, accumulate: false });
      results.push(be.download(c, 37 * 41, 'float32'));
    }
    assert.deepEqual(results[0], results[1]);
  },
);

test(
  'the GEMM across its own blocks: B blocks of 2048 columns, A blocks of 128 rows (512 transposed), depth blocks of 256 (1152 plain)',
  { skip },
  () => {
    const be = backendOf(target);
    const rng = makeRng(11);
    const check = (m: number, k: number, n: number, transA: boolean, transB: boolean) => {
      for (const [alpha, accumulate] of [
        [1, false],
        [-0.75, true],
      ] as const) {
        const p = matmulParams({ m, n, k, transA, transB, alpha, accumulate });
        const what = `wasm matmul [${m}x${k}]@[${k}x${n}] tA=${transA} tB=${transB} acc=${accumulate}`;
        checkMatmul(be, rng, p, target.tol.matmul, what);
      }
    };
    // One block boundary at a time, every transpose: columns one past a B block (a ragged
    // panel), rows over A blocks (five plain, two transposed; a ragged panel), depth over
    // blocks (two of a plain A, five of a transposed one).
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        check(6, 9, 2049, transA, transB);
        check(517, 7, 19, transA, transB);
        check(13, 1157, 21, transA, transB);
      }
    }
    // Several boundaries at once.
    check(517, 259, 23, true, true);
    check(133, 1157, 23, false, false);
    check(7, 1157, 2051, false, true);
    check(7, 300, 2051, true, false);
  },
);

test('a file that is not the kernel module is refused with a clear error', () => {
  const empty = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]); // a valid, empty module
  assert.throws(
    () => createWasmBackendSync(empty),
    /not mmgpt's kernel module: it does not export 'memory'/,
  );
});
