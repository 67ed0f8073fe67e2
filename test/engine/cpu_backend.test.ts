// What only the native cpu backend has: its host buffers (recycled zero-filled, a double free
// handing a buffer out once) and its configuration (thread count and SIMD build, set and
// reported). Its kernels are tested against the reference backend, in every SIMD build and with
// 1 thread as well as the default count, by the suite parametrised by backend (backends.test.ts,
// backends_fused.test.ts). If the addon is not built every test is skipped with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { cpuBackendInfo, loadNativeAddon, setCpuThreads } from '../../src/engine/backends/cpu';
import { f32, i32 } from './backend_helpers';
import { backendOf, targetOf } from './backend_targets';

const target = targetOf('cpu');
const { skip } = target;
const loadedAddon = loadNativeAddon();
const addon = 'error' in loadedAddon ? null : loadedAddon.addon;

test(
  'freed buffers are recycled zero-filled, and a double free hands a buffer out once',
  { skip },
  () => {
    const be = backendOf(target);
    const n = 5000; // above the pool's minimum size
    const a = f32(be.alloc(n, 'float32'));
    a.fill(3);
    be.free(a);
    be.free(a); // double free: must not be pooled twice
    const b = f32(be.alloc(n, 'float32'));
    const c = f32(be.alloc(n, 'float32'));
    assert.ok(b !== c, 'one freed buffer was handed out twice');
    assert.ok(b.every((v) => v === 0) && c.every((v) => v === 0), 'alloc must return zeros');
    const i = i32(be.alloc(n, 'int32')); // same length, other dtype: never the float buffer
    assert.ok(i instanceof Int32Array && i.every((v) => v === 0));
    // Arrays the backend did not create are never recycled.
    const mine = new Float32Array(n).fill(1);
    be.free(mine);
    const d = f32(be.alloc(n, 'float32'));
    assert.ok(d !== mine && mine[0] === 1);
    const up = f32(be.upload(Float32Array.from({ length: n }, (_, k) => k)));
    assert.equal(up[n - 1], n - 1);
    for (const buf of [b, c, d, up, i]) be.free(buf);
  },
);

test('thread count and SIMD path can be set and are reported', { skip }, () => {
  assert.ok(addon);
  const simdPaths = addon.availableSimdPaths();
  assert.ok(simdPaths.includes('baseline'));
  assert.throws(() => addon.setSimdPath('neon-avx9000'), /unknown SIMD path/);
  assert.throws(() => addon.setNumThreads(0), /1\.\.1024/);
  const info = addon.info();
  if (!process.env.MMGPT_SIMD) assert.equal(info.simd, simdPaths[0]); // the fastest by default
  assert.ok(info.threads >= 1);
  const reported = cpuBackendInfo();
  assert.ok(!('error' in reported));
  assert.equal(reported.simd, info.simd);
  assert.deepEqual(reported.availableSimd, simdPaths);
  const threads = addon.getNumThreads();
  try {
    setCpuThreads(1);
    assert.equal(addon.getNumThreads(), 1);
  } finally {
    setCpuThreads(threads);
  }
});
