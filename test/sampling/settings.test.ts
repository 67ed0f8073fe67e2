// The sampling presets, pinned: what each preset resolves to in each mode, key for key and in
// order (report.json and samples.json record these objects), and the one-line description the
// report prints for each.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeModeSampling, resolveModeSampling } from '../../src/sampling/presets';

const ORIGINAL_RULES = {
  temperature: 1,
  textTemperature: 1,
  topK: 0,
  topP: 1,
  guidance: 1,
  grammar: 'none',
  rerank: 1,
  imageToTextScore: 'both',
  digitSearch: false,
  colourSearch: false,
  foregroundShortlist: 0,
  backgroundShortlist: 0,
  legibleSearch: false,
  shiftViews: false,
  viewShortlist: 0,
  captionFirst: false,
};

const PINNED = {
  default: {
    textToImage: { ...ORIGINAL_RULES, temperature: 0.5, guidance: 1.5, rerank: 4 },
    imageToText: {
      ...ORIGINAL_RULES,
      rerank: 4,
      colourSearch: true,
      backgroundShortlist: 1,
      legibleSearch: true,
      shiftViews: true,
      viewShortlist: 3,
    },
    unconditional: {
      ...ORIGINAL_RULES,
      temperature: 0.5,
      guidance: 1.5,
      grammar: 'legible',
      rerank: 4,
      captionFirst: true,
    },
  },
  original: {
    textToImage: ORIGINAL_RULES,
    imageToText: ORIGINAL_RULES,
    unconditional: ORIGINAL_RULES,
  },
} as const;

const DESCRIBED = {
  default: {
    textToImage: 'T 0.5 (words 1), guidance 1.5, rerank 4',
    imageToText: 'T 1, rerank 4, colour search (legible, background top 1), shift views (top 3)',
    unconditional: 'caption first, T 0.5 (words 1), guidance 1.5, grammar legible, rerank 4',
  },
  original: { textToImage: 'T 1', imageToText: 'T 1', unconditional: 'T 1' },
};

test('each preset resolves to its pinned settings in every mode, in order', () => {
  for (const preset of ['default', 'original'] as const)
    for (const mode of ['textToImage', 'imageToText', 'unconditional'] as const) {
      const resolved = resolveModeSampling(preset, mode);
      assert.deepEqual(resolved, PINNED[preset][mode], `${preset}/${mode}`);
      assert.equal(JSON.stringify(resolved), JSON.stringify(PINNED[preset][mode]));
      assert.equal(describeModeSampling(resolved), DESCRIBED[preset][mode], `${preset}/${mode}`);
    }
});
