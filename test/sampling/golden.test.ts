// Golden samples: a tiny random run (js backend) sampled in every mode under both sampling
// presets and a few other settings (the searches alone, guidance, top-k/top-p, the uncached
// path). The tokens chosen and the scores they won with are compared with golden.json, recorded
// from an earlier version of the sampler: a refactor of the sampler, the reranker or the searches
// must choose the same tokens from the same random streams.
// MMGPT_WRITE_GOLDEN=1 rewrites golden.json instead (only when a change of outputs is intended).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { IMAGE_TOKENS } from '../../src/data/sequences';
import { loadRun } from '../../src/eval/run';
import { imageToText, textToImage, unconditional } from '../../src/sampling/modes';
import type { ModeOptions } from '../../src/sampling/modes';
import type { Sample } from '../../src/sampling/sample';
import { resolveModeSampling } from '../../src/sampling/presets';
import { Rng } from '../../src/nn/rng';
import { writeTinyRun } from '../eval/helpers';

setBackend('js');

const GOLDEN = path.join(__dirname, '..', '..', '..', 'test', 'sampling', 'golden.json');

const run = loadRun(writeTinyRun(fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-golden-'))));
const CAPTIONS = [
  'dark green eight on bright cyan',
  'plain white zero on plain black',
  'normal red three on light blue',
];
const rng = new Rng(12);
const randomCodes = () =>
  Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(run.vocab.imageCodes));
// Random codes rather than the tiny tokenizer's (which gives these images nearly one code).
const imageRows = [0, 1, 2].map(randomCodes);
const imageViews = imageRows.map(() => [randomCodes(), randomCodes(), randomCodes()]);

type Mode = 'textToImage' | 'imageToText' | 'unconditional';

function draw(mode: Mode, opts: ModeOptions): Sample[] {
  if (mode === 'textToImage') return textToImage(run.model, run.vocab, CAPTIONS, opts);
  if (mode === 'imageToText')
    return imageToText(
      run.model,
      run.vocab,
      imageRows,
      opts.shiftViews ? { ...opts, imageViews } : opts,
    );
  return unconditional(run.model, run.vocab, 3, opts);
}

const preset = (name: 'default' | 'original', mode: Mode): ModeOptions => ({
  ...resolveModeSampling(name, mode),
  seed: 5,
  batchSize: 2,
});

/** Every case: a name, its mode and its options. */
const CASES: [string, Mode, ModeOptions][] = [
  ...(['default', 'original'] as const).flatMap((name) =>
    (['textToImage', 'imageToText', 'unconditional'] as const).map(
      (mode): [string, Mode, ModeOptions] => [`${name}/${mode}`, mode, preset(name, mode)],
    ),
  ),
  [
    't2i digit posterior',
    'textToImage',
    { ...preset('default', 'textToImage'), digitSearch: true },
  ],
  [
    'unconditional caption first, digit posterior',
    'unconditional',
    { ...preset('default', 'unconditional'), digitSearch: true },
  ],
  [
    'unconditional joint order, rerank 3, digit posterior',
    'unconditional',
    { seed: 2, grammar: 'words', rerank: 3, digitSearch: true },
  ],
  [
    'i2t caption score, colour search alone',
    'imageToText',
    { seed: 3, rerank: 3, imageToTextScore: 'caption', colourSearch: true },
  ],
  [
    'i2t image score, shift views alone',
    'imageToText',
    { seed: 4, grammar: 'words', rerank: 2, imageToTextScore: 'image', shiftViews: true },
  ],
  [
    'i2t the previous default: rerank 8, digit, colour search and shift views, no shortlist',
    'imageToText',
    {
      ...preset('default', 'imageToText'),
      rerank: 8,
      digitSearch: true,
      legibleSearch: false,
      backgroundShortlist: 0,
      viewShortlist: 0,
    },
  ],
  [
    'i2t digit search alone',
    'imageToText',
    { seed: 9, grammar: 'palette', rerank: 3, digitSearch: true },
  ],
  [
    't2i top-k, top-p, guidance 2, rerank 2',
    'textToImage',
    { seed: 6, temperature: 0.9, topK: 5, topP: 0.9, guidance: 2, rerank: 2 },
  ],
  [
    'i2t guidance, word temperature, uncached',
    'imageToText',
    { seed: 7, guidance: 1.3, textTemperature: 0.7, cached: false },
  ],
  [
    'unconditional top-p, uncached',
    'unconditional',
    { seed: 8, topP: 0.8, cached: false, batchSize: 1 },
  ],
];

/** What a sample is compared on: its tokens, and the score and count it was chosen with. */
function record(samples: readonly Sample[]) {
  return samples.map((s) => ({ tokens: Array.from(s.tokens), rerank: s.rerank ?? null }));
}

test('every mode under every preset samples the recorded tokens', () => {
  const results = Object.fromEntries(
    CASES.map(([name, mode, opts]) => [name, record(draw(mode, opts))]),
  );
  if (process.env.MMGPT_WRITE_GOLDEN === '1') {
    fs.writeFileSync(GOLDEN, JSON.stringify(results, null, 1) + '\n');
    return;
  }
  const golden = JSON.parse(fs.readFileSync(GOLDEN, 'utf8')) as typeof results;
  assert.deepEqual(Object.keys(results), Object.keys(golden));
  for (const [name] of CASES) assert.deepEqual(results[name], golden[name], name);
});
