// Every differentiable op's gradient against central finite differences (reference backend),
// including odd sizes and broadcasting; shape errors name the op and the shapes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import * as F from '../../src/engine/ops';
import { tidy, noGrad, memoryStats, releasePool, setPoolLimit } from '../../src/engine/tensor';
import type { Tensor } from '../../src/engine/tensor';
import { gradCheck, TestRng } from './gradcheck';

setBackend('js');
const rng = new TestRng(1234);
const inp = (shape: number[], lo = -1, hi = 1) => ({
  shape,
  data: rng.array(
    shape.reduce((a, b) => a * b, 1),
    lo,
    hi,
  ),
});

test('binary ops with broadcasting', () => {
  for (const [sa, sb] of [
    [
      [3, 5],
      [3, 5],
    ],
    [[2, 3, 5], [5]],
    [
      [2, 1, 5],
      [3, 1],
    ],
    [[1], [4, 7]],
    [
      [7, 1, 3],
      [1, 2, 1],
    ],
  ]) {
    gradCheck(`add ${sa}+${sb}`, ([a, b]) => F.add(a, b), [inp(sa), inp(sb)]);
    gradCheck(`sub ${sa}-${sb}`, ([a, b]) => F.sub(a, b), [inp(sa), inp(sb)]);
    gradCheck(`mul ${sa}*${sb}`, ([a, b]) => F.mul(a, b), [inp(sa), inp(sb)]);
    gradCheck(`div ${sa}/${sb}`, ([a, b]) => F.div(a, b), [inp(sa), inp(sb, 0.5, 2)]);
  }
});

test('unary ops, affine', () => {
  const s = [3, 7];
  gradCheck('exp', ([x]) => F.exp(x), [inp(s)]);
  gradCheck('log', ([x]) => F.log(x), [inp(s, 0.5, 2)]);
  gradCheck('tanh', ([x]) => F.tanh(x), [inp(s)]);
  gradCheck('relu', ([x]) => F.relu(x), [inp(s, 0.1, 1)]);
  gradCheck('relu neg', ([x]) => F.relu(x), [inp(s, -1, -0.1)]);
  gradCheck('gelu', ([x]) => F.gelu(x), [inp(s, -3, 3)]);
  gradCheck('neg', ([x]) => F.neg(x), [inp(s)]);
  gradCheck('sqrt', ([x]) => F.sqrt(x), [inp(s, 0.5, 2)]);
  gradCheck('square', ([x]) => F.square(x), [inp(s)]);
  gradCheck('affine', ([x]) => F.affine(x, -1.5, 0.25), [inp(s)]);
});

test('sum and mean over axes', () => {
  gradCheck('sum all', ([x]) => F.sum(x), [inp([2, 3, 5])]);
  for (const axis of [0, 1, 2, -1]) {
    gradCheck(`sum axis ${axis}`, ([x]) => F.sum(x, axis), [inp([2, 3, 5])]);
    gradCheck(`mean axis ${axis} keep`, ([x]) => F.mean(x, axis, true), [inp([2, 3, 5])]);
  }
});

test('matmul: batched, transposes, broadcasting', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const [m, k, n] = [3, 5, 2];
      const a2 = transA ? [k, m] : [m, k];
      const b2 = transB ? [n, k] : [k, n];
      const opts = { transA, transB };
      gradCheck(`mm 2d ${transA}${transB}`, ([a, b]) => F.matmul(a, b, opts), [inp(a2), inp(b2)]);
      gradCheck(`mm batched ${transA}${transB}`, ([a, b]) => F.matmul(a, b, opts), [
        inp([2, ...a2]),
        inp([2, ...b2]),
      ]);
      gradCheck(`mm bcast B ${transA}${transB}`, ([a, b]) => F.matmul(a, b, opts), [
        inp([2, 3, ...a2]),
        inp(b2),
      ]);
      gradCheck(`mm bcast A ${transA}${transB}`, ([a, b]) => F.matmul(a, b, opts), [
        inp(a2),
        inp([3, ...b2]),
      ]);
    }
  }
  const y = F.matmul(F.tensor([1, 2, 3, 4], [2, 2]), F.tensor([5, 6, 7, 8], [2, 2]));
  assert.deepEqual([...y.toArray()], [19, 22, 43, 50]);
});

test('matmulLeadingRows equals matmul of the sliced leading rows, bit for bit, and records no gradient', () => {
  const rng = new TestRng(11);
  const values = (n: number) => rng.array(n);
  const cacheShape = [2, 3, 9, 4]; // [B, heads, slots, headSize]
  const cache = F.tensor(values(2 * 3 * 9 * 4), cacheShape);
  for (const rows of [1, 5, 9]) {
    noGrad(() => {
      const q = F.tensor(values(2 * 3 * 2 * 4), [2, 3, 2, 4]);
      const filled = F.slice(cache, 2, 0, rows);
      const scores = F.matmulLeadingRows(q, cache, rows, { transB: true });
      assert.deepEqual(scores.shape, [2, 3, 2, rows]);
      assert.deepEqual(
        [...scores.toFloat32Array()],
        [...F.matmul(q, filled, { transB: true }).toFloat32Array()],
      );
      const p = F.tensor(values(2 * 3 * 2 * rows), [2, 3, 2, rows]);
      assert.deepEqual(
        [...F.matmulLeadingRows(p, cache, rows).toFloat32Array()],
        [...F.matmul(p, filled).toFloat32Array()],
      );
    });
  }
  assert.throws(
    () => F.matmulLeadingRows(F.zeros([2, 3, 2, 4]), cache, 10, { transB: true }),
    /first 10 rows/,
  );
  const w = F.tensor(values(2 * 3 * 2 * 4), [2, 3, 2, 4]);
  w.requiresGrad = true;
  assert.throws(() => F.matmulLeadingRows(w, cache, 3, { transB: true }), /no gradient/);
});

test('matmul with a bias equals matmul then add, values and gradients bit for bit', () => {
  const rng = new TestRng(6);
  // [a shape, b shape, options]: a Linear on [B, T, in] (one folded GEMM), batched with
  // transposes, 2-D; depth over a packing block.
  const cases: [number[], number[], F.MatmulOptions][] = [
    [[2, 5, 7], [7, 3], {}],
    [[2, 7, 5], [2, 3, 7], { transA: true, transB: true }],
    [[3, 300], [300, 9], {}],
  ];
  for (const [aShape, bShape, opts] of cases) {
    const n = opts.transB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
    const [aData, bData, biasData] = [aShape, bShape, [n]].map((s) =>
      rng.array(s.reduce((x, y) => x * y, 1)),
    );
    const run = (fused: boolean): number[][] =>
      tidy(() => {
        const [a, b, bias] = [
          F.tensor(aData, aShape),
          F.tensor(bData, bShape),
          F.tensor(biasData, [n]),
        ];
        for (const t of [a, b, bias]) t.requiresGrad = true;
        const y = fused ? F.matmul(a, b, { ...opts, bias }) : F.add(F.matmul(a, b, opts), bias);
        const g = new TestRng(7).array(y.size); // the same output gradient for both
        F.sum(F.mul(y, F.tensor(g, y.shape))).backward();
        return [y, a.grad!, b.grad!, bias.grad!].map((t) => [...t.toArray()]);
      });
    assert.deepEqual(run(true), run(false), `${aShape} @ ${bShape}`);
    gradCheck(`mm bias ${aShape}`, ([a, b, bias]) => F.matmul(a, b, { ...opts, bias }), [
      inp(aShape),
      inp(bShape),
      inp([n]),
    ]);
  }
  assert.throws(
    () => F.matmul(F.zeros([2, 3]), F.zeros([3, 4]), { bias: F.zeros([3]) }),
    /matmul: a product with 4 columns needs a bias \[4\], got \[3\]/,
  );
});

test('layout ops: reshape, permute, transpose, slice, concat, split', () => {
  gradCheck('reshape', ([x]) => F.mul(F.reshape(x, [6, -1]), F.reshape(x, [6, 5])), [
    inp([2, 3, 5]),
  ]);
  gradCheck('permute', ([x]) => F.permute(x, [2, 0, 1]), [inp([2, 3, 5])]);
  gradCheck('transpose', ([x]) => F.transpose(x, 1, 3), [inp([2, 3, 1, 4])]);
  gradCheck('slice', ([x]) => F.slice(x, 1, 1, 4), [inp([2, 5, 3])]);
  gradCheck('concat', ([a, b, c]) => F.concat([a, b, c], 1), [
    inp([2, 1, 3]),
    inp([2, 4, 3]),
    inp([2, 2, 3]),
  ]);
  gradCheck(
    'split',
    ([x]) => {
      const [p, q] = F.split(x, [2, 3], -1);
      return F.concat([F.scale(q, 2), p], -1);
    },
    [inp([3, 5])],
  );
  const x = F.tensor([0, 1, 2, 3, 4, 5], [2, 3]);
  assert.deepEqual([...F.transpose(x, 0, 1).toArray()], [0, 3, 1, 4, 2, 5]);
  assert.deepEqual([...F.slice(x, 1, 1, 3).toArray()], [1, 2, 4, 5]);
});

test('embedding gather with scatter-add backward (repeated indices)', () => {
  const idx = F.tensor([1, 3, 1, 0, 3, 3], [2, 3], 'int32');
  gradCheck('embedding', ([t]) => F.embedding(t, idx), [inp([4, 5])]);
  assert.throws(() => F.embedding(F.zeros([4, 5]), F.tensor([4], [1], 'int32')), /4/);
});

test('layerNorm, softmax (causal), cross-entropy', () => {
  gradCheck('layerNorm', ([x, w, b]) => F.layerNorm(x, w, b), [inp([3, 7]), inp([7]), inp([7])], {
    h: 3e-3,
  });
  gradCheck('softmax', ([x]) => F.softmax(x), [inp([2, 3, 5], -2, 2)]);
  gradCheck('softmax causal', ([x]) => F.softmax(x, { causal: true }), [inp([2, 4, 4], -2, 2)]);
  gradCheck('softmax causal offset', ([x]) => F.softmax(x, { causal: true }), [
    inp([2, 2, 5], -2, 2),
  ]);
  const targets = F.tensor([2, -1, 0, 4, 1, 3], [2, 3], 'int32');
  gradCheck('crossEntropy none', ([x]) => F.crossEntropy(x, targets, 'none'), [
    inp([2, 3, 5], -2, 2),
  ]);
  gradCheck('crossEntropy mean', ([x]) => F.crossEntropy(x, targets, 'mean'), [
    inp([2, 3, 5], -2, 2),
  ]);
  // Masked entries are exactly zero.
  const p = F.softmax(F.tensor(rng.array(9), [3, 3]), { causal: true }).toArray();
  assert.equal(p[1], 0);
  assert.equal(p[2], 0);
  assert.equal(p[5], 0);
  // Uniform logits give log(V).
  const l = F.crossEntropy(F.zeros([4, 10]), F.tensor([0, 1, 2, 3], [4], 'int32')).item();
  assert.ok(Math.abs(l - Math.log(10)) < 1e-6);
});

test('fused ops: biasGelu, addLayerNorm, mean cross-entropy from the seed gradient', () => {
  gradCheck('biasGelu', ([x, b]) => F.biasGelu(x, b), [inp([2, 3, 5], -2, 2), inp([5])], {
    h: 3e-3,
  });
  gradCheck(
    'addLayerNorm (both outputs)',
    ([x, r, w, b]) => {
      const { sum: h, normed } = F.addLayerNorm(x, r, w, b);
      return F.add(F.scale(h, 0.5), normed);
    },
    [inp([3, 7]), inp([3, 7]), inp([7]), inp([7])],
    { h: 3e-3 },
  );
  // The fused ops equal their unfused chains.
  const x = F.tensor(rng.array(30, -2, 2), [2, 3, 5]);
  const b = F.tensor(rng.array(5), [5]);
  const fused = F.biasGelu(x, b).toFloat32Array();
  const chain = F.gelu(F.add(x, b)).toFloat32Array();
  assert.deepEqual(fused, chain);
  const r = F.tensor(rng.array(30), [2, 3, 5]);
  const w = F.tensor(rng.array(5), [5]);
  const { sum: h, normed } = F.addLayerNorm(x, r, w, b);
  assert.deepEqual(h.toFloat32Array(), F.add(x, r).toFloat32Array());
  assert.deepEqual(normed.toFloat32Array(), F.layerNorm(F.add(x, r), w, b).toFloat32Array());
  // loss.backward() (the seed gradient 1) gives the gradient of the mean of the per-row losses.
  const targets = F.tensor([2, -1, 0, 4, 1, 3], [2, 3], 'int32');
  const data = rng.array(30, -2, 2);
  const grads = [true, false].map((fusedMean) =>
    tidy(() => {
      const logits = F.tensor(data.slice(), [2, 3, 5]);
      logits.requiresGrad = true;
      const loss = fusedMean
        ? F.crossEntropy(logits, targets)
        : F.scale(F.sum(F.crossEntropy(logits, targets, 'none')), 1 / 5);
      loss.backward();
      return { loss: loss.item(), grad: logits.grad!.toFloat32Array() };
    }),
  );
  assert.ok(Math.abs(grads[0].loss - grads[1].loss) < 1e-6);
  grads[0].grad.forEach((g, i) => assert.ok(Math.abs(g - grads[1].grad[i]) < 1e-7, `grad ${i}`));
  // Every target ignored: loss 0 and a zero gradient.
  const none = F.crossEntropy(
    F.tensor(data.slice(0, 10), [2, 5]),
    F.tensor([-1, -1], [2], 'int32'),
  );
  assert.equal(none.item(), 0);
});

test('dropout: gradient flows through the kept units, same seed same mask', () => {
  gradCheck('dropout', ([x]) => F.dropout(x, 0.3, 99), [inp([4, 9])]);
  const x = F.ones([1000]);
  const a = F.dropout(x, 0.5, 1).toArray();
  const b = F.dropout(x, 0.5, 1).toArray();
  assert.deepEqual(a, b);
  const kept = [...a].filter((v) => v !== 0).length;
  assert.ok(kept > 400 && kept < 600, `kept ${kept}`);
});

test('conv2d and convTranspose2d (stride, padding)', () => {
  for (const [stride, pad, k] of [
    [1, 0, 3],
    [2, 1, 4],
    [2, 0, 3],
    [1, 1, 3],
  ]) {
    gradCheck(
      `conv2d s${stride} p${pad} k${k}`,
      ([x, w, b]) => F.conv2d(x, w, b, stride, pad),
      [inp([2, 2, 6, 5]), inp([3, 2, k, k]), inp([3])],
      { h: 3e-3 },
    );
    gradCheck(
      `convT s${stride} p${pad} k${k}`,
      ([x, w, b]) => F.convTranspose2d(x, w, b, stride, pad),
      [inp([2, 3, 3, 4]), inp([3, 2, k, k]), inp([2])],
      { h: 3e-3 },
    );
  }
  // conv2d by hand: 1 channel, 2x2 kernel of ones sums each window.
  const y = F.conv2d(
    F.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]),
    F.ones([1, 1, 2, 2]),
    null,
  );
  assert.deepEqual([...y.toArray()], [12, 16, 24, 28]);
  assert.deepEqual(y.shape, [1, 1, 2, 2]);
});

test('nearestCode picks the closest row', () => {
  const cb = F.tensor([0, 0, 1, 1, -1, 2], [3, 2]);
  const z = F.tensor([0.9, 1.2, -0.8, 1.9, 0.1, -0.1], [3, 2]);
  const { indices, distances } = F.nearestCode(z, cb);
  assert.deepEqual([...indices.toArray()], [1, 2, 0]);
  assert.ok(Math.abs(distances.toArray()[0] - (0.01 + 0.04)) < 1e-6);
});

test('gradient accumulation across two backward passes; no-grad records nothing', () => {
  const w = F.tensor([1, 2, 3], [3]);
  w.requiresGrad = true;
  F.sum(F.mul(w, w)).backward();
  F.sum(F.mul(w, w)).backward();
  assert.deepEqual([...w.grad!.toArray()], [4, 8, 12]);
  const y = noGrad(() => F.mul(w, w));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
});

test('shape errors name the op and both shapes', () => {
  assert.throws(() => F.add(F.zeros([2, 3]), F.zeros([4])), /add: shapes \[2, 3\] and \[4\]/);
  assert.throws(
    () => F.matmul(F.zeros([2, 3]), F.zeros([4, 5])),
    /matmul: shapes \[2, 3\] and \[4, 5\]/,
  );
  assert.throws(() => F.reshape(F.zeros([2, 3]), [4, 2]), /reshape: cannot view \[2, 3\]/);
  assert.throws(
    () => F.concat([F.zeros([2, 3]), F.zeros([3, 3])], 1),
    /concat: shapes \[2, 3\], \[3, 3\]/,
  );
  assert.throws(
    () => F.layerNorm(F.zeros([2, 3]), F.ones([4]), F.zeros([4])),
    /layerNorm: input \[2, 3\]/,
  );
  assert.throws(
    () => F.crossEntropy(F.zeros([2, 5]), F.zeros([3], 'int32')),
    /crossEntropy: logits \[2, 5\] and targets \[3\]/,
  );
});

test('tidy frees everything but what is returned; use after free is an error', () => {
  const before = memoryStats().liveTensors;
  const kept = tidy(() => {
    const a = F.ones([10]);
    const b = F.add(a, a);
    F.mul(b, b);
    return b;
  });
  assert.equal(memoryStats().liveTensors, before + 1);
  const inner = tidy(() => F.ones([3]));
  tidy(() => {
    const t = F.ones([2]);
    return [t];
  }).forEach((t) => t.dispose());
  kept.dispose();
  inner.dispose();
  assert.equal(memoryStats().liveTensors, before);
  assert.throws(() => kept.toArray(), /already freed/);
});

test('host buffers come in size classes: a nearby size reuses a parked buffer, as a zeroed view of its own length', () => {
  releasePool();
  try {
    // 1500 and 1450 floats share the class of 1536 (1/8 steps of a power of two above 1024).
    let parked: ArrayBufferLike | undefined;
    tidy(() => {
      const a = F.tensor(new Float32Array(1500).fill(3), [1500]);
      const b = F.add(a, a); // a pool buffer (uploads are not pooled)
      parked = (b.buf as Float32Array).buffer;
      assert.equal((b.buf as Float32Array).length, 1500);
    });
    assert.equal(memoryStats().pooledBytes, 1536 * 4);
    tidy(() => {
      const c = F.zeros([1450]);
      const buf = c.buf as Float32Array;
      assert.equal(buf.buffer, parked);
      assert.equal(buf.length, 1450);
      assert.ok(c.toFloat32Array().every((v) => v === 0));
      assert.equal(memoryStats().pooledBytes, 0);
    });
    // 1400 floats are in the class below (1408): a buffer of its own.
    tidy(() => assert.notEqual((F.zeros([1400]).buf as Float32Array).buffer, parked));
  } finally {
    releasePool();
  }
});

test('a full buffer pool gives way to the sizes used most recently', () => {
  releasePool();
  const previous = setPoolLimit(3 * 1000 * 4); // room for three buffers of 1000 floats
  try {
    const pooled = () => memoryStats().pooledBytes;
    // Workload A parks three 1000-float buffers: the pool is full.
    tidy(() => [0, 1, 2].forEach(() => F.zeros([1000])));
    assert.equal(pooled(), 12000);
    // Workload B's four 500-float buffers evict two of A's (the least recently used class).
    tidy(() => [0, 1, 2, 3].forEach(() => F.zeros([500])));
    assert.equal(pooled(), 4000 + 4 * 2000);
    // B's next step is served from the pool entirely.
    tidy(() => {
      const xs = [0, 1, 2, 3].map(() => F.zeros([500]));
      assert.equal(pooled(), 4000);
      assert.ok(xs.every((x) => x.toFloat32Array().every((v) => v === 0)));
    });
    // Lowering the bound frees the least recently used buffers first: A's goes, B's stay.
    setPoolLimit(8000);
    assert.equal(pooled(), 8000);
    tidy(() => {
      F.zeros([500]);
      F.zeros([500]);
      assert.equal(pooled(), 4000);
    });
    assert.throws(() => setPoolLimit(-1), /setPoolLimit: need a number of bytes >= 0/);
  } finally {
    setPoolLimit(previous);
    releasePool();
  }
});

test('causalAttention equals the composed attention (permute, scale, matmul, softmax, matmul), values and gradients bit for bit', () => {
  const [B, T, nh, hs] = [2, 7, 3, 4];
  const rng = new TestRng(5);
  const data = rng.array(B * T * 3 * nh * hs);
  const gData = rng.array(B * T * nh * hs);
  const run = (fused: boolean): [number[], number[]] =>
    tidy(() => {
      const qkv = F.tensor(data, [B, T, 3 * nh * hs]);
      qkv.requiresGrad = true;
      let y: Tensor;
      if (fused) {
        y = F.causalAttention(qkv, nh);
      } else {
        const heads = F.permute(F.reshape(qkv, [B, T, 3, nh, hs]), [2, 0, 3, 1, 4]);
        const [q, k, v] = F.split(heads, [1, 1, 1], 0).map((t) => F.reshape(t, [B, nh, T, hs]));
        const att = F.softmax(F.matmul(F.scale(q, 1 / Math.sqrt(hs)), k, { transB: true }), {
          causal: true,
        });
        y = F.reshape(F.permute(F.matmul(att, v), [0, 2, 1, 3]), [B, T, nh * hs]);
      }
      F.sum(F.mul(y, F.tensor(gData, y.shape))).backward();
      return [[...y.toArray()], [...qkv.grad!.toArray()]];
    });
  const [yFused, gFused] = run(true);
  const [yComposed, gComposed] = run(false);
  assert.deepEqual(yFused, yComposed);
  assert.deepEqual(gFused, gComposed);
  gradCheck('causalAttention', ([x]) => F.causalAttention(x, 2), [inp([1, 5, 12])]);
  assert.throws(() => F.causalAttention(F.zeros([1, 65, 6]), 2), /T <= 64/);
});
