// The addon's host sampler (native/src/sampling.cc, src/sampling/choose.ts) against the TypeScript
// sampler it stands in for: its exp is Math.exp bit for bit, each row's token is sampleToken's
// (after guidedLogits with guidance), and whole generations in every mode are the same tokens
// with it and without it. Skipped where the addon is not built.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostSampler, setBackend, setHostSampler } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { tinyModel, vocab } from './helpers';
import { SEQUENCE_LENGTH, IMAGE_TOKENS } from '../../src/data/sequences';
import { guidedLogits, sampleToken, generate } from '../../src/sampling/sampler';
import { chooseRows } from '../../src/sampling/choose';
import { imageToText, textToImage, unconditional } from '../../src/sampling/modes';
import type { ModeOptions } from '../../src/sampling/modes';

setBackend('js');
const native = hostSampler();
const skip = native === null ? 'the native addon is not built' : false;

test('the addon exp is Math.exp bit for bit, scalar and vector', { skip }, () => {
  const rng = new Rng(3);
  const special = [
    0,
    -0,
    1,
    -1,
    1e-9,
    -1e-9,
    2 ** -28,
    -(2 ** -28),
    2 ** -29,
    -745.2,
    -745.1,
    -708.4,
    -709.1,
    -740,
    709.5,
    709.78,
    710,
    Infinity,
    -Infinity,
    NaN,
    0.5 * Math.LN2,
    -0.5 * Math.LN2,
    1.5 * Math.LN2,
    -1.5 * Math.LN2,
    0.34657359027997264,
    -0.34657359027997264,
    1.0397207708399179,
    -1.0397207708399179,
  ];
  const n = 200_000;
  const x = new Float64Array(n + special.length);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    // the sampler's range (differences to a max, over a temperature), and all others
    x[i] = i % 3 === 0 ? -u * 760 : i % 3 === 1 ? (u - 0.5) * 8 : (u - 0.5) * 1500;
  }
  x.set(special, n);
  for (const scalar of [false, true]) {
    const out = new Float64Array(x.length);
    native!.jsExpInto(x, out, scalar);
    for (let i = 0; i < x.length; i++)
      if (!Object.is(out[i], Math.exp(x[i]!)))
        assert.fail(
          `exp(${x[i]}) (${scalar ? 'scalar' : 'vector'}): addon ${out[i]}, Math.exp ${Math.exp(x[i]!)}`,
        );
  }
});

test(
  'each row of a step: the token sampleToken chooses, with and without guidance',
  { skip },
  () => {
    const V = 97;
    const rows = 64;
    const rng = new Rng(11);
    const masks = [new Uint8Array(V).fill(1), new Uint8Array(V), new Uint8Array(V)];
    for (let i = 0; i < V; i++) masks[1]![i] = i % 3 === 0 ? 1 : 0;
    masks[2]![V - 1] = 1; // one allowed token
    for (const guidance of [1, 1.5, 3]) {
      const logits = Float32Array.from({ length: rows * V }, () => (rng.uniform() - 0.5) * 20);
      const uncond = Float32Array.from({ length: rows * V }, () => (rng.uniform() - 0.5) * 20);
      logits[5 * V + 7] = -Infinity; // an impossible token
      const rowMasks = Array.from({ length: rows }, (_, r) => (r === 9 ? null : masks[r % 3]!));
      const temperature = Float64Array.from({ length: rows }, (_, r) => [0, 0.3, 1, 2.5][r % 4]!);
      const uniform = Float64Array.from({ length: rows }, () => rng.uniform());
      const guided = guidance === 1 ? null : uncond;
      const out = chooseRows(native!, {
        logits,
        uncond: guided,
        guidance,
        V,
        masks: rowMasks,
        temperature,
        uniform,
      });
      for (let r = 0; r < rows; r++) {
        if (r === 9) {
          assert.equal(out[r], -2);
          continue;
        }
        let row = logits.subarray(r * V, (r + 1) * V);
        if (guided) row = guidedLogits(row, uncond.subarray(r * V, (r + 1) * V), guidance);
        // sampleToken draws one number at a temperature above 0: the row's uniform.
        const fixed = { uniform: () => uniform[r]! } as unknown as Rng;
        const want = sampleToken(row, rowMasks[r]!, { temperature: temperature[r]! }, fixed);
        assert.equal(out[r], want, `row ${r}, guidance ${guidance}`);
      }
    }
  },
);

test(
  'rows the addon leaves to TypeScript: a NaN logit, nothing allowed, all -Infinity',
  { skip },
  () => {
    const V = 8;
    const logits = new Float32Array(3 * V);
    logits[2] = NaN;
    for (let i = 0; i < V; i++) logits[2 * V + i] = -Infinity;
    const allowAll = new Uint8Array(V).fill(1);
    const out = chooseRows(native!, {
      logits,
      uncond: null,
      guidance: 1,
      V,
      masks: [allowAll, new Uint8Array(V), allowAll],
      temperature: Float64Array.of(1, 1, 1),
      uniform: Float64Array.of(0.5, 0.5, 0.5),
    });
    assert.deepEqual(Array.from(out), [-1, -1, -1]);
    // and generation still throws the TypeScript sampler's errors there
    assert.throws(() => sampleToken(logits.subarray(0, V), null, {}, new Rng(0)), /NaN/);
  },
);

test(
  'generation in every mode: the same tokens with the addon choosing and without',
  { skip },
  () => {
    const model = tinyModel(5);
    const rng = new Rng(8);
    const images = Array.from({ length: 5 }, () =>
      Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(vocab.imageCodes)),
    );
    const captions = ['dark green eight on bright cyan', 'plain white zero on plain black'];
    const settings: ModeOptions[] = [
      { seed: 1 },
      { seed: 2, temperature: 0.5, guidance: 1.5, rerank: 3, batchSize: 4 },
      { seed: 3, temperature: 0, grammar: 'legible' },
      { seed: 4, topK: 5 }, // top-k: TypeScript only
    ];
    const runAll = () =>
      settings
        .flatMap((o) => [
          ...textToImage(model, vocab, captions, o),
          ...imageToText(model, vocab, images, o),
          ...unconditional(model, vocab, 3, { ...o, guidance: 1 }),
          ...unconditional(model, vocab, 3, { ...o, captionFirst: true, guidance: 1.5 }),
        ])
        .map((s) => Array.from(s.tokens).join(','));
    const withAddon = runAll();
    setHostSampler(null);
    try {
      assert.deepEqual(withAddon, runAll());
    } finally {
      setHostSampler(undefined);
    }
    // the comparison compares something: the samples differ from one another
    assert.ok(new Set(withAddon).size > withAddon.length / 2);
    const prompt = [Int32Array.of(vocab.bos)];
    assert.equal(generate(model, vocab, prompt, { seed: 9 })[0]!.length, SEQUENCE_LENGTH);
  },
);
