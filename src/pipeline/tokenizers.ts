// The image tokenizers of the named runs: their recipes, and ensureTokenizer, which makes a
// recipe's tokenizer once and reuses it after. A recipe's tokenizer lives in
// runs/tokenizer-<recipe>/ (vqvae.safetensors and report.json, which records the recipe it was
// made with); one that ships in weights/tokenizer-<recipe>/ is copied from there rather than
// trained. The tokenizer is frozen while the GPT trains (taming, DALLE), so a recipe that
// changes makes its tokenizer anew, and every GPT trained through it records its fingerprint.
// A killed training continues from its saved state; presets that share a recipe share its
// tokenizer, one process making it at a time.

import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_DATA_SEED } from '../data/coloured';
import type { ColouredSplit } from '../data/coloured';
import { VALIDATION_ITEMS, partitionTrain } from '../data/holdout';
import { atomicWriteFile } from '../nn/safetensors';
import { VQVAE_PRESETS } from '../vqvae/model';
import type { VqVae } from '../vqvae/model';
import {
  TrainingStateMismatchError,
  trainVqVae,
  evaluateVqVae,
  saveVqVae,
  loadVqVae,
  vqVaeFingerprint,
} from '../vqvae/train';
import type { TrainVqVaeOptions, VqVaeEvaluation } from '../vqvae/train';
import { ensureClassifier, perceptualLossTerm } from '../eval/classifier';
import type { AttributeClassifier } from '../eval/classifier';
import { acquireRunLock } from '../gpt/runlock';
import { runsDir, weightsDir } from '../paths';
import { EXPERIMENT_TOKENIZER_RECIPES } from './experiments';
import { PERCEPTUAL_CLASSIFIER } from './recipes';
import type { TokenizerRecipe } from './recipes';
import { tokenise } from './tokens';

/** Every tokenizer recipe: the main ones, then the experiments' (experiments.ts). */
export const TOKENIZER_RECIPES: Record<string, TokenizerRecipe> = {
  tiny: {
    config: VQVAE_PRESETS.tiny,
    batchSize: 32,
    steps: 40,
    lr: 3e-3,
    trainLimit: 1024,
    seed: 0,
    validationItems: 0,
  },

  /** A tokenizer of few steps, for experiments; no preset uses it (they use the shipped `full`). */
  quick: {
    config: VQVAE_PRESETS.default,
    batchSize: 64,
    steps: 3000,
    lr: 2e-3,
    trainLimit: 0,
    seed: 0,
    validationItems: VALIDATION_ITEMS,
  },

  /**
   * The `full` recipe of the original weights: 9600 steps of batch 64 on all 60,000 training
   * images (before the validation split existed). It ships in weights/tokenizer-full9600/ (the
   * `original` preset's tokenizer, so the original weights can be reproduced).
   */
  full9600: {
    config: VQVAE_PRESETS.default,
    batchSize: 64,
    steps: 9600,
    lr: 2e-3,
    trainLimit: 0,
    seed: 0,
    validationItems: 0,
  },

  /**
   * 2.5x the steps of the first `full` recipe (full9600), with the validation split held out:
   * it keeps all three attributes in more reconstructions than full9600
   * (weights/tokenizer-full/PROVENANCE.md). Shipped in weights/tokenizer-full/, so no pipeline
   * has to train it.
   */
  full: {
    config: VQVAE_PRESETS.default,
    batchSize: 64,
    steps: 24000,
    lr: 2e-3,
    trainLimit: 0,
    seed: 0,
    validationItems: VALIDATION_ITEMS,
  },

  ...EXPERIMENT_TOKENIZER_RECIPES,
};

/** A recipe's tokenizer, where it is saved, and its evaluation on the test split. */
export interface EnsuredTokenizer {
  model: VqVae;
  path: string;
  report: Omit<VqVaeEvaluation, 'codes'>;
}

export function tokenizerPath(recipe: string): string {
  return path.join(runsDir(), `tokenizer-${recipe}`, 'vqvae.safetensors');
}

/** Where a trained tokenizer of `recipe` ships: weights/tokenizer-<recipe>/ (or MMGPT_WEIGHTS_DIR). */
export function shippedTokenizerDir(recipe: string): string {
  return path.join(weightsDir(), `tokenizer-${recipe}`);
}

/** Whether DIR holds vqvae.safetensors and a report.json made with exactly `recipe`. */
function matchesRecipe(dir: string, recipe: TokenizerRecipe): boolean {
  const reportFile = path.join(dir, 'report.json');
  if (!fs.existsSync(path.join(dir, 'vqvae.safetensors')) || !fs.existsSync(reportFile))
    return false;
  try {
    const saved = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as {
      recipeSettings?: TokenizerRecipe;
    };
    return JSON.stringify(saved.recipeSettings) === JSON.stringify(recipe);
  } catch {
    return false;
  }
}

/** Loads the recipe's trained tokenizer, or trains and saves it. */
export function ensureTokenizer(
  recipeName: string,
  train: ColouredSplit,
  test: ColouredSplit,
  log: (l: string) => void,
): EnsuredTokenizer {
  const recipe = TOKENIZER_RECIPES[recipeName];
  if (!recipe)
    throw new Error(
      `unknown tokenizer recipe '${recipeName}' (known: ${Object.keys(TOKENIZER_RECIPES).join(', ')})`,
    );
  const file = tokenizerPath(recipeName);
  const reportFile = path.join(path.dirname(file), 'report.json');
  const shipped = shippedTokenizerDir(recipeName);
  if (!matchesRecipe(path.dirname(file), recipe) && matchesRecipe(shipped, recipe)) {
    // A shipped tokenizer of this recipe: copy it into runs/ rather than train it again.
    fs.mkdirSync(path.dirname(file), { recursive: true });
    atomicWriteFile(file, fs.readFileSync(path.join(shipped, 'vqvae.safetensors')));
    atomicWriteFile(reportFile, fs.readFileSync(path.join(shipped, 'report.json')));
    log(`tokenizer: using the shipped ${path.relative(process.cwd(), shipped) || shipped}`);
  }
  if (fs.existsSync(file) && fs.existsSync(reportFile)) {
    const saved = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as {
      recipeSettings?: TokenizerRecipe;
    };
    if (JSON.stringify(saved.recipeSettings) === JSON.stringify(recipe)) {
      const model = loadVqVae(file);
      log(
        `tokenizer: reusing ${path.relative(process.cwd(), file)} (fingerprint ${vqVaeFingerprint(model)})`,
      );
      return { model, path: file, report: saved as Omit<VqVaeEvaluation, 'codes'> };
    }
    log(
      `tokenizer: ${path.relative(process.cwd(), file)} was trained with other settings than recipe '${recipeName}' has now; retraining`,
    );
  }
  // Presets that share a recipe share its tokenizer: one process trains it at a time.
  const lock = acquireRunLock(path.dirname(file), log);
  try {
    return trainTokenizer({ recipeName, recipe, file, reportFile }, train, test, log);
  } finally {
    lock.release();
  }
}

/** The recipe being made, and where its tokenizer and report go. */
interface Making {
  recipeName: string;
  recipe: TokenizerRecipe;
  file: string;
  reportFile: string;
}

/** Makes a recipe's tokenizer: from its init without training (0 steps), or by training. */
function trainTokenizer(
  making: Making,
  train: ColouredSplit,
  test: ColouredSplit,
  log: (l: string) => void,
): EnsuredTokenizer {
  const { recipeName, recipe } = making;
  const seen = partitionTrain(train, {
    validationItems: recipe.validationItems,
    heldOutPairs: 0,
  }).train;
  const limit = trainingImages(recipe, seen);
  log(
    recipe.steps === 0
      ? `tokenizer: making recipe '${recipeName}' (${recipe.config.codebookSize} codes x ${recipe.config.codeDim}) from recipe '${recipe.init}' without training`
      : `tokenizer: training recipe '${recipeName}' (${recipe.config.codebookSize} codes x ${recipe.config.codeDim}) for ${recipe.steps} steps on ${limit} images`,
  );
  const start = initTokenizer(recipeName, recipe, train, test, log);
  if (recipe.steps === 0) {
    if (start === undefined)
      throw new Error(
        `tokenizer recipe '${recipeName}': 0 steps needs an init recipe to start from`,
      );
    return searchingTokenizer(making, start, seen, test, log);
  }
  return trainedTokenizer(making, start, seen, limit, test, log);
}

/**
 * The tokenizer of the recipe's init, which it starts from (undefined: it has none), after
 * checking that the init is another recipe of the same config (apart from the code search,
 * which changes only how images are encoded) and validation split.
 */
function initTokenizer(
  recipeName: string,
  recipe: TokenizerRecipe,
  train: ColouredSplit,
  test: ColouredSplit,
  log: (l: string) => void,
): VqVae | undefined {
  if (recipe.init === undefined) return undefined;
  const from = TOKENIZER_RECIPES[recipe.init];
  if (from === undefined || recipe.init === recipeName)
    throw new Error(
      `tokenizer recipe '${recipeName}': init '${recipe.init}' must name another recipe (known: ${Object.keys(TOKENIZER_RECIPES).join(', ')})`,
    );
  const { codeSearch: _ours, ...ours } = recipe.config;
  const { codeSearch: _theirs, ...theirs } = from.config;
  if (
    JSON.stringify(theirs) !== JSON.stringify(ours) ||
    from.validationItems !== recipe.validationItems
  )
    throw new Error(
      `tokenizer recipe '${recipeName}': its config (apart from codeSearch) and validation split must be those of its init '${recipe.init}'`,
    );
  const start = ensureTokenizer(recipe.init, train, test, log).model;
  log(
    `tokenizer: recipe '${recipeName}' starts from recipe '${recipe.init}' (fingerprint ${vqVaeFingerprint(start)})`,
  );
  return start;
}

/**
 * A recipe without training: the init's tokenizer, encoding as this recipe's config says (its
 * code search). A search with a reader reads with the init's perceptual reader, found as the
 * init trained it: on the init's own images (initTokenizer compares the validation splits, and
 * the init's limit is used here, so the reader in the init's folder is never retrained).
 */
function searchingTokenizer(
  making: Making,
  start: VqVae,
  seen: ColouredSplit,
  test: ColouredSplit,
  log: (l: string) => void,
): EnsuredTokenizer {
  const { recipeName, recipe } = making;
  const init = recipe.init!;
  const from = TOKENIZER_RECIPES[init]!;
  let reader: AttributeClassifier | undefined;
  if (recipe.config.codeSearch?.reader !== undefined) {
    if (!((from.perceptualWeight ?? 0) > 0))
      throw new Error(
        `tokenizer recipe '${recipeName}': a code search with a reader reads with its init's perceptual reader, and init '${init}' has no perceptualWeight`,
      );
    reader = perceptualReader(
      path.dirname(tokenizerPath(init)),
      { ...seen, count: trainingImages(from, seen) },
      test,
      log,
    ).model;
  }
  const model = start.withCodeSearch(recipe.config.codeSearch, reader);
  start.dispose();
  reader?.dispose();
  return saveTokenizer(making, model, 0, test, log);
}

/**
 * Trains a recipe's tokenizer (from `start`, or from scratch) on `limit` of the `seen` images,
 * saving its training state every ~2% of the steps: a killed run (Ctrl-C included) continues
 * from it, and a state left by other settings is discarded.
 */
function trainedTokenizer(
  making: Making,
  start: VqVae | undefined,
  seen: ColouredSplit,
  limit: number,
  test: ColouredSplit,
  log: (l: string) => void,
): EnsuredTokenizer {
  const { recipe, file } = making;
  const statePath = path.join(path.dirname(file), 'training-state.safetensors');
  const every = Math.max(10, Math.round(recipe.steps / 50));
  let extraLoss: TrainVqVaeOptions['extraLoss'];
  const perceptualWeight = recipe.perceptualWeight ?? 0;
  if (perceptualWeight > 0) {
    const reader = perceptualReader(path.dirname(file), { ...seen, count: limit }, test, log);
    extraLoss = {
      name: 'perceptual',
      term: perceptualLossTerm(reader.model, seen, perceptualWeight),
    };
  }
  const run = (resume: boolean) =>
    trainVqVae({
      extraLoss,
      train: { images: seen.images, count: limit },
      model: start,
      config: recipe.config,
      seed: recipe.seed,
      batchSize: recipe.batchSize,
      steps: recipe.steps,
      lr: recipe.lr,
      logEvery: Math.max(1, Math.round(recipe.steps / 20)),
      log: (l) => log(`tokenizer: ${l}`),
      checkpoint: { path: statePath, every, resume },
    });
  log(
    `tokenizer: saving its training state every ${every} steps to ${path.relative(process.cwd(), statePath)}; an interrupted run continues from there`,
  );
  let trained: ReturnType<typeof trainVqVae>;
  try {
    trained = run(true);
  } catch (e) {
    if (!(e instanceof TrainingStateMismatchError)) throw e;
    log(
      `tokenizer: ${path.relative(process.cwd(), statePath)} is from other settings; starting anew`,
    );
    fs.rmSync(statePath);
    trained = run(false);
  }
  const saved = saveTokenizer(making, trained.model, trained.wallMs, test, log);
  fs.rmSync(statePath, { force: true }); // after the save: a run killed before it resumes
  return saved;
}

/**
 * How many of `seen` (the training images outside the validation split) `recipe` trains on: its
 * trainLimit, or all of them. A recipe's perceptual reader is trained on these, so a recipe that
 * reads with its init's reader must count them by the same rule to find that reader as trained.
 */
function trainingImages(recipe: TokenizerRecipe, seen: ColouredSplit): number {
  return recipe.trainLimit > 0 ? Math.min(recipe.trainLimit, seen.count) : seen.count;
}

/**
 * The reader of a recipe's perceptual term (PERCEPTUAL_CLASSIFIER), in `dir` beside its
 * tokenizer: trained there on `seen` the first time, read from there after.
 */
function perceptualReader(
  dir: string,
  seen: ColouredSplit,
  test: ColouredSplit,
  log: (l: string) => void,
): ReturnType<typeof ensureClassifier> {
  return ensureClassifier({
    path: path.join(dir, 'perceptual-classifier.safetensors'),
    train: seen,
    test,
    dataSeed: DEFAULT_DATA_SEED, // the pipelines' data: loadColouredMnist's default seed
    ...PERCEPTUAL_CLASSIFIER,
    log: (l) => log(`tokenizer: perceptual ${l}`),
  });
}

/** Evaluates a recipe's tokenizer on the test split and saves it with its report. */
function saveTokenizer(
  making: Making,
  model: VqVae,
  wallMs: number,
  test: ColouredSplit,
  log: (l: string) => void,
): EnsuredTokenizer {
  const { recipeName, recipe, file, reportFile } = making;
  const evalLimit = recipe.trainLimit > 0 ? Math.min(1000, test.count) : test.count;
  const t0 = Date.now();
  // The codes through the token cache: a pipeline through this tokenizer reads them from there.
  const codes = tokenise(model, test, evalLimit, log);
  const { codes: _codes, ...report } = evaluateVqVae(model, test, { limit: evalLimit, codes });
  void _codes;
  log(
    `tokenizer: encoded and decoded ${evalLimit} test images in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  const full = {
    ...report,
    trainSteps: recipe.steps,
    trainWallMs: wallMs,
    recipe: recipeName,
    recipeSettings: recipe,
  };
  saveVqVae(model, file, { recipe: recipeName, report: JSON.stringify(full) });
  atomicWriteFile(reportFile, JSON.stringify(full, null, 2) + '\n');
  log(
    `tokenizer: test pixel accuracy ${(100 * report.pixelAccuracy).toFixed(2)}%, ${report.usedCodes}/${report.codebookSize} codes used, perplexity ${report.perplexity.toFixed(1)} (${(wallMs / 1000).toFixed(0)} s)`,
  );
  return { model, path: file, report };
}
