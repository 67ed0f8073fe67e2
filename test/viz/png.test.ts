// PNG pictures: level <-> byte mapping, upscaling, the bitmap font, captioned grids that
// round-trip through pngjs, reading user images with clear errors, a PNG that declares
// 100000x100000 pixels refused before decoding, and a seeded mutation fuzz of the reader.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { PNG } from 'pngjs';
import { Rng } from '../../src/nn/rng';
import { EXTREME_U32, fuzzLoader, mutate } from '../fuzz';
import {
  CHAR_ADVANCE,
  FONT_CHARACTERS,
  GLYPH_HEIGHT,
  LEVEL_TO_BYTE,
  blankImage,
  captionedGrid,
  decodeLevelsPng,
  decodePng,
  drawText,
  encodePng,
  levelsToRgb,
  readLevelsPng,
  textWidth,
  upscaleNearest,
  wrapText,
  writeCaptionedGrid,
} from '../../src/viz/png';

/** A deterministic 28x28 level image with every level in every channel. */
function testLevels(): Uint8Array {
  const levels = new Uint8Array(28 * 28 * 3);
  for (let i = 0; i < levels.length; i++) levels[i] = (i * 7 + (i >> 5)) % 4;
  return levels;
}

function pngOf(width: number, height: number, rgba: (x: number, y: number) => number[]): Buffer {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) png.data.set(rgba(x, y), (y * width + x) * 4);
  }
  return PNG.sync.write(png);
}

test('levels map to 0, 85, 170, 255 and upscale by nearest neighbour', () => {
  assert.deepEqual(LEVEL_TO_BYTE, [0, 85, 170, 255]);
  const img = levelsToRgb(Uint8Array.from([0, 1, 2, 3, 3, 3]), 2, 1);
  assert.deepEqual([...img.data], [0, 85, 170, 255, 255, 255]);
  const big = upscaleNearest(img, 3);
  assert.equal(big.width, 6);
  assert.equal(big.height, 3);
  for (let y = 0; y < 3; y++) {
    assert.deepEqual([...big.data.subarray(y * 18, y * 18 + 3)], [0, 85, 170]);
    assert.deepEqual([...big.data.subarray(y * 18 + 15, y * 18 + 18)], [255, 255, 255]);
  }
  assert.throws(() => levelsToRgb(Uint8Array.from([4, 0, 0]), 1, 1), /level 4/);
});

test('the font covers a-z, 0-9, space, <, > and punctuation; text wraps', () => {
  for (const ch of 'abcdefghijklmnopqrstuvwxyz0123456789 <>.,:-_/()') {
    assert.ok(FONT_CHARACTERS.includes(ch), `missing glyph ${JSON.stringify(ch)}`);
  }
  const img = blankImage(40, 10, [255, 255, 255]);
  drawText(img, '<bos>', 0, 0, [0, 0, 0]);
  let ink = 0;
  for (let i = 0; i < img.data.length; i += 3) if (img.data[i] === 0) ink++;
  assert.ok(ink > 20, 'text drew pixels');
  assert.equal(textWidth('abc'), 3 * CHAR_ADVANCE - 1);
  assert.deepEqual(wrapText('dark green eight on bright cyan', 18), [
    'dark green eight',
    'on bright cyan',
  ]);
  assert.deepEqual(wrapText('abcdefgh', 3), ['abc', 'def', 'gh']);
});

test('a captioned grid encodes to a PNG that decodes to the same pixels', () => {
  const levels = testLevels();
  const items = [
    { image: levels, caption: 'dark green eight on bright cyan' },
    { image: new Uint8Array(28 * 28 * 3).fill(3), caption: 'plain white zero on plain black' },
    { image: new Uint8Array(28 * 28 * 3) },
  ];
  const grid = captionedGrid(items, { columns: 2, scale: 2, title: 'test grid' });
  assert.ok(grid.width > 2 * 56 && grid.height > 2 * 56 + GLYPH_HEIGHT);
  const decoded = PNG.sync.read(encodePng(grid));
  assert.equal(decoded.width, grid.width);
  for (let i = 0; i < grid.width * grid.height; i++) {
    for (let c = 0; c < 3; c++) {
      if (decoded.data[4 * i + c] !== grid.data[3 * i + c]) assert.fail(`pixel ${i} differs`);
    }
  }
  // The first image sits inside its 1-pixel frame, upscaled 2x.
  const pad = 6;
  const titleH = 11;
  const x0 = pad + 1;
  const y0 = pad + titleH + 1;
  const at = (x: number, y: number) =>
    grid.data.subarray((y * grid.width + x) * 3, (y * grid.width + x) * 3 + 3);
  assert.deepEqual(
    [...at(x0, y0)],
    [...levels.subarray(0, 3)].map((l) => l * 85),
  );
  assert.deepEqual(
    [...at(x0 + 3, y0 + 1)],
    [...levels.subarray(3, 6)].map((l) => l * 85),
  );
});

test('reading user images: 28x28 and exact upscales load; bad sizes and levels fail clearly', () => {
  const levels = testLevels();
  const byte = (x: number, y: number, c: number) => levels[(y * 28 + x) * 3 + c]! * 85;
  const exact = pngOf(28, 28, (x, y) => [byte(x, y, 0), byte(x, y, 1), byte(x, y, 2), 255]);
  assert.deepEqual(decodeLevelsPng(exact, 'exact.png'), levels);
  // Small deviations (e.g. from colour management) still quantise.
  const noisy = pngOf(28, 28, (x, y) => [
    Math.min(255, byte(x, y, 0) + 3),
    Math.max(0, byte(x, y, 1) - 4),
    byte(x, y, 2),
    255,
  ]);
  assert.deepEqual(decodeLevelsPng(noisy, 'noisy.png'), levels);
  const up = encodePng(upscaleNearest(levelsToRgb(levels), 4));
  assert.deepEqual(decodeLevelsPng(up, 'up.png'), levels);

  assert.throws(
    () =>
      decodeLevelsPng(
        pngOf(30, 28, () => [0, 0, 0, 255]),
        'wide.png',
      ),
    /image 'wide\.png' is 30x28 pixels; expected 28x28/,
  );
  assert.throws(
    () =>
      decodeLevelsPng(
        pngOf(28, 28, (x) => [x === 5 ? 128 : 0, 0, 0, 255]),
        'grey.png',
      ),
    /'grey\.png' has 28 channel values that do not quantise cleanly .*first: pixel \(5, 0\) channel r = 128/,
  );
  assert.throws(
    () =>
      decodeLevelsPng(
        pngOf(28, 28, () => [0, 0, 0, 100]),
        'alpha.png',
      ),
    /784 transparent pixels/,
  );
  assert.throws(
    () =>
      decodeLevelsPng(
        pngOf(56, 56, (x, y) => [(x + y) % 2 ? 255 : 0, 0, 0, 255]),
        'blocky.png',
      ),
    /not an exact 2x upscale/,
  );
  assert.throws(
    () => decodeLevelsPng(Buffer.from('not a png'), 'junk.png'),
    /'junk\.png' is not a readable PNG/,
  );
  assert.throws(
    () => readLevelsPng('/nonexistent/x.png'),
    /cannot read image '\/nonexistent\/x\.png'/,
  );
});

test('writeCaptionedGrid writes a PNG file', () => {
  const dir = path.join(__dirname, '..', '..', '..', 'data', `.test-png-${process.pid}`);
  try {
    const file = path.join(dir, 'grid.png');
    writeCaptionedGrid(file, [{ image: testLevels(), caption: 'light pink one on dark blue' }]);
    const png = PNG.sync.read(fs.readFileSync(file));
    assert.ok(png.width > 112 && png.height > 112);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A PNG chunk: length, type, data, CRC over type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** A well-formed PNG that declares width x height RGB pixels but holds one row's worth of data. */
function declaredPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1 + 3 * 28))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('a PNG that declares 100000x100000 pixels is refused before its pixels are decoded', () => {
  const huge = declaredPng(100_000, 100_000);
  const t0 = performance.now();
  assert.throws(
    () => decodePng(huge, 'huge.png'),
    /'huge.png' declares 100000x100000 pixels; at most 16777216 pixels are decoded/,
  );
  assert.throws(
    () => decodeLevelsPng(huge, 'huge.png'),
    /image 'huge.png' is 100000x100000 pixels; expected 28x28/,
  );
  // Wide and flat is refused too (2^32 - 1 by 28: pngjs would allocate 28 GB of rows).
  assert.throws(() => decodePng(declaredPng(0xffffffff, 28), 'wide.png'), /declares 4294967295x28/);
  assert.ok(performance.now() - t0 < 500, 'refused without decoding');
});

test('fuzz: 3000 mutants of a PNG decode or fail cleanly, fast, without huge allocations', () => {
  const good = encodePng(upscaleNearest(levelsToRgb(testLevels()), 2)); // 56x56
  assert.equal(decodeLevelsPng(good, 'good.png').length, 28 * 28 * 3);
  /** Offsets of each chunk's length field, and of IHDR's width and height. */
  const lengthFields: number[] = [];
  for (let at = 8; at + 8 <= good.length; at += 12 + good.readUInt32BE(at)) lengthFields.push(at);
  const started = performance.now();
  const outcome = fuzzLoader({
    seed: 13,
    cases: 3000,
    make: (rng: Rng, i: number) => {
      if (i % 4 !== 0) return mutate(good, rng);
      // A chunk length or IHDR's width/height set to an extreme (CRCs left as they were, or
      // recomputed for IHDR so the size reaches the size checks).
      const out = Buffer.from(good);
      const value = EXTREME_U32[rng.int(EXTREME_U32.length)]!;
      const target = rng.int(lengthFields.length + 2);
      if (target < lengthFields.length) out.writeUInt32BE(value, lengthFields[target]!);
      else {
        out.writeUInt32BE(value, target === lengthFields.length ? 16 : 20);
        out.writeUInt32BE(zlib.crc32(out.subarray(12, 29)), 29);
      }
      return out;
    },
    load: (input, name) => {
      const levels = decodeLevelsPng(input, name);
      assert.equal(levels.length, 28 * 28 * 3);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(
    outcome.refused > 1000 && outcome.loaded > 0,
    JSON.stringify({ ...outcome, messages: [...outcome.messages].slice(0, 5) }),
  );
  assert.ok(seconds < 20, `${seconds.toFixed(1)} s`);
});

test('a title longer than the grid wraps inside it: nothing is drawn in the right margin', () => {
  const items = Array.from({ length: 4 }, () => ({ image: new Uint8Array(28 * 28 * 3) }));
  const short = captionedGrid(items, { columns: 2, title: 'T 0.5' });
  const title =
    'TEXT -> IMAGE (SEED 0, T 0.5 (WORDS 1), GUIDANCE 1.5, RERANK 4, A SETTING OR TWO MORE)';
  const long = captionedGrid(items, { columns: 2, title });
  assert.equal(long.width, short.width);
  assert.ok(long.height > short.height, 'the wrapped title takes more lines');
  const pad = 6;
  for (let y = 0; y < long.height; y++) {
    for (let x = long.width - pad; x < long.width; x++) {
      const i = (y * long.width + x) * 3;
      const pixel = [long.data[i], long.data[i + 1], long.data[i + 2]];
      if (pixel.some((v) => v !== 255)) assert.fail(`ink in the right margin at (${x}, ${y})`);
    }
  }
});
