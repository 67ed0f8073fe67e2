// The decoder-aware code search (src/vqvae/search.ts): its candidates against brute-force
// distances, its codes against a direct one-image-at-a-time coordinate descent written here, its
// loss never above the nearest codes', and the config field that turns it on (validation,
// checkpoints, fingerprints, encode). Tiny configs on the reference backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { noGrad, tidy } from '../../src/engine/tensor';
import * as F from '../../src/engine/ops';
import { Rng } from '../../src/nn/rng';
import { CODES_PER_IMAGE, VqVae, foregroundWeights, vqVaeConfig } from '../../src/vqvae/model';
import {
  cellsNearErrors,
  codeLosses,
  nearestCandidates,
  readerCrossEntropy,
  searchCodes,
} from '../../src/vqvae/search';
import type { CodeSearch } from '../../src/vqvae/search';
import { loadVqVae, saveVqVae, trainVqVae, vqVaeFingerprint } from '../../src/vqvae/train';
import { AttributeClassifier, imagesToInput } from '../../src/vqvae/reader';
import type { ClassifierConfig } from '../../src/vqvae/reader';
import { PALETTE } from '../../src/data/palette';
import { IMAGE_VALUES, barImages } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const PIXELS = 28 * 28;

function tinyModel(seed = 3, overrides = {}): VqVae {
  const model = new VqVae(
    vqVaeConfig('tiny', { foregroundWeight: 3, ...overrides }),
    new Rng(seed),
  );
  model.eval();
  return model;
}

/** A reader small enough for the reference backend. */
const TINY_READER: ClassifierConfig = {
  shapeChannels0: 0,
  shapeChannels1: 4,
  shapeChannels2: 8,
  shapeHidden: 16,
  colourChannels: 4,
  colourHidden: 8,
  colours: PALETTE.length,
};

/** A tiny tokenizer whose search has a reader (random weights from `readerSeed`). */
function withReader(
  model: VqVae,
  search: Omit<CodeSearch, 'reader'>,
  weight: number,
  readerSeed = 11,
): VqVae {
  const reader = new AttributeClassifier(TINY_READER, new Rng(readerSeed));
  const searching = model.withCodeSearch(
    { ...search, reader: { weight, classifier: TINY_READER } },
    reader,
  );
  reader.dispose();
  return searching;
}

/** log-softmax cross-entropy of one row of logits against `label`, in float64. */
function crossEntropy64(logits: Float32Array, label: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let z = 0;
  for (const v of logits) z += Math.exp(v - max);
  return max + Math.log(z) - logits[label]!;
}

/** The weighted cross-entropy of one image's codes, from its decoded logits, in float64. */
function directLoss(model: VqVae, codes: Int32Array, image: Uint8Array): number {
  const logits = tidy(() => noGrad(() => model.decodeCodes(codes, 1).toFloat32Array())); // [1, 12, 28, 28]
  const { weights } = foregroundWeights(image, 1, model.config.foregroundWeight);
  let loss = 0;
  for (let p = 0; p < PIXELS; p++)
    for (let c = 0; c < 3; c++) {
      const at = (l: number) => logits[(c * 4 + l) * PIXELS + p]!;
      let max = -Infinity;
      for (let l = 0; l < 4; l++) max = Math.max(max, at(l));
      let z = 0;
      for (let l = 0; l < 4; l++) z += Math.exp(at(l) - max);
      loss += weights[p * 3 + c]! * (max + Math.log(z) - at(image[p * 3 + c]!));
    }
  return loss;
}

/** Encoder outputs of images as host rows [n*49, D]. */
function encoderRows(model: VqVae, images: Uint8Array, n: number): Float32Array {
  return tidy(() => noGrad(() => model.encoderRows(images, 0, n).toFloat32Array()));
}

/** The m nearest codes of each row by float64 distances, nearest first (ties: lower index). */
function bruteForceCandidates(model: VqVae, z: Float32Array, m: number): Int32Array {
  const book = model.codebook.toFloat32Array();
  const { codebookSize: k, codeDim: d } = model.config;
  const rows = z.length / d;
  const out = new Int32Array(rows * m);
  for (let r = 0; r < rows; r++) {
    const distance = (c: number) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += (z[r * d + j]! - book[c * d + j]!) ** 2;
      return s;
    };
    const order = Array.from({ length: k }, (_, c) => [c, distance(c)] as const).sort(
      (a, b) => a[1] - b[1] || a[0] - b[0],
    );
    out.set(
      order.slice(0, m).map(([c]) => c),
      r * m,
    );
  }
  return out;
}

test('nearestCandidates: the m nearest codes by distance, nearest first', () => {
  const model = tinyModel();
  const n = 3;
  const images = barImages(n, new Rng(1));
  const z = encoderRows(model, images, n);
  const rows = n * CODES_PER_IMAGE;
  const got = tidy(() =>
    nearestCandidates(F.tensor(z, [rows, model.config.codeDim]), model.codebook, 5),
  );
  assert.deepEqual(Array.from(got), Array.from(bruteForceCandidates(model, z, 5)));
  const nearest = model.withCodeSearch(undefined);
  const codes = nearest.encode(images, n);
  for (let r = 0; r < rows; r++) assert.equal(got[r * 5], codes[r], `row ${r}`);
  nearest.dispose();
  model.dispose();
});

for (const [objective, readerWeight] of [
  ['likelihood', 0],
  ['pixels', 0],
  ['likelihood', 50],
  ['pixels', 5],
] as const)
  test(`searchCodes (${objective}${readerWeight > 0 ? `, reader weight ${readerWeight}` : ''}) equals a coordinate descent written out, one image and one trial at a time`, () => {
    const plain = tinyModel();
    const model =
      readerWeight > 0 ? withReader(plain, { candidates: 2, sweeps: 1 }, readerWeight) : plain;
    const n = 5;
    const m = 3;
    const sweeps = 2;
    const images = barImages(n, new Rng(2));
    const z = encoderRows(model, images, n);
    const candidates = bruteForceCandidates(model, z, m);
    const nearest = plain.encode(images, n);
    const expected = nearest.slice();
    let changed = 0;
    // One image's loss by the search's own loss function (tested against directLoss below), so
    // that this checks the search's bookkeeping without float32-vs-float64 near-ties.
    const lossOf = (codes: Int32Array, image: Uint8Array) =>
      codeLosses(
        model,
        codes,
        1,
        image,
        foregroundWeights(image, 1, model.config.foregroundWeight).weights,
        new Int32Array(1),
        objective,
        model.reader === null
          ? undefined
          : { reader: model.reader, labels: model.reader.classify(image, 1), weight: readerWeight },
      )[0]!;
    for (let b = 0; b < n; b++) {
      const image = images.subarray(b * IMAGE_VALUES, (b + 1) * IMAGE_VALUES);
      const codes = expected.subarray(b * CODES_PER_IMAGE, (b + 1) * CODES_PER_IMAGE);
      let current = lossOf(codes, image);
      for (let sweep = 0; sweep < sweeps; sweep++)
        for (let cell = 0; cell < CODES_PER_IMAGE; cell++) {
          const now = codes[cell]!;
          let bestCode = now;
          for (let j = 0; j < m; j++) {
            const code = candidates[(b * CODES_PER_IMAGE + cell) * m + j]!;
            if (code === now) continue;
            const trial = codes.slice();
            trial[cell] = code;
            const loss = lossOf(trial, image);
            if (loss < current) {
              current = loss;
              bestCode = code;
            }
          }
          if (bestCode !== now) changed++;
          codes[cell] = bestCode;
        }
    }
    assert.ok(changed > 0, 'the search changes some code, so the comparison has power');
    // Small batches, so that an image's trials span several decoder batches.
    const search: CodeSearch = {
      candidates: m,
      sweeps,
      objective,
      ...(readerWeight > 0 ? { reader: { weight: readerWeight, classifier: TINY_READER } } : {}),
    };
    for (const batchRows of [256, 4]) {
      const got = searchCodes(model, images, 0, n, search, batchRows);
      assert.deepEqual(Array.from(got), Array.from(expected), `batchRows ${batchRows}`);
    }
    if (readerWeight > 0) {
      // The reader term changes what is chosen: without it some code differs.
      const { reader: _r, ...unread } = search;
      void _r;
      assert.notDeepEqual(
        Array.from(searchCodes(plain, images, 0, n, unread)),
        Array.from(expected),
        'the reader changes some choice',
      );
      model.dispose();
    }
    plain.dispose();
  });

test("the reader term: weight x the reader's cross-entropy of the decoded image against its reading of the real one", () => {
  const model = withReader(tinyModel(4), { candidates: 2, sweeps: 1 }, 1);
  const reader = model.reader!;
  const n = 3;
  const images = barImages(n, new Rng(8));
  const codes = model.withCodeSearch(undefined).encode(images, n);
  const labels = reader.classify(images, n);
  const decoded = model.decode(codes, n); // argmax levels, as the search reads them
  const heads = tidy(() =>
    noGrad(() => {
      const h = reader.forward(imagesToInput(decoded, 0, n));
      return {
        digit: h.digit.toFloat32Array(),
        fg: h.fg.toFloat32Array(),
        bg: h.bg.toFloat32Array(),
      };
    }),
  );
  const imageOf = Int32Array.from([0, 1, 2]);
  const got = readerCrossEntropy({ reader, labels, weight: 1 }, decoded, n, imageOf);
  const { weights } = foregroundWeights(images, n, model.config.foregroundWeight);
  for (const weight of [0.5, 7]) {
    const losses = codeLosses(model, codes, n, images, weights, imageOf, 'likelihood', {
      reader,
      labels,
      weight,
    });
    for (let b = 0; b < n; b++) {
      let direct = 0;
      for (const name of ['digit', 'fg', 'bg'] as const) {
        const k = heads[name].length / n;
        direct += crossEntropy64(heads[name].subarray(b * k, (b + 1) * k), labels[name][b]!);
      }
      assert.ok(
        Math.abs(got[b]! - direct) < 1e-4 * Math.max(1, direct),
        `image ${b}: ${got[b]} vs ${direct}`,
      );
      const image = images.subarray(b * IMAGE_VALUES, (b + 1) * IMAGE_VALUES);
      const expected =
        directLoss(model, codes.subarray(b * CODES_PER_IMAGE), image) + weight * direct;
      assert.ok(
        Math.abs(losses[b]! - expected) < 1e-3 * Math.max(1, expected),
        `image ${b}, weight ${weight}: ${losses[b]} vs ${expected}`,
      );
    }
  }
  model.dispose();
});

test('the searched codes never decode worse than the nearest codes, and encode uses them', () => {
  const model = tinyModel(5);
  const n = 6;
  const images = barImages(n, new Rng(4));
  const nearest = model.encode(images, n);
  const searching = model.withCodeSearch({ candidates: 4, sweeps: 1 });
  const searched = searching.encode(images, n, 4); // batches of 4 and 2 images
  assert.deepEqual(
    Array.from(searched),
    Array.from(searchCodes(model, images, 0, n, { candidates: 4, sweeps: 1 })),
  );
  const imageOf = Int32Array.from({ length: n }, (_, b) => b);
  const { weights } = foregroundWeights(images, n, model.config.foregroundWeight);
  const before = codeLosses(model, nearest, n, images, weights, imageOf);
  const after = codeLosses(model, searched, n, images, weights, imageOf);
  let lower = 0;
  for (let b = 0; b < n; b++) {
    assert.ok(after[b]! <= before[b]!, `image ${b}: ${after[b]} > ${before[b]}`);
    if (after[b]! < before[b]!) lower++;
    // codeLosses agrees with the direct float64 loss.
    const direct = directLoss(
      model,
      searched.subarray(b * CODES_PER_IMAGE, (b + 1) * CODES_PER_IMAGE),
      images.subarray(b * IMAGE_VALUES, (b + 1) * IMAGE_VALUES),
    );
    assert.ok(Math.abs(direct - after[b]!) <= 1e-4 * Math.abs(direct), `${direct} vs ${after[b]}`);
    // The 'pixels' objective: the weighted count of wrong values, plus 1e-4 of the likelihood.
    const decoded = model.decode(searched.subarray(b * CODES_PER_IMAGE), 1);
    let wrong = 0;
    for (let i = 0; i < IMAGE_VALUES; i++)
      if (decoded[i] !== images[b * IMAGE_VALUES + i]) wrong += weights[b * IMAGE_VALUES + i]!;
    const pixels = codeLosses(
      model,
      searched.subarray(b * CODES_PER_IMAGE),
      1,
      images,
      weights,
      Int32Array.of(b),
      'pixels',
    )[0]!;
    assert.ok(
      Math.abs(pixels - (wrong + 1e-4 * direct)) <= 1e-3,
      `${pixels} vs ${wrong} + ${direct}/1e4`,
    );
  }
  assert.ok(lower > 0, 'some image is decoded closer');
  // Decoding is the same function of the codes with or without the search.
  assert.deepEqual(searching.decode(searched, n), model.decode(searched, n));
  searching.dispose();
  model.dispose();
});

test('codeSearch: validated, saved, loaded, and part of the fingerprint', () => {
  for (const [bad, pattern] of [
    [{ candidates: 1, sweeps: 1 }, /candidates must be an integer in 2\.\.32/],
    [{ candidates: 33, sweeps: 1 }, /candidates must be an integer in 2\.\.32/],
    [{ candidates: 2.5, sweeps: 1 }, /candidates/],
    [{ candidates: 2, sweeps: 0 }, /sweeps must be a positive integer/],
    [{ candidates: 2, sweeps: 1, reach: -1 }, /reach must be a non-negative integer/],
    [{ candidates: 2, sweeps: 1, objective: 'pixel' }, /objective must be 'likelihood', 'pixels'/],
    [null, /codeSearch must be \{ candidates, sweeps \}/],
    [
      { candidates: 2, sweeps: 1, reader: { weight: 0, classifier: TINY_READER } },
      /reader.weight must be a positive number/,
    ],
    [
      { candidates: 2, sweeps: 1, reader: { weight: 1 } },
      /reader.classifier must be a classifier config/,
    ],
    [
      {
        candidates: 2,
        sweeps: 1,
        reader: { weight: 1, classifier: { ...TINY_READER, shapeHidden: 0 } },
      },
      /shapeHidden must be a positive integer/,
    ],
  ] as const)
    assert.throws(() => vqVaeConfig('tiny', { codeSearch: bad as never }), pattern);
  const model = tinyModel();
  const searching = model.withCodeSearch({ candidates: 3, sweeps: 2 });
  assert.notEqual(vqVaeFingerprint(searching), vqVaeFingerprint(model));
  assert.equal(vqVaeFingerprint(searching.withCodeSearch(undefined)), vqVaeFingerprint(model));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-search-'));
  try {
    saveVqVae(model, path.join(dir, 'plain.safetensors'));
    saveVqVae(searching, path.join(dir, 'searching.safetensors'));
    const plain = loadVqVae(path.join(dir, 'plain.safetensors'));
    const loaded = loadVqVae(path.join(dir, 'searching.safetensors'));
    assert.equal(plain.config.codeSearch, undefined);
    assert.deepEqual(loaded.config.codeSearch, { candidates: 3, sweeps: 2 });
    assert.equal(vqVaeFingerprint(loaded), vqVaeFingerprint(searching));
    const images = barImages(2, new Rng(9));
    assert.deepEqual(loaded.encode(images, 2), searching.encode(images, 2));
    plain.dispose();
    loaded.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  searching.dispose();
  model.dispose();
});

test('a reader is part of the tokenizer: saved, loaded, fingerprinted, never trained', () => {
  const model = tinyModel(6);
  const search = { candidates: 2, sweeps: 1 };
  const reading = withReader(model, search, 20, 11);
  const otherReader = withReader(model, search, 20, 12);
  const fingerprints = new Set(
    [model, model.withCodeSearch(search), reading, otherReader].map((m) => vqVaeFingerprint(m)),
  );
  assert.equal(fingerprints.size, 4, 'the reader and its weights change the fingerprint');
  // A copy with the same search keeps its own reader; a search without one drops it.
  const again = reading.withCodeSearch(reading.config.codeSearch);
  assert.equal(vqVaeFingerprint(again), vqVaeFingerprint(reading));
  assert.equal(reading.withCodeSearch(search).reader, null);
  const images = barImages(4, new Rng(13));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-reader-'));
  try {
    saveVqVae(reading, path.join(dir, 'reading.safetensors'));
    const loaded = loadVqVae(path.join(dir, 'reading.safetensors'));
    assert.deepEqual(loaded.config.codeSearch, reading.config.codeSearch);
    assert.equal(vqVaeFingerprint(loaded), vqVaeFingerprint(reading));
    assert.deepEqual(loaded.encode(images, 4), reading.encode(images, 4));
    loaded.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const withReaderSearch = { ...search, reader: { weight: 1, classifier: TINY_READER } };
  assert.throws(() => model.withCodeSearch(withReaderSearch), /the search has a reader; pass one/);
  const wide = new AttributeClassifier({ ...TINY_READER, shapeHidden: 32 }, new Rng(1));
  assert.throws(
    () => model.withCodeSearch(withReaderSearch, wide),
    /the reader's config .* is not the search's/,
  );
  assert.throws(
    () => searchCodes(model, images, 0, 2, withReaderSearch),
    /the code search has a reader, and the tokenizer carries none/,
  );
  assert.throws(
    () =>
      trainVqVae({
        train: { images, count: 4 },
        model: reading,
        steps: 1,
        batchSize: 4,
        log: () => {},
      }),
    /carries a code-search reader/,
  );
  for (const m of [wide, again, reading, otherReader, model]) m.dispose();
});

test('reach: only cells near a wrongly decoded pixel are tried', () => {
  // Trained a little, so that the plain background decodes right and the bar's edges do not.
  const n = 4;
  const images = barImages(n, new Rng(6));
  const { model } = trainVqVae({
    train: { images, count: n },
    config: vqVaeConfig('tiny', { foregroundWeight: 3 }),
    seed: 7,
    batchSize: n,
    steps: 30,
    lr: 1e-2,
    log: () => {},
  });
  model.eval();
  const nearest = model.encode(images, n);
  const decoded = model.decode(nearest, n);
  // The wrong cells, written out: a cell is wrong if any of its 4 x 4 pixels has a wrong level.
  const wrong = (b: number, y: number, x: number) => {
    for (let py = 4 * y; py < 4 * y + 4; py++)
      for (let px = 4 * x; px < 4 * x + 4; px++)
        for (let c = 0; c < 3; c++) {
          const i = b * IMAGE_VALUES + (py * 28 + px) * 3 + c;
          if (decoded[i] !== images[i]) return true;
        }
    return false;
  };
  let tried = 0;
  let skipped = 0;
  for (const reach of [0, 1]) {
    const near = cellsNearErrors(model, nearest, n, images, reach, 3);
    for (let b = 0; b < n; b++)
      for (let y = 0; y < 7; y++)
        for (let x = 0; x < 7; x++) {
          let expected = false;
          for (let yy = Math.max(0, y - reach); yy <= Math.min(6, y + reach); yy++)
            for (let xx = Math.max(0, x - reach); xx <= Math.min(6, x + reach); xx++)
              expected ||= wrong(b, yy, xx);
          assert.equal(
            near[b * 49 + y * 7 + x],
            expected ? 1 : 0,
            `reach ${reach} (${b}, ${y}, ${x})`,
          );
          if (reach === 0) {
            if (expected) tried++;
            else skipped++;
          }
        }
  }
  assert.ok(tried > 0 && skipped > 0, `some cells are tried (${tried}) and some not (${skipped})`);
  // One sweep leaves the untried cells as they were; a reach over the whole grid is no reach.
  const near = cellsNearErrors(model, nearest, n, images, 0, 256);
  const searched = searchCodes(model, images, 0, n, { candidates: 3, sweeps: 1, reach: 0 });
  for (let i = 0; i < n * 49; i++)
    if (near[i] === 0) assert.equal(searched[i], nearest[i], `untried cell ${i} changed`);
  assert.deepEqual(
    Array.from(searchCodes(model, images, 0, n, { candidates: 3, sweeps: 1, reach: 6 })),
    Array.from(searchCodes(model, images, 0, n, { candidates: 3, sweeps: 1 })),
  );
  model.dispose();
});
