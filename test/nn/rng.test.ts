// The seeded RNG: the xoshiro128** reference stream, determinism, state save/restore, ranges,
// unbiased int(), normal() moments, shuffle/permutation, and derived sub-streams.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, deriveSeed } from '../../src/nn/rng';

test('next() follows the xoshiro128** reference for state [1, 2, 3, 4]', () => {
  const rng = new Rng(0);
  rng.setState([1, 2, 3, 4]);
  // First outputs of the reference C implementation (prng.di.unimi.it) from s = {1, 2, 3, 4}.
  assert.deepEqual([rng.next(), rng.next(), rng.next(), rng.next()], [11520, 0, 5927040, 70819200]);
});

test('same seed gives the same stream; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 100 }, () => a.next());
  const sb = Array.from({ length: 100 }, () => b.next());
  const sc = Array.from({ length: 100 }, () => c.next());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  // Seeds above 2^32 use their high bits too.
  assert.notEqual(new Rng(2 ** 32 + 5).next(), new Rng(5).next());
});

test('getState/setState resume the stream exactly', () => {
  const rng = new Rng(7);
  for (let i = 0; i < 10; i++) rng.normal();
  const state = rng.getState();
  const expected = [rng.next(), rng.uniform(), rng.int(1000), rng.normal()];
  const resumed = new Rng(999);
  resumed.setState(JSON.parse(JSON.stringify(state)) as number[]);
  assert.deepEqual(
    [resumed.next(), resumed.uniform(), resumed.int(1000), resumed.normal()],
    expected,
  );
  assert.throws(() => resumed.setState([1, 2, 3]), /4 uint32 words/);
  assert.throws(() => resumed.setState([0, 0, 0, 0]), /all-zero/);
});

test('uniform in [0, 1), int in range and unbiased, normal has mean 0 and variance 1', () => {
  const rng = new Rng(1);
  const counts = new Array<number>(6).fill(0);
  let sum = 0;
  let sumSq = 0;
  const n = 60000;
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1);
    counts[rng.int(6)]!++;
    const z = rng.normal();
    assert.ok(Number.isFinite(z));
    sum += z;
    sumSq += z * z;
  }
  for (const c of counts) assert.ok(Math.abs(c - n / 6) < 500, `int(6) counts ${counts}`);
  assert.ok(Math.abs(sum / n) < 0.02);
  assert.ok(Math.abs(sumSq / n - 1) < 0.03);
  assert.equal(rng.int(1), 0);
  assert.throws(() => rng.int(0), /positive|\[1, 2\^32\]/);
  assert.throws(() => new Rng(-1), /non-negative/);
});

test('shuffle and permutation give permutations, deterministically', () => {
  const perm = new Rng(3).permutation(1000);
  assert.deepEqual(
    [...perm].sort((a, b) => a - b),
    Array.from({ length: 1000 }, (_, i) => i),
  );
  assert.deepEqual(perm, new Rng(3).permutation(1000));
  const words = ['a', 'b', 'c', 'd', 'e'];
  new Rng(3).shuffle(words);
  assert.deepEqual([...words].sort(), ['a', 'b', 'c', 'd', 'e']);
});

test('deriveSeed gives distinct, stable sub-stream seeds', () => {
  assert.equal(deriveSeed(0, 'train'), deriveSeed(0, 'train'));
  assert.notEqual(deriveSeed(0, 'train'), deriveSeed(0, 'test'));
  assert.notEqual(deriveSeed(0, 'train'), deriveSeed(1, 'train'));
  assert.ok(Number.isInteger(deriveSeed(12345, 'x')) && deriveSeed(12345, 'x') >= 0);
});
