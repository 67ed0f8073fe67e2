// The per-kernel profile (src/perf/profile.ts): it counts kernels by phase, formats them, and
// restores the backend's own and inherited methods.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProfile, instrumentBackend, profileTrainStep } from '../../src/perf/profile';
import type { GptConfig } from '../../src/gpt/model';
import { setBackend } from '../../src/engine/registry';

const tiny: GptConfig = { vocabSize: 20, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, dropout: 0 };

test('profileTrainStep counts kernels by phase and restores the backend', () => {
  const backend = setBackend('js');
  const matmul = backend.matmul;
  const p = profileTrainStep({ backend: 'js', batch: 2, steps: 2, warmup: 1, config: tiny });
  assert.equal(backend.matmul, matmul, 'the original methods are back');
  const names = p.kernels.map((k) => k.name);
  for (const n of ['matmul (fwd)', 'matmul (bwd)', 'adamMulti (opt)', 'layerNorm (fwd)'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  for (let i = 1; i < p.kernels.length; i++)
    assert.ok(p.kernels[i - 1].totalMs >= p.kernels[i].totalMs, 'sorted by time');
  // Per step: one multi-tensor Adam call over every parameter; 2 steps timed.
  const adam = p.kernels.find((k) => k.name === 'adamMulti (opt)')!;
  assert.equal(adam.calls, 2);
  assert.ok(p.matmulShapes.length > 0 && p.matmulShapes.every((m) => m.flops > 0));
  assert.ok(p.kernelFraction > 0 && p.kernelFraction <= 1.0001);
  assert.match(formatProfile(p), /matmul \(fwd\)/);
});

test('instrumentBackend records calls and restores own and inherited methods', () => {
  class Fake {
    readonly name = 'js' as const;
    calls = 0;
    sync(): void {}
    fill(): void {
      this.calls++;
    }
    /** Calls another method through `this`, as backend methods may. */
    twice(): void {
      const t0 = performance.now();
      while (performance.now() - t0 < 2); // 2 ms of its own
      this.fill();
      this.fill();
    }
  }
  const fake = new Fake();
  const { kernels, outerMs, restore } = instrumentBackend(
    fake as unknown as Parameters<typeof instrumentBackend>[0],
    () => 'fwd',
  );
  fake.fill();
  fake.fill();
  assert.equal(fake.calls, 2, 'the wrapper calls through with the right this');
  assert.equal(kernels.get('fill (fwd)')?.calls, 2);
  // The nested calls count in the table, and once in the outer time: the sum of the table is
  // larger than the time spent in the backend.
  const before = outerMs();
  fake.twice();
  assert.equal(kernels.get('fill (fwd)')?.calls, 4);
  const twice = kernels.get('twice (fwd)')!.totalMs;
  assert.ok(twice >= 2);
  assert.ok(Math.abs(outerMs() - before - twice) < 1e-9, `${outerMs() - before} vs ${twice}`);
  restore();
  assert.equal(Object.prototype.hasOwnProperty.call(fake, 'fill'), false);
});
