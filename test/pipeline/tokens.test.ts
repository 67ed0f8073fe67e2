// The token cache (src/pipeline/tokens.ts): a searching encode killed part-way continues from
// its partial file with the same codes, and a partial file of another batch size is not used.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { tokenise } from '../../src/pipeline/tokens';
import { vqVaeFingerprint } from '../../src/vqvae/train';
import { VQVAE_PRESETS, VqVae } from '../../src/vqvae/model';
import { Rng } from '../../src/nn/rng';
import { projectRoot } from '../../src/paths';
import { split } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

test('tokenise with a code search continues a killed run from its partial file, with the same codes', () => {
  const model = new VqVae(
    { ...VQVAE_PRESETS.tiny, codeSearch: { candidates: 2, sweeps: 1 } },
    new Rng(11),
  );
  model.eval();
  const data = split('test', 12, 5);
  const tokens = path.join(projectRoot(), 'data', 'tokens');
  const fingerprint = vqVaeFingerprint(model);
  const clean = () => {
    if (!fs.existsSync(tokens)) return;
    for (const f of fs.readdirSync(tokens))
      if (f.startsWith(fingerprint)) fs.rmSync(path.join(tokens, f), { force: true });
  };
  /** Tokenises the split in batches of 4, killed at its first progress line; logs into `lines`. */
  const killedAtFirstProgress = (lines: string[]): void =>
    assert.throws(
      () =>
        tokenise(
          model,
          data,
          0,
          (l) => {
            lines.push(l);
            if (/images encoded with the code search/.test(l)) throw new Error('killed');
          },
          'test',
          4,
        ),
      /killed/,
    );
  clean();
  try {
    // Killed at its first progress line, which comes after the partial file is written.
    const first: string[] = [];
    killedAtFirstProgress(first);
    assert.match(first.join('\n'), /test 4\/12 images encoded/);
    const second: string[] = [];
    const codes = tokenise(model, data, 0, (l) => second.push(l), 'test', 4);
    assert.match(second.join('\n'), /continuing from 4\/12 images encoded before/);
    assert.match(second.join('\n'), /tokens: encoded 8 test images/);
    assert.deepEqual(codes, model.encode(data.images, 12, 4));
    assert.ok(
      !fs.readdirSync(tokens).some((f) => f.startsWith(fingerprint) && f.endsWith('.partial')),
    );
    // A partial file from another batch size is not continued.
    clean();
    killedAtFirstProgress([]);
    const other: string[] = [];
    assert.deepEqual(
      tokenise(model, data, 0, (l) => other.push(l), 'test', 6),
      codes,
    );
    assert.ok(!other.some((l) => /continuing/.test(l)), other.join('\n'));
  } finally {
    clean();
    model.dispose();
  }
});
