// The palette: the 26 colours of the original with their exact levels, unique names and
// triples, every shade/colour word used, and the legibility rule.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COLOURS,
  PALETTE,
  SHADES,
  colourByName,
  isLegible,
  isLegibleRgb,
  legiblePairs,
  paletteHash,
  paletteIndex,
  paletteJson,
} from '../../src/data/palette';

const ORIGINAL_PALETTE = `plain white 333, plain black 000, normal red 300, dark red 201,
  plain green 030, light green 131, dark green 121, plain turquoise 022,
  light turquoise 132, bright yellow 330, plain yellow 331, dark yellow 120,
  plain orange 310, light orange 321, plain brown 210, light blue 233,
  dark blue 002, bright cyan 033, light cyan 133, light pink 323,
  plain purple 202, light purple 213, dark purple 112, plain magenta 312,
  dark magenta 102, dark gray 111`;

test('the 26 colours of the original write-up have their exact levels', () => {
  const entries = ORIGINAL_PALETTE.split(',').map((s) => s.trim().split(/\s+/));
  assert.equal(entries.length, 26);
  for (const [shade, colour, levels] of entries) {
    const c = colourByName(`${shade} ${colour}`);
    assert.ok(c, `${shade} ${colour} missing`);
    assert.equal(c.rgb.join(''), levels, `${shade} ${colour}`);
    assert.ok(c.fromOriginal);
  }
  assert.equal(PALETTE.filter((c) => c.fromOriginal).length, 26);
});

test('names and triples are unique; levels in 0..3; every word is used', () => {
  assert.equal(new Set(PALETTE.map((c) => c.name)).size, PALETTE.length);
  assert.equal(new Set(PALETTE.map((c) => c.rgb.join(''))).size, PALETTE.length);
  PALETTE.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(paletteIndex(c.shade, c.colour), i);
    for (const l of c.rgb) assert.ok(Number.isInteger(l) && l >= 0 && l <= 3);
  });
  for (const s of SHADES)
    assert.ok(
      PALETTE.some((c) => c.shade === s),
      s,
    );
  for (const w of COLOURS)
    assert.ok(
      PALETTE.some((c) => c.colour === w),
      w,
    );
  assert.equal(paletteIndex('bright', 'black'), -1);
  assert.deepEqual(Object.keys(paletteJson()).length, PALETTE.length);
  assert.match(paletteHash(), /^[0-9a-f]{64}$/);
});

test('legibility rule: some channel differs by >= 2 levels; fg != bg; every colour has partners', () => {
  assert.equal(isLegibleRgb([0, 0, 0], [1, 1, 1]), false); // black on dark gray
  assert.equal(isLegibleRgb([3, 0, 0], [3, 1, 0]), false); // normal red on plain orange
  assert.equal(isLegibleRgb([0, 0, 0], [0, 0, 2]), true);
  assert.equal(isLegibleRgb([3, 3, 3], [0, 0, 0]), true);
  for (let i = 0; i < PALETTE.length; i++) assert.equal(isLegible(i, i), false);
  const pairs = legiblePairs();
  const perFg = new Array<number>(PALETTE.length).fill(0);
  for (let p = 0; p < pairs.length; p += 2) {
    const fg = pairs[p]!;
    const bg = pairs[p + 1]!;
    assert.notEqual(fg, bg);
    assert.ok(isLegible(fg, bg) && isLegible(bg, fg), 'symmetric');
    perFg[fg]!++;
  }
  for (const [i, n] of perFg.entries()) assert.ok(n >= 10, `${PALETTE[i]!.name}: ${n} partners`);
});
