// The cpu backend's bf16 matmul precision (native/src/gemm_amx.cc, AMX tiles): every layout,
// edge and store of the product against a float64 product of the operands rounded to bfloat16,
// the float32 default untouched, fullPrecision products kept float32 under the setting, a short
// training run that follows the float32 one, and a clear error where the processor has no
// tiles. Skipped where the addon is not built; the tile tests also where the processor (or its
// kernel) gives this process no AMX-BF16.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { loadNativeAddon, setCpuMatmulPrecision } from '../../src/engine/backends/cpu';
import { getBackend, setBackend } from '../../src/engine/registry';
import { makeTrainStep } from '../../src/perf/train_step';
import { makeRng, matmulParams, randArray } from './backend_helpers';
import { backendOf, targetOf } from './backend_targets';

const target = targetOf('cpu');
const loadedAddon = loadNativeAddon();
const addon = 'error' in loadedAddon ? null : loadedAddon.addon;
const hasTiles = addon !== null && addon.availableMatmulPrecisions().includes('bf16');
const skipTiles = target.skip || (!hasTiles && 'this processor gives no AMX-BF16 tiles');

/** x rounded to nearest-even bfloat16, subnormals flushed to zero (as VCVTNE2PS2BF16). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if ((u[0]! & 0x7f800000) === 0) u[0]! &= 0x80000000;
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0]!;
}

/** Deterministic values in [-scale, scale). */
function values(n: number, seed: number, scale: number): Float32Array {
  return randArray(makeRng(seed), n, -scale, scale);
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  batch?: number;
  alpha?: number;
  accumulate?: boolean;
  bias?: boolean;
}

/**
 * Runs one product under the current precision and checks every element against
 * alpha * sum(bf16(a) * bf16(b)) (+ C) (+ bias) in float64 (rounded: true) or the unrounded
 * operands (rounded: false), within 1e-5 of the sum of |terms| plus 1e-6 of the value.
 */
function check(c: Case, rounded: boolean): void {
  const be = backendOf(target);
  const { m, n, k, transA, transB } = c;
  const batch = c.batch ?? 1;
  const alpha = c.alpha ?? 1;
  const a = values(batch * m * k, 1 + m, 2);
  const b = values(batch * k * n, 7 + n, 1);
  const c0 = values(batch * m * n, 13 + k, 0.5);
  const bias = c.bias ? values(n, 3, 0.25) : undefined;
  const out = Float32Array.from(c0);
  const p = matmulParams({
    ...{ m, n, k, transA, transB, batch, alpha },
    ...{ strideA: m * k, strideB: k * n, strideC: m * n, accumulate: c.accumulate ?? false },
    ...(bias ? { bias } : {}),
  });
  be.matmul(a, b, out, p);
  const r = rounded ? bf16 : (x: number) => x;
  let worst = 0;
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        let size = 0;
        for (let q = 0; q < k; q++) {
          const x = r(a[t * m * k + (transA ? q * m + i : i * k + q)]!);
          const y = r(b[t * k * n + (transB ? j * k + q : q * n + j)]!);
          sum += x * y;
          size += Math.abs(x * y);
        }
        const at = t * m * n + i * n + j;
        const want = alpha * sum + (p.accumulate ? c0[at]! : 0) + (bias ? bias[j]! : 0);
        const bound = 1e-5 * Math.abs(alpha) * size + 1e-6 * Math.abs(want) + 1e-30;
        worst = Math.max(worst, Math.abs(out[at]! - want) / bound);
      }
    }
  }
  assert.ok(worst <= 1, `${JSON.stringify(c)}: error ${worst.toFixed(2)}x the bound`);
}

const CASES: Case[] = [
  { m: 16, n: 16, k: 16, transA: false, transB: false },
  { m: 17, n: 33, k: 19, transA: false, transB: true },
  { m: 40, n: 50, k: 70, transA: true, transB: false },
  { m: 33, n: 64, k: 31, transA: true, transB: true },
  { m: 64, n: 96, k: 128, transA: false, transB: false },
  { m: 100, n: 37, k: 300, transA: true, transB: false, alpha: 0.5, accumulate: true },
  { m: 48, n: 40, k: 64, transA: false, transB: true, bias: true },
  { m: 20, n: 24, k: 40, transA: false, transB: false, batch: 3, accumulate: true, bias: true },
];

test(
  'bf16 matmuls: every layout, edge and store within bfloat16 rounding',
  { skip: skipTiles },
  () => {
    setCpuMatmulPrecision('bf16');
    try {
      for (const c of CASES) check(c, true);
    } finally {
      setCpuMatmulPrecision('fp32');
    }
  },
);

test(
  'bf16 matmuls: the operands are rounded (the check can fail), fp32 is not',
  { skip: skipTiles },
  () => {
    const c: Case = { m: 32, n: 32, k: 64, transA: false, transB: false };
    setCpuMatmulPrecision('bf16');
    try {
      assert.throws(() => check(c, false), /the bound/); // bf16 is far from the float32 product
    } finally {
      setCpuMatmulPrecision('fp32');
    }
    check(c, false); // the float32 GEMM is within the bound of the unrounded operands
  },
);

test('bf16 matmuls: fullPrecision products and tiny ones stay float32', { skip: skipTiles }, () => {
  const be = backendOf(target);
  const run = (m: number, full: boolean): Float32Array => {
    const a = values(m * 64, 5, 1);
    const b = values(64 * 32, 9, 1);
    const out = new Float32Array(m * 32);
    be.matmul(
      a,
      b,
      out,
      matmulParams({ m, n: 32, k: 64, ...(full ? { fullPrecision: true } : {}) }),
    );
    return out;
  };
  const fp32Full = run(32, false);
  const fp32Tiny = run(4, false);
  setCpuMatmulPrecision('bf16');
  let bf16Full: Float32Array, bf16Kept: Float32Array, bf16Tiny: Float32Array;
  try {
    bf16Full = run(32, false);
    bf16Kept = run(32, true);
    bf16Tiny = run(4, false); // a decode step's few rows: the float32 GEMM
    assert.equal(addon!.matmulPrecision(), 'bf16', 'a fullPrecision call restores the setting');
  } finally {
    setCpuMatmulPrecision('fp32');
  }
  assert.deepEqual(bf16Kept, fp32Full);
  assert.deepEqual(bf16Tiny, fp32Tiny);
  assert.notDeepEqual(bf16Full, fp32Full);
});

test(
  'matmul precision: reported, and refused with the accepted values',
  { skip: target.skip },
  () => {
    assert.equal(addon!.matmulPrecision(), 'fp32');
    assert.equal(addon!.info().matmul, 'fp32');
    assert.throws(
      () => addon!.setMatmulPrecision('fp16'),
      /unknown matmul precision 'fp16' \(accepted: fp32, bf16\)/,
    );
    if (!hasTiles) {
      assert.throws(() => setCpuMatmulPrecision('bf16'), /needs AMX-BF16 tiles/);
      assert.equal(addon!.matmulPrecision(), 'fp32');
    }
  },
);

test(
  'bf16 matmuls: a short training run follows the float32 one, not its bits',
  { skip: skipTiles },
  () => {
    // A 2-layer GPT whose products (4 x 23 = 92 rows) reach the tiles.
    const config = { vocabSize: 96, blockSize: 23, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0 };
    const previous = getBackend().name;
    const run = (): number[] => {
      setBackend('cpu');
      const { step } = makeTrainStep(4, config, 4242);
      return Array.from({ length: 12 }, () => step());
    };
    try {
      const fp32 = run();
      setCpuMatmulPrecision('bf16');
      let bf16: number[];
      try {
        bf16 = run();
      } finally {
        setCpuMatmulPrecision('fp32');
      }
      assert.notDeepEqual(bf16, fp32, 'the bf16 run rounds its operands');
      for (let s = 0; s < fp32.length; s++) {
        const gap = Math.abs(bf16[s]! - fp32[s]!);
        assert.ok(gap <= 0.02 * fp32[s]!, `step ${s}: bf16 loss ${bf16[s]} vs fp32 ${fp32[s]}`);
      }
      assert.ok(bf16[bf16.length - 1]! < bf16[0]!, 'the loss falls');
    } finally {
      setBackend(previous);
    }
  },
);
