// The plain-TypeScript SHA-256 (src/data/sha256.ts) gives Node's crypto digest: at the lengths
// where the padding changes (55, 56, 63, 64, 65 bytes), on random bytes and on UTF-8 text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import { sha256Hex } from '../../src/data/sha256';
import { Rng } from '../../src/nn/rng';

const nodeSha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

test('sha256Hex equals crypto for every length around the padding boundary', () => {
  const rng = new Rng(7);
  for (const length of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099]) {
    const bytes = Uint8Array.from({ length }, () => rng.int(256));
    assert.equal(sha256Hex(bytes), nodeSha256(bytes), `length ${length}`);
  }
});

test('sha256Hex hashes a string as its UTF-8 bytes', () => {
  for (const text of ['', 'abc', 'dark green eight on bright cyan', 'grün – 八', '{"a":[1,2]}'])
    assert.equal(sha256Hex(text), nodeSha256(text), text);
  // FIPS 180-4's example.
  assert.equal(
    sha256Hex('abc'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
});
