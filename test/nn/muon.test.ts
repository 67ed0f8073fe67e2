// Muon: the Newton-Schulz iteration against a float64 reference (in both of its ways, wide and
// tall, batched) and its orthogonalising effect, one update against a by-hand reference
// (matrices of both orientations, AdamW for the rest), and a resumed optimiser stepping exactly
// as an uninterrupted one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import * as F from '../../src/engine/ops';
import type { Tensor } from '../../src/engine/tensor';
import { Rng } from '../../src/nn/rng';
import { AdamW } from '../../src/nn/optim';
import { Muon, newtonSchulz } from '../../src/nn/muon';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

type Matrix = number[][];

const matmul = (a: Matrix, b: Matrix): Matrix =>
  a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const transpose = (a: Matrix): Matrix => a[0]!.map((_, j) => a.map((row) => row[j]!));
const combine = (a: Matrix, b: Matrix, x: number, y: number): Matrix =>
  a.map((row, i) => row.map((v, j) => x * v + y * b[i]![j]!));

/** The quintic Newton-Schulz iteration in float64, on X / ||X||_F, wide side last. */
function referenceOrthogonal(g: Matrix, steps = 5): Matrix {
  const wide = g.length <= g[0]!.length;
  let x = wide ? g : transpose(g);
  const norm = Math.sqrt(x.flat().reduce((s, v) => s + v * v, 0)) + 1e-7;
  x = x.map((row) => row.map((v) => v / norm));
  for (let i = 0; i < steps; i++) {
    const gram = matmul(x, transpose(x));
    const poly = combine(gram, matmul(gram, gram), -4.775, 2.0315);
    x = combine(x, matmul(poly, x), 3.4445, 1);
  }
  return wide ? x : transpose(x);
}

function randomMatrix(rng: Rng, rows: number, cols: number): Matrix {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
}

const toTensor = (m: Matrix): Tensor => F.tensor(m.flat(), [m.length, m[0]!.length]);

function assertClose(actual: ArrayLike<number>, expected: number[], tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++)
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tol,
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
}

test('newtonSchulz matches the float64 reference in X space and in Gram space, wide and tall, batched', () => {
  const rng = new Rng(4);
  // [slices, rows, cols]: a square slice runs in X's space (fewer multiply-adds), the others
  // in the Gram matrix's; normalised by the iteration itself.
  for (const [slices, rows, cols] of [
    [1, 7, 7],
    [3, 5, 12],
    [2, 16, 4],
    [1, 24, 96],
  ] as const) {
    const gs = Array.from({ length: slices }, () => randomMatrix(rng, rows, cols));
    const x = F.tensor(gs.flat(2), [slices, rows, cols]);
    const out = newtonSchulz(x, 5, true).toFloat32Array();
    const expected = gs.flatMap((g) => referenceOrthogonal(g).flat());
    assertClose(out, expected, 5e-6, `NS5 [${slices}, ${rows}, ${cols}]`);
  }
});

test('newtonSchulz matches a float64 reference and brings the singular values near 1', () => {
  const rng = new Rng(3);
  const g = randomMatrix(rng, 6, 10);
  const norm = Math.sqrt(g.flat().reduce((s, v) => s + v * v, 0)) + 1e-7;
  const x = toTensor(g.map((row) => row.map((v) => v / norm)));
  const out = newtonSchulz(x);
  const expected = referenceOrthogonal(g);
  assertClose(out.toFloat32Array(), expected.flat(), 1e-4, 'NS5');
  // X X^T ~ I: the iteration leaves the singular values in about [0.7, 1.2].
  const gram = matmul(expected, transpose(expected));
  for (let i = 0; i < 6; i++) {
    assert.ok(gram[i]![i]! > 0.45 && gram[i]![i]! < 1.45, `diag ${gram[i]![i]}`);
  }
  // The raw direction is far from orthogonal: its Gram matrix's diagonal spreads much wider.
  const raw = matmul(g, transpose(g));
  const spread = (m: Matrix) =>
    Math.max(...m.map((r, i) => r[i]!)) / Math.min(...m.map((r, i) => r[i]!));
  assert.ok(spread(gram) < spread(raw));
});

test('one Muon step: orthogonalised Nesterov momentum for matrices of both orientations, AdamW for the rest', () => {
  const rng = new Rng(5);
  const wide = randomMatrix(rng, 4, 8); // [in 4, out 8]: scaled by sqrt(8 / 4)
  const tall = randomMatrix(rng, 8, 4); // [in 8, out 4]: orthogonalised in its own layout
  const gain = [0.5, -1, 2, 0.25];
  const params: [string, Tensor][] = [
    ['h.0.wide.weight', toTensor(wide)],
    ['h.0.tall.weight', toTensor(tall)],
    ['h.0.gain', F.tensor(gain, [4])],
  ];
  const grads = [randomMatrix(rng, 4, 8), randomMatrix(rng, 8, 4), randomMatrix(rng, 1, 4)];
  const setGrads = (ps: [string, Tensor][]) =>
    ps.forEach(([, p], i) => {
      p.grad = F.tensor(grads[i]!.flat(), p.shape);
    });
  const lr = 0.01;
  const muonLr = 0.05;
  const muon = new Muon(params, { lr, muonLr, momentum: 0.9, weightDecay: 0 });
  assert.deepEqual(muon.matrixNames(), ['h.0.wide.weight', 'h.0.tall.weight']);
  setGrads(params);
  muon.update(lr / 2); // halfway down the schedule: both rates halve
  // Nesterov from zero momentum: g + 0.9 (0.9 * 0 + g) = 1.9 g; the norm makes the factor moot.
  const expectedWide = combine(wide, referenceOrthogonal(grads[0]!), 1, (-muonLr / 2) * Math.SQRT2);
  const expectedTall = combine(tall, referenceOrthogonal(grads[1]!), 1, -muonLr / 2);
  assertClose(params[0]![1].toFloat32Array(), expectedWide.flat(), 1e-5, 'wide');
  assertClose(params[1]![1].toFloat32Array(), expectedTall.flat(), 1e-5, 'tall');
  // The gain: exactly AdamW's step at the same rate.
  const alone: [string, Tensor][] = [['h.0.gain', F.tensor(gain, [4])]];
  const adamw = new AdamW(alone, { lr, weightDecay: 0 });
  alone[0]![1].grad = F.tensor(grads[2]!.flat(), [4]);
  adamw.update(lr / 2);
  assert.deepEqual(
    Array.from(params[2]![1].toFloat32Array()),
    Array.from(alone[0]![1].toFloat32Array()),
  );
  assert.equal(muon.step, 1);
});

test('a Muon restored from its state steps exactly as the uninterrupted one', () => {
  const make = () => {
    const rng = new Rng(9);
    const params: [string, Tensor][] = [
      ['h.0.w.weight', toTensor(randomMatrix(rng, 6, 3))],
      ['h.0.b', F.tensor([0.1, 0.2, 0.3], [3])],
    ];
    return params;
  };
  const gradRng = new Rng(11);
  const steps = [0, 1, 2].map(() => [randomMatrix(gradRng, 6, 3).flat(), [0.3, -0.2, 0.1]]);
  const stepWith = (opt: Muon, ps: [string, Tensor][], k: number) => {
    ps.forEach(([, p], i) => {
      p.grad = F.tensor(steps[k]![i]!, p.shape);
    });
    opt.update();
    opt.zeroGrad();
  };
  const options = { lr: 0.01, muonLr: 0.02, weightDecay: 0.1 };
  const straight = make();
  const a = new Muon(straight, options);
  for (let k = 0; k < 3; k++) stepWith(a, straight, k);

  const first = make();
  const b = new Muon(first, options);
  for (let k = 0; k < 2; k++) stepWith(b, first, k);
  const resumed: [string, Tensor][] = first.map(([n, p]) => [n, F.clone(p)]);
  const c = new Muon(resumed, options);
  c.loadState(b.state());
  assert.equal(c.step, 2);
  stepWith(c, resumed, 2);
  straight.forEach(([n, p], i) =>
    assert.deepEqual(
      Array.from(resumed[i]![1].toFloat32Array()),
      Array.from(p.toFloat32Array()),
      n,
    ),
  );
});

test('a matrix without a gradient keeps its weights and momentum; its batch-mates step as alone', () => {
  const rng = new Rng(13);
  const w1 = randomMatrix(rng, 5, 9);
  const w2 = randomMatrix(rng, 5, 9); // the same shape: one batch with w1
  const g1 = [randomMatrix(rng, 5, 9), randomMatrix(rng, 5, 9)];
  const g2 = randomMatrix(rng, 5, 9);
  const options = { lr: 0.01, muonLr: 0.05, weightDecay: 0.1 };
  const pair: [string, Tensor][] = [
    ['h.0.a.weight', toTensor(w1)],
    ['h.0.b.weight', toTensor(w2)],
  ];
  const alone: [string, Tensor][] = [['h.0.a.weight', toTensor(w1)]];
  const both = new Muon(pair, options);
  const one = new Muon(alone, options);
  const stepBoth = (withB: boolean, g: Matrix) => {
    pair[0]![1].grad = toTensor(g);
    if (withB) pair[1]![1].grad = toTensor(g2);
    alone[0]![1].grad = toTensor(g);
    for (const opt of [both, one]) {
      opt.update();
      opt.zeroGrad();
    }
  };
  stepBoth(true, g1[0]!);
  const bWeights = pair[1]![1].toFloat32Array();
  const bMomentum = both.state().m['h.0.b.weight']!;
  stepBoth(false, g1[1]!); // b has no gradient at the second step
  assert.deepEqual(pair[0]![1].toFloat32Array(), alone[0]![1].toFloat32Array());
  assert.deepEqual(both.state().m['h.0.a.weight'], one.state().m['h.0.a.weight']);
  assert.deepEqual(pair[1]![1].toFloat32Array(), bWeights);
  assert.deepEqual(both.state().m['h.0.b.weight'], bMomentum);
  // b's momentum after its one step: 0.95 * 0 + g
  assert.deepEqual(bMomentum, Float32Array.from(g2.flat()));
});
