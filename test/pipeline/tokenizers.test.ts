// The tokenizer step of every named run (src/pipeline/tokenizers.ts): a trained tokenizer is
// reused only while its recipe is unchanged, and a training state left by other settings is
// discarded; a recipe may continue another's tokenizer, search its codes without training, or
// train with a perceptual term; every shipped tokenizer records its recipe as it is now.
// The tiny recipe on synthetic images, on the reference backend, in a scratch runs directory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { TOKENIZER_RECIPES, ensureTokenizer, tokenizerPath } from '../../src/pipeline/tokenizers';
import { PERCEPTUAL_CLASSIFIER } from '../../src/pipeline/recipes';
import type { TokenizerRecipe } from '../../src/pipeline/recipes';
import { tokenise } from '../../src/pipeline/tokens';
import { evaluateVqVae, loadVqVae, trainVqVae, vqVaeFingerprint } from '../../src/vqvae/train';
import { loadClassifier } from '../../src/eval/classifier';
import { VQVAE_PRESETS } from '../../src/vqvae/model';
import { projectRoot } from '../../src/paths';
import { inScratchRuns, split } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

test('the tokenizer is reused while its recipe is unchanged, retrained when it changes', () => {
  inScratchRuns('mmgpt-train-', {}, () => {
    const train = split('train', 64, 1);
    const test = split('test', 16, 2);
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const first = ensureTokenizer('tiny', train, test, log);
    assert.ok(lines.some((l) => /training recipe 'tiny'/.test(l)));
    const print = vqVaeFingerprint(first.model);
    first.model.dispose();

    lines.length = 0;
    const second = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /reusing/.test(l)),
      lines.join('\n'),
    );
    assert.equal(vqVaeFingerprint(second.model), print);
    second.model.dispose();

    // A report written with other settings (or by a build that did not record them) is stale.
    const reportFile = path.join(path.dirname(tokenizerPath('tiny')), 'report.json');
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(reportFile, JSON.stringify({ ...report, recipeSettings: undefined }));
    lines.length = 0;
    const third = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /other settings .* retraining/.test(l)),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /training recipe 'tiny'/.test(l)));
    third.model.dispose();
    const statePath = path.join(path.dirname(tokenizerPath('tiny')), 'training-state.safetensors');
    assert.equal(fs.existsSync(statePath), false, 'the training state outlived the training');

    // A training state left by other settings (an older recipe) is discarded, not resumed.
    const stale = trainVqVae({
      train: { images: train.images, count: 8 },
      config: VQVAE_PRESETS.tiny,
      batchSize: 4,
      steps: 2,
      checkpoint: { path: statePath, every: 1 },
    });
    stale.model.dispose();
    assert.ok(fs.existsSync(statePath));
    fs.rmSync(reportFile);
    lines.length = 0;
    const fourth = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /is from other settings; starting anew/.test(l)),
      lines.join('\n'),
    );
    assert.equal(vqVaeFingerprint(fourth.model), print);
    assert.equal(fs.existsSync(statePath), false);
    fourth.model.dispose();
  });
});

test('a tokenizer recipe with init continues the tokenizer of another recipe, not a new one', () => {
  const tiny = TOKENIZER_RECIPES.tiny!;
  const recipes = {
    'tiny-more': { ...tiny, steps: 3, seed: 1, init: 'tiny' },
    'tiny-bad': {
      ...tiny,
      config: { ...tiny.config, codebookSize: tiny.config.codebookSize * 2 },
      init: 'tiny',
    },
  };
  inScratchRuns('mmgpt-init-', recipes, () => {
    const train = split('train', 64, 1);
    const test = split('test', 16, 2);
    const lines: string[] = [];
    const more = ensureTokenizer('tiny-more', train, test, (l) => lines.push(l));
    // It trained `tiny` first, then continued from it.
    assert.ok(
      lines.some((l) => /training recipe 'tiny' /.test(l)),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /recipe 'tiny-more' starts from recipe 'tiny'/.test(l)));
    // Exactly what continuing the saved `tiny` tokenizer for 3 steps gives.
    const base = loadVqVae(tokenizerPath('tiny'));
    const direct = trainVqVae({
      train: { images: train.images, count: 64 },
      model: loadVqVae(tokenizerPath('tiny')),
      config: tiny.config,
      seed: 1,
      batchSize: tiny.batchSize,
      steps: 3,
      lr: tiny.lr,
    });
    assert.equal(vqVaeFingerprint(more.model), vqVaeFingerprint(direct.model));
    assert.notEqual(vqVaeFingerprint(more.model), vqVaeFingerprint(base));
    // A recipe from scratch with the same settings ends elsewhere.
    const scratch = trainVqVae({
      train: { images: train.images, count: 64 },
      config: tiny.config,
      seed: 1,
      batchSize: tiny.batchSize,
      steps: 3,
      lr: tiny.lr,
    });
    assert.notEqual(vqVaeFingerprint(more.model), vqVaeFingerprint(scratch.model));
    for (const m of [more.model, base, direct.model, scratch.model]) m.dispose();
    assert.throws(
      () => ensureTokenizer('tiny-bad', train, test, () => undefined),
      /its config \(apart from codeSearch\) and validation split must be those of its init 'tiny'/,
    );
  });
});

test('a 0-step tokenizer recipe is its init with its own code search, evaluated through the token cache', () => {
  const tiny = TOKENIZER_RECIPES.tiny!;
  const codeSearch = { candidates: 3, sweeps: 1 };
  const recipes = {
    'tiny-searched': { ...tiny, config: { ...tiny.config, codeSearch }, steps: 0, init: 'tiny' },
    'tiny-orphan': { ...tiny, steps: 0 },
  };
  inScratchRuns('mmgpt-search-', recipes, () => {
    const train = split('train', 64, 1);
    const test = split('test', 16, 2);
    const lines: string[] = [];
    const searched = ensureTokenizer('tiny-searched', train, test, (l) => lines.push(l));
    const base = loadVqVae(tokenizerPath('tiny'));
    assert.deepEqual(searched.model.config, { ...base.config, codeSearch });
    const reloaded = loadVqVae(tokenizerPath('tiny-searched'));
    assert.deepEqual(reloaded.config.codeSearch, codeSearch);
    // The same weights: decoding agrees; encoding searches, and the report counts its codes.
    const codes = base.encode(test.images, 16);
    assert.deepEqual(searched.model.decode(codes, 16), base.decode(codes, 16));
    const searchedCodes = searched.model.encode(test.images, 16);
    assert.notDeepEqual(searchedCodes, codes);
    assert.deepEqual(
      tokenise(reloaded, test, 0, () => undefined),
      searchedCodes,
    );
    const direct = evaluateVqVae(searched.model, test);
    assert.equal(searched.report.pixelAccuracy, direct.pixelAccuracy);
    // Asked again, it is reused, not made anew.
    const again: string[] = [];
    ensureTokenizer('tiny-searched', train, test, (l) => again.push(l)).model.dispose();
    assert.ok(
      again.some((l) => /reusing/.test(l)),
      again.join('\n'),
    );
    assert.throws(
      () => ensureTokenizer('tiny-orphan', train, test, () => undefined),
      /0 steps needs an init recipe/,
    );
    // A shorter prefix of a cached whole split is read from its cache, not encoded again.
    const prefix: string[] = [];
    const first = tokenise(reloaded, test, 5, (l) => prefix.push(l));
    assert.deepEqual(first, searchedCodes.slice(0, 5 * 49));
    assert.ok(!prefix.some((l) => /encoded/.test(l)), prefix.join('\n'));
    for (const m of [searched.model, base, reloaded]) m.dispose();
  });
});

test('a tokenizer recipe with a perceptual weight trains its reader first and adds its term', () => {
  const tiny = TOKENIZER_RECIPES.tiny!;
  const recipes = {
    'tiny-perceptual': { ...tiny, steps: 2, seed: 1, init: 'tiny', perceptualWeight: 1 },
    'tiny-plain': { ...tiny, steps: 2, seed: 1, init: 'tiny' },
    // The code search with a reader: the init's perceptual reader, carried in the tokenizer.
    'tiny-read': {
      ...tiny,
      config: {
        ...tiny.config,
        codeSearch: {
          candidates: 2,
          sweeps: 1,
          reader: { weight: 5, classifier: PERCEPTUAL_CLASSIFIER.config },
        },
      },
      steps: 0,
      init: 'tiny-perceptual',
    },
  };
  // Fewer images of its own than its init: its reader is still the init's, never retrained.
  const readFewer = { ...recipes['tiny-read'], trainLimit: 32 };
  // An init without a perceptual term has no reader to read with.
  const readPlain = { ...recipes['tiny-read'], init: 'tiny-plain' };
  Object.assign(recipes, { 'tiny-read-fewer': readFewer, 'tiny-read-plain': readPlain });
  const reader = PERCEPTUAL_CLASSIFIER.settings;
  PERCEPTUAL_CLASSIFIER.settings = { ...reader, epochs: 1, batchSize: 32 };
  try {
    inScratchRuns('mmgpt-perceptual-', recipes, () => {
      const train = split('train', 64, 1);
      const test = split('test', 16, 2);
      const lines: string[] = [];
      const withTerm = ensureTokenizer('tiny-perceptual', train, test, (l) => lines.push(l));
      const dir = path.dirname(tokenizerPath('tiny-perceptual'));
      assert.ok(fs.existsSync(path.join(dir, 'perceptual-classifier.safetensors')));
      assert.ok(
        lines.some((l) => /tokenizer: perceptual classifier: training one on real images/.test(l)),
        lines.join('\n'),
      );
      assert.ok(
        lines.some((l) => /\| perceptual \d+\.\d{4} \|/.test(l)),
        lines.join('\n'),
      );
      const plain = ensureTokenizer('tiny-plain', train, test, () => undefined);
      assert.notEqual(vqVaeFingerprint(withTerm.model), vqVaeFingerprint(plain.model));
      const again: string[] = [];
      ensureTokenizer('tiny-perceptual', train, test, (l) => again.push(l)).model.dispose();
      assert.ok(
        again.some((l) => /tokenizer: reusing/.test(l)),
        again.join('\n'),
      );
      const read = ensureTokenizer('tiny-read', train, test, () => undefined);
      const readerFile = loadClassifier(path.join(dir, 'perceptual-classifier.safetensors')).model;
      assert.deepEqual(read.model.reader!.stateDict(), readerFile.stateDict());
      const reloaded = loadVqVae(tokenizerPath('tiny-read'));
      assert.deepEqual(reloaded.reader!.stateDict(), readerFile.stateDict());
      const codes = withTerm.model.encode(test.images, 4);
      assert.deepEqual(read.model.decode(codes, 4), withTerm.model.decode(codes, 4));
      const fewerLines: string[] = [];
      const fewer = ensureTokenizer('tiny-read-fewer', train, test, (l) => fewerLines.push(l));
      assert.ok(!fewerLines.some((l) => /training one/.test(l)), fewerLines.join('\n'));
      assert.deepEqual(fewer.model.reader!.stateDict(), readerFile.stateDict());
      const readerAfter = loadClassifier(path.join(dir, 'perceptual-classifier.safetensors')).model;
      assert.deepEqual(readerAfter.stateDict(), readerFile.stateDict());
      assert.throws(
        () => ensureTokenizer('tiny-read-plain', train, test, () => undefined),
        /init 'tiny-plain' has no perceptualWeight/,
      );
      assert.ok(
        !fs.existsSync(
          path.join(path.dirname(tokenizerPath('tiny-plain')), 'perceptual-classifier.safetensors'),
        ),
      );
      const models = [withTerm.model, plain.model, read.model, reloaded, readerFile];
      for (const m of [...models, fewer.model, readerAfter]) m.dispose();
    });
  } finally {
    PERCEPTUAL_CLASSIFIER.settings = reader;
  }
});

test('every shipped tokenizer records its recipe as the recipe is now, so no pipeline retrains it', () => {
  const weights = path.join(projectRoot(), 'weights');
  const shipped = fs
    .readdirSync(weights)
    .filter((d) => d.startsWith('tokenizer-'))
    .map((d) => d.slice('tokenizer-'.length));
  assert.ok(shipped.includes('searched-reader'), shipped.join(', '));
  for (const recipe of shipped) {
    const dir = path.join(weights, `tokenizer-${recipe}`);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as {
      recipe: string;
      recipeSettings: TokenizerRecipe;
    };
    assert.equal(report.recipe, recipe, dir);
    assert.deepEqual(report.recipeSettings, TOKENIZER_RECIPES[recipe], dir);
    // The key order too: ensureTokenizer compares the recipes as JSON.
    assert.equal(
      JSON.stringify(report.recipeSettings),
      JSON.stringify(TOKENIZER_RECIPES[recipe]),
      dir,
    );
    assert.ok(fs.existsSync(path.join(dir, 'PROVENANCE.md')), `${dir}/PROVENANCE.md`);
  }
});
