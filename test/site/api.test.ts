// The page's model (src/site/api.ts) in Node: built from the bytes of the shipped weights, its
// three modes give exactly the samples of `mmgpt sample` (drawSamples on loadRun) for the same
// seed and settings on the same backend; a damaged file fails naming it; the caption box's check
// (src/site/caption.ts) names the accepted words.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { weightsDir } from '../../src/paths';
import { IMAGE_VALUES } from '../../src/data/images';
import { loadRun } from '../../src/eval/run';
import { drawSamples, type SampleRequest } from '../../src/pipeline/figures';
import {
  flatImage,
  siteImageToText,
  siteModelFromBytes,
  siteTextToImage,
  siteUnconditional,
} from '../../src/site/api';
import { checkCaptionDraft } from '../../src/site/caption';

const dir = path.join(weightsDir(), 'best');
const files = {
  checkpoint: {
    name: 'checkpoint.safetensors',
    bytes: fs.readFileSync(path.join(dir, 'checkpoint.safetensors')),
  },
  tokenizer: {
    name: 'vqvae.safetensors',
    bytes: fs.readFileSync(path.join(dir, 'vqvae.safetensors')),
  },
};
const CAPTION = 'dark green eight on bright cyan';

function request(mode: SampleRequest['mode'], extra: Partial<SampleRequest>): SampleRequest {
  return {
    mode,
    n: 2,
    prompt: null,
    imagePath: null,
    image: null,
    samplingPreset: 'default',
    overrides: { rerank: 1 },
    seed: 11,
    batchSize: 64,
    ...extra,
  };
}

test('the page model samples as mmgpt sample does, for one seed, in every mode', () => {
  const site = siteModelFromBytes(files.checkpoint, files.tokenizer);
  const run = loadRun(path.join(dir, 'checkpoint.safetensors'));
  const options = { seed: 11, rerank: 1 };

  const page = siteTextToImage(site, CAPTION, 2, options);
  const lib = drawSamples(run, request('text2image', { prompt: CAPTION }));
  assert.deepEqual(
    page.samples.map((s) => Array.from(s.tokens)),
    lib.map((s) => Array.from(s.tokens)),
  );
  const libImages = run.tokenizer.decode(
    Int32Array.from(lib.flatMap((s) => Array.from(s.imageCodes))),
    2,
  );
  assert.deepEqual(
    Array.from(page.images.flatMap((im) => Array.from(flatImage(im)))),
    Array.from(libImages),
  );

  const image = libImages.slice(0, IMAGE_VALUES);
  const caption = siteImageToText(site, image, { seed: 11, rerank: 2 });
  const libCaption = drawSamples(
    run,
    request('image2text', { n: 1, image, overrides: { rerank: 2 } }),
  );
  assert.equal(caption.caption, libCaption[0]!.caption);
  assert.equal(caption.candidates.length, 3);
  for (let i = 1; i < 3; i++)
    assert.ok(caption.candidates[i - 1]!.score >= caption.candidates[i]!.score);
  assert.ok(caption.candidates.every((c) => c.probability > 0 && c.probability <= 1));

  const pairs = siteUnconditional(site, 2, options);
  const libPairs = drawSamples(run, request('unconditional', {}));
  assert.deepEqual(
    pairs.captions,
    libPairs.map((s) => s.caption),
  );
});

test('a damaged checkpoint or tokenizer fails naming the file', () => {
  const truncated = {
    name: 'checkpoint.safetensors',
    bytes: files.checkpoint.bytes.subarray(0, 1000),
  };
  assert.throws(() => siteModelFromBytes(truncated, files.tokenizer), /checkpoint\.safetensors/);
  const garbled = Uint8Array.from(files.tokenizer.bytes);
  garbled.fill(0x7b, 8, 40); // the header's JSON
  assert.throws(
    () => siteModelFromBytes(files.checkpoint, { name: 'vqvae.safetensors', bytes: garbled }),
    /vqvae\.safetensors/,
  );
});

test('the caption check names the accepted words as a caption is typed', () => {
  assert.equal(checkCaptionDraft(CAPTION).ok, true);
  const partial = checkCaptionDraft('dark gr');
  assert.equal(partial.ok, false);
  assert.equal(partial.complete, false);
  const unknown = checkCaptionDraft('dark grean ');
  assert.equal(unknown.complete, true);
  assert.match(unknown.message, /"grean" is not a colour: word 2 is one of .*green/);
  const typo = checkCaptionDraft('dark green eigth on bright cyan');
  assert.equal(typo.ok, false);
  assert.match(typo.message, /did you mean "eight"/);
  assert.match(
    checkCaptionDraft('plain cyan eight on bright green').message,
    /not a palette colour/,
  );
});
