// Coloured MNIST v2: MNIST's label counts, captions that parse back, the legibility rule and the
// blend formula for every image, byte-identical exports for a seed, and a cache that detects
// corruption and staleness and rebuilds. Builds the full 70,000 images (seconds) and prints times.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { loadMnist } from '../../src/data/mnist';
import { PALETTE, isLegible, paletteJson } from '../../src/data/palette';
import { Vocab, parseCaption } from '../../src/data/vocab';
import {
  ColouredSplit,
  buildColouredMnist,
  captionOf,
  colourSplit,
  exportColouredMnist,
  labelCounts,
  loadColouredMnist,
} from '../../src/data/coloured';
import { loadSafetensors, requireTensor } from '../../src/nn/safetensors';
import { MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS, scratchDir } from './helpers';

// expectedLevel[(fgLevel * 4 + bgLevel) * 256 + grey]: the blend by intensity, rounded
// (floating point here, exact integers in the builder; (2k+1)/2 never occurs, so no ties).
const expectedLevel = new Uint8Array(16 * 256);
for (let f = 0; f < 4; f++) {
  for (let b = 0; b < 4; b++) {
    for (let v = 0; v < 256; v++) {
      expectedLevel[(f * 4 + b) * 256 + v] = Math.round((b * (255 - v) + f * v) / 255);
    }
  }
}

function checkSplit(split: ColouredSplit, greys: Uint8Array): void {
  for (let i = 0; i < split.count; i++) {
    const { digit, fg, bg } = parseCaption(captionOf(split, i));
    assert.equal(digit, split.digit[i]);
    assert.equal(fg, split.fg[i]);
    assert.equal(bg, split.bg[i]);
    assert.ok(isLegible(fg, bg), `item ${i}: ${captionOf(split, i)} breaks the legibility rule`);
    const f = PALETTE[fg]!.rgb;
    const b = PALETTE[bg]!.rgb;
    const bases = [0, 1, 2].map((c) => (f[c]! * 4 + b[c]!) * 256);
    for (let p = 0; p < 784; p++) {
      const v = greys[i * 784 + p]!;
      for (let c = 0; c < 3; c++) {
        const level = split.images[(i * 784 + p) * 3 + c]!;
        const expected = expectedLevel[bases[c]! + v]!;
        if (level !== expected) {
          assert.fail(`${split.split} item ${i} pixel ${p} channel ${c}: ${level} != ${expected}`);
        }
      }
    }
  }
}

test('the full dataset: label counts, captions, legibility, levels, blend', (t) => {
  const start = performance.now();
  const data = loadColouredMnist({ log: (m) => t.diagnostic(m) });
  const ms = performance.now() - start;
  t.diagnostic(`loadColouredMnist (${data.cache.status}): ${Math.round(ms)} ms`);
  assert.equal(data.train.count, 60000);
  assert.equal(data.test.count, 10000);
  assert.deepEqual(labelCounts(data.train), MNIST_TRAIN_COUNTS);
  assert.deepEqual(labelCounts(data.test), MNIST_TEST_COUNTS);
  assert.equal(data.train.images.length, 60000 * 28 * 28 * 3);
  for (const split of [data.train, data.test]) {
    let maxLevel = 0;
    for (let i = 0; i < split.images.length; i++) maxLevel = Math.max(maxLevel, split.images[i]!);
    assert.equal(maxLevel, 3);
  }
  const mnist = loadMnist();
  checkSplit(data.train, mnist.train.images);
  checkSplit(data.test, mnist.test.images);
  // Every palette colour appears as foreground and as background.
  const fgUsed = new Set(data.train.fg);
  const bgUsed = new Set(data.train.bg);
  assert.equal(fgUsed.size, PALETTE.length);
  assert.equal(bgUsed.size, PALETTE.length);
});

test('same seed gives byte-identical exports; another seed differs; build takes seconds', (t) => {
  const dir = scratchDir('export');
  try {
    const start = performance.now();
    const a = buildColouredMnist(0);
    const buildMs = performance.now() - start;
    t.diagnostic(
      `full build of 70,000 images: ${Math.round(buildMs)} ms (load + verify MNIST ` +
        `${Math.round(a.timingsMs.loadMnist)} ms, colour ${Math.round(a.timingsMs.colour)} ms)`,
    );
    assert.ok(buildMs < 30000, `build took ${buildMs} ms`);
    const b = buildColouredMnist(0);
    const vocab = new Vocab();
    const filesA = exportColouredMnist(a, path.join(dir, 'a'), vocab);
    const filesB = exportColouredMnist(b, path.join(dir, 'b'), vocab);
    assert.deepEqual(
      filesA.map((f) => path.basename(f)),
      ['train.safetensors', 'test.safetensors', 'vocab.json', 'palette.json'],
    );
    for (let i = 0; i < filesA.length; i++) {
      assert.ok(fs.readFileSync(filesA[i]!).equals(fs.readFileSync(filesB[i]!)), filesA[i]);
    }

    const other = colourSplit(loadMnist().test, 1);
    assert.notDeepEqual(other.fg, a.test.fg);

    // The exported files hold the images, captions, vocabulary and palette they describe.
    const test = loadSafetensors(filesA[1]!);
    const n = 10000;
    assert.deepEqual(requireTensor(test, 'images', 'U8', [n, 28, 28, 3]).data, a.test.images);
    assert.deepEqual(requireTensor(test, 'digit', 'I32', [n]).data, a.test.digit);
    assert.deepEqual(requireTensor(test, 'fg', 'I32', [n]).data, a.test.fg);
    assert.deepEqual(requireTensor(test, 'bg', 'I32', [n]).data, a.test.bg);
    const captions = requireTensor(test, 'caption_tokens', 'I32', [n, 6]).data;
    for (let i = 0; i < n; i += 97) {
      assert.deepEqual(vocab.decodeCaption(captions.subarray(i * 6, i * 6 + 6)), {
        digit: a.test.digit[i],
        fg: a.test.fg[i],
        bg: a.test.bg[i],
      });
    }
    assert.equal(test.metadata['seed'], '0');
    const vocabJson = JSON.parse(fs.readFileSync(filesA[2]!, 'utf8')) as { size: number };
    assert.equal(vocabJson.size, 1058);
    assert.deepEqual(JSON.parse(fs.readFileSync(filesA[3]!, 'utf8')), paletteJson());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the cache is reused when valid, and rebuilt when corrupt or stale', () => {
  const cacheDir = scratchDir('cache');
  const messages: string[] = [];
  const log = (m: string) => messages.push(m);
  try {
    const built = loadColouredMnist({ seed: 3, cacheDir, log });
    assert.equal(built.cache.status, 'built');
    assert.deepEqual(fs.readdirSync(cacheDir).sort(), [
      'manifest.json',
      'test.safetensors',
      'train.safetensors',
    ]);
    const reused = loadColouredMnist({ seed: 3, cacheDir, log });
    assert.equal(reused.cache.status, 'reused');
    assert.deepEqual(reused.test.images, built.test.images);
    assert.deepEqual(reused.train.fg, built.train.fg);

    // Corrupt one pixel of the test file: detected by its hash, rebuilt, data restored.
    const testFile = path.join(cacheDir, 'test.safetensors');
    const bytes = fs.readFileSync(testFile);
    bytes[bytes.length - 5] ^= 1;
    fs.writeFileSync(testFile, bytes);
    messages.length = 0;
    const repaired = loadColouredMnist({ seed: 3, cacheDir, log });
    assert.equal(repaired.cache.status, 'rebuilt');
    assert.match(repaired.cache.reason!, /test\.safetensors is corrupt: SHA-256/);
    assert.match(messages.join('\n'), /stale or corrupt \(test\.safetensors is corrupt/);
    assert.deepEqual(repaired.test.images, built.test.images);
    assert.equal(loadColouredMnist({ seed: 3, cacheDir, log }).cache.status, 'reused');

    // A manifest from another build (here: another seed) is stale.
    const manifestFile = path.join(cacheDir, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { seed: number };
    manifest.seed = 4;
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    const restaled = loadColouredMnist({ seed: 3, cacheDir, log });
    assert.equal(restaled.cache.status, 'rebuilt');
    assert.match(restaled.cache.reason!, /manifest seed is 4, expected 3/);
    assert.deepEqual(restaled.train.fg, built.train.fg);
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
});
