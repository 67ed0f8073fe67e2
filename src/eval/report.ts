// The evaluation: samples in every mode on N test items, scored by the attribute classifier and
// against the true captions, with test NLL, tokenizer ceiling and sampling speed; written as
// figures/report.json (every number and every setting) and figures/report.md (the same, readable,
// each number beside the issue's target).
//
// What is measured (issue 5, item 4):
// - text -> image: an image from each of the first N test captions; the classifier reads digit,
//   foreground and background off it: accuracy of all three, and of each.
// - image -> text: a caption for each of the first N test images (tokenised by the run's VQ-VAE):
//   exact match and per-field accuracy against the true caption.
// - unconditional: N samples from <bos>: grammatical share, image/caption agreement, coverage.
// - test NLL (nats per predicted token, both orders) on the test sequences the run was scored on.
// - the tokenizer: pixel accuracy and codebook usage on the N images, and the classifier's
//   accuracy on their reconstructions (the ceiling of text -> image accuracy) beside its accuracy
//   on the real images.
// - speed: full sequences from <bos> (57 new tokens per row) with and without the KV cache, and
//   the wall time of 9 images from one caption.
// Notable choices: one seed drives every mode (the sampler derives a stream per row), so a report
// is reproducible from its settings; this module loads nothing from disk (the command resolves
// files), so it runs on in-memory test fixtures as well as on a real run.

import * as path from 'path';
import { getBackend } from '../engine/registry';
import { atomicWriteFile } from '../nn/safetensors';
import type { LabelledImages } from './classifier';
import type { AttributeClassifier, ClassifierConfig, ClassifierTrainSettings } from './classifier';
import { IMAGE_VALUES } from '../data/coloured';
import { captionText, type Vocab } from '../data/vocab';
import type { SequenceSource } from '../data/sequences';
import { IMAGE_TOKENS, SEQUENCE_LENGTH } from '../data/sequences';
import type { GPT, GptConfig } from '../gpt/model';
import { evaluateNll } from '../gpt/train';
import type { VqVae } from '../vqvae/model';
import { evaluateVqVae } from '../vqvae/train';
import { generate, generateUncached } from '../sampling/sampler';
import { textToImage, type ModeOptions } from '../sampling/modes';
import type { Sample } from '../sampling/sample';
import {
  SAMPLING_PRESET_NAMES,
  describeModeSampling,
  resolveModeSampling,
  type ModeSampling,
  type SamplingOverrides,
  type SamplingPresetName,
} from '../sampling/presets';
import {
  MODE_LABELS,
  MODE_NAMES,
  headline,
  scoreMode,
  truthCaptions,
  type ModeContext,
  type ModeName,
  type ModeResult,
} from './modes';
import { errorSummary, renderErrorSummary, type ErrorSummary } from './confusions';
import {
  TARGETS,
  attributeAccuracy,
  captionAccuracy,
  checkTargets,
  formatTargetValue,
  tokensPerSecond,
  unconditionalMetrics,
  type AttributeAccuracy,
  type Attributes,
  type CaptionAccuracy,
  type TargetCheck,
  type UnconditionalMetrics,
} from './metrics';

export const REPORT_FORMAT = 'mmgpt-eval-report';
export const REPORT_VERSION = 1;
/** Final test NLL of the original write-up (its reference) and the published range. */
export const REFERENCE_NLL = {
  original: 2.6772,
  publishedBest: 2.45,
  publishedWorst: 2.67,
  /** Image codes of the tokenizer these were measured with (NLLs compare only at equal K). */
  codebookSize: 1024,
} as const;

// ---- settings --------------------------------------------------------------------------------

export interface EvalSettings {
  /** Test items per mode (and unconditional samples). */
  n: number;
  /** Seed of every sampling stream. */
  seed: number;
  /** Named per-mode sampling settings (src/sampling/presets.ts). */
  samplingPreset: SamplingPresetName;
  /** Settings given explicitly; each replaces the preset's value in every mode it applies to. */
  overrides: SamplingOverrides;
  /** Also score each mode without reranking and under the seed's rules (the comparison table). */
  compare: boolean;
  /** Rows per batched generation (samples do not depend on it). */
  batchSize: number;
  /** Rows of the cached/uncached speed measurement. */
  speedRows: number;
}

export const EVAL_DEFAULTS: EvalSettings = {
  n: 1000,
  seed: 0,
  samplingPreset: 'default',
  overrides: {},
  compare: true,
  batchSize: 64,
  speedRows: 8,
};

/** Fills defaults and rejects impossible settings with a message saying what is accepted. */
export function validateEvalSettings(settings: Partial<EvalSettings> = {}): EvalSettings {
  const s = { ...EVAL_DEFAULTS, ...settings, overrides: { ...(settings.overrides ?? {}) } };
  for (const key of ['n', 'batchSize', 'speedRows'] as const) {
    if (!Number.isInteger(s[key]) || s[key] < 1)
      throw new Error(`${key} must be a positive integer, got ${s[key]}`);
  }
  if (!Number.isSafeInteger(s.seed) || s.seed < 0)
    throw new Error(`seed must be a non-negative integer, got ${s.seed}`);
  if (!SAMPLING_PRESET_NAMES.includes(s.samplingPreset))
    throw new Error(
      `sampling preset must be one of ${SAMPLING_PRESET_NAMES.join(', ')}, got '${s.samplingPreset}'`,
    );
  for (const mode of MODE_NAMES) resolveModeSampling(s.samplingPreset, mode, s.overrides);
  return s;
}

/** The sampler options of `mode` under the settings (preset, overrides, seed, batch size). */
export function modeOptionsFor(
  settings: EvalSettings,
  mode: ModeName,
  overrides: SamplingOverrides = settings.overrides,
  preset: SamplingPresetName = settings.samplingPreset,
): ModeOptions & ModeSampling {
  return {
    ...resolveModeSampling(preset, mode, overrides),
    seed: settings.seed,
    batchSize: settings.batchSize,
  };
}

// ---- what the report describes ---------------------------------------------------------------

export interface CheckpointInfo {
  path: string;
  /** SHA-256 of the checkpoint file. */
  sha256: string;
  step: number;
  epoch: number;
  complete: boolean;
  gptConfig: GptConfig;
  /** Fingerprint of the tokenizer that made the training tokens. */
  tokenizerHash: string;
  /** The run's final test NLL as its training log recorded it (null if unknown). */
  trainingFinalTestNll: number | null;
}

export interface TokenizerInfo {
  path: string;
  sha256: string;
  fingerprint: string;
}

export interface ClassifierInfo {
  path: string;
  /** Whether it was reused or trained for this report. */
  status: string;
  config: ClassifierConfig;
  settings: ClassifierTrainSettings;
  /** Its accuracy on the whole real test split, recorded when it was trained. */
  realTestSplit: AttributeAccuracy | null;
}

export interface EvaluationInputs {
  model: GPT;
  vocab: Vocab;
  tokenizer: VqVae;
  classifier: AttributeClassifier;
  /** The real test split (the first n items are used). */
  test: LabelledImages;
  /** Test sequences for the NLL (null: skip it). */
  nllSource: SequenceSource | null;
  checkpoint: CheckpointInfo;
  tokenizerInfo: TokenizerInfo;
  classifierInfo: ClassifierInfo;
  settings?: Partial<EvalSettings>;
  /**
   * The compositional test: test items whose (fg, bg) pair the run held out of training, and how
   * many pairs it held out (absent: the run held none out).
   */
  compositional?: { items: LabelledImages; heldOutPairs: number };
  log?: (line: string) => void;
}

/** One row of the comparison table: a mode under one set of settings. */
export interface ComparisonRow {
  mode: ModeName;
  /** 'default' (the report's settings), 'without reranking' or 'original rules'. */
  variant: string;
  settings: string;
  /** The mode's headline: all three right, exact match or agreement. */
  value: number;
  /** Unconditional only: grammatical share. */
  grammatical?: number;
  ms: number;
}

export interface SpeedReport {
  backend: string;
  /** Rows generated together. */
  rows: number;
  /** New tokens per row (a full sequence from <bos>). */
  newTokensPerRow: number;
  cachedMs: number;
  uncachedMs: number;
  cachedTokensPerSecond: number;
  uncachedTokensPerSecond: number;
  /** uncachedMs / cachedMs. */
  speedup: number;
  /** Wall time of 9 text -> image samples of one caption (cached). */
  nineImagesMs: number;
  /** Each time is the fastest of this many runs. */
  repeats: number;
}

export interface TokenizerReport extends TokenizerInfo {
  /** Images scored (the first n test images). */
  count: number;
  pixelAccuracy: number;
  valueAccuracy: number;
  imageAccuracy: number;
  usedCodes: number;
  codebookSize: number;
  perplexity: number;
}

export interface EvalReport {
  format: typeof REPORT_FORMAT;
  version: number;
  createdAt: string;
  backend: string;
  settings: EvalSettings;
  checkpoint: CheckpointInfo;
  tokenizer: TokenizerReport;
  classifier: ClassifierInfo & {
    /** On the n real test images. */
    real: AttributeAccuracy;
    /** On the VQ-VAE reconstructions of the same images: the tokenizer's ceiling. */
    reconstructed: AttributeAccuracy;
  };
  testNll: { natsPerDim: number; items: number; sequences: number; ms: number } | null;
  /** The settings each mode was sampled with. */
  sampling: Record<ModeName, ModeSampling>;
  textToImage: AttributeAccuracy & { ms: number };
  imageToText: CaptionAccuracy & { ms: number };
  unconditional: UnconditionalMetrics & { ms: number };
  /** Each mode by default, without reranking and under the seed's rules (when they differ). */
  comparisons: ComparisonRow[];
  /** Where the errors of each mode are (default settings). */
  errors: Record<ModeName, ErrorSummary>;
  /** Text -> image on test captions with a colour pair the run never saw (null: none held out). */
  compositional: (AttributeAccuracy & { heldOutPairs: number; ms: number }) | null;
  speed: SpeedReport;
  targets: TargetCheck[];
  /** The first few samples of each mode, for reading. */
  examples: {
    textToImage: { prompt: string; imageReads: string }[];
    imageToText: { truth: string; caption: string }[];
    unconditional: { caption: string; imageReads: string; order: number | null }[];
  };
  wallMs: number;
}

// ---- running it ------------------------------------------------------------------------------

/** The (digit, fg, bg) of the first `count` items. */
function sliceAttributes(a: Attributes, count: number): Attributes {
  return {
    digit: a.digit.subarray(0, count),
    fg: a.fg.subarray(0, count),
    bg: a.bg.subarray(0, count),
  };
}

/** A classifier reading as a caption, e.g. "dark green eight on bright cyan". */
function readingText(a: Attributes, i: number): string {
  try {
    return captionText(a.digit[i]!, a.fg[i]!, a.bg[i]!);
  } catch {
    return '(unreadable)';
  }
}

/** Runs every measurement; see the file header. Deterministic for given inputs and settings. */
export function runEvaluation(inputs: EvaluationInputs): EvalReport {
  const started = performance.now();
  const settings = validateEvalSettings(inputs.settings);
  const log = inputs.log ?? (() => undefined);
  const { model, vocab, tokenizer, classifier, test } = inputs;
  const n = Math.min(settings.n, test.count);
  if (n < 1) throw new Error('evaluation: the test set is empty');
  if (tokenizer.config.codebookSize !== vocab.imageCodes)
    throw new Error(
      `evaluation: the tokenizer has ${tokenizer.config.codebookSize} codes, the GPT's vocabulary ${vocab.imageCodes}`,
    );
  const truth = sliceAttributes(test, n);
  const images = test.images.subarray(0, n * IMAGE_VALUES);
  const timed = <T>(what: string, fn: () => T): [T, number] => {
    const t0 = performance.now();
    const out = fn();
    const ms = performance.now() - t0;
    log(`eval: ${what} in ${(ms / 1000).toFixed(1)} s`);
    return [out, ms];
  };

  // Tokenizer and classifier ceiling.
  const [tok] = timed(`tokenised ${n} test images`, () =>
    evaluateVqVae(tokenizer, { images, count: n }),
  );
  const reconstructions = tokenizer.decode(tok.codes, n);
  const real = attributeAccuracy(classifier.classify(images, n), truth, n);
  const reconstructed = attributeAccuracy(classifier.classify(reconstructions, n), truth, n);

  // Test NLL.
  let testNll: EvalReport['testNll'] = null;
  if (inputs.nllSource !== null) {
    const source = inputs.nllSource;
    const [nll, ms] = timed(`test NLL on ${source.count} items (both orders)`, () =>
      evaluateNll(model, source, vocab, 250),
    );
    testNll = { natsPerDim: nll, items: source.count, sequences: 2 * source.count, ms };
  }

  // The three modes with the report's settings, then the comparison variants.
  const ctx: ModeContext = {
    model,
    vocab,
    tokenizer,
    classifier,
    truth,
    codes: tok.codes,
    images,
    n,
  };
  const sampling = {} as Record<ModeName, ModeSampling>;
  const results = {} as Record<ModeName, ModeResult>;
  const comparisons: ComparisonRow[] = [];
  const row = (mode: ModeName, variant: string, opts: ModeSampling, r: ModeResult) =>
    comparisons.push({
      mode,
      variant,
      settings: describeModeSampling(opts),
      value: headline(r),
      ...(r.mode === 'unconditional' ? { grammatical: r.metrics.grammatical } : {}),
      ms: r.ms,
    });
  for (const mode of MODE_NAMES) {
    const opts = modeOptionsFor(settings, mode);
    sampling[mode] = resolveModeSampling(settings.samplingPreset, mode, settings.overrides);
    const [r] = timed(`${MODE_LABELS[mode]} on ${n} items (${describeModeSampling(opts)})`, () =>
      scoreMode(ctx, mode, opts),
    );
    results[mode] = r;
    row(mode, 'default', sampling[mode], r);
    if (!settings.compare) continue;
    const variants: [string, ModeOptions & ModeSampling][] = [];
    if (opts.rerank > 1)
      variants.push([
        'without reranking',
        modeOptionsFor(settings, mode, { ...settings.overrides, rerank: 1 }),
      ]);
    if (settings.samplingPreset !== 'original' || Object.keys(settings.overrides).length > 0)
      variants.push(['original rules', modeOptionsFor(settings, mode, {}, 'original')]);
    for (const [variant, vopts] of variants) {
      const [vr] = timed(`${MODE_LABELS[mode]}, ${variant}`, () => scoreMode(ctx, mode, vopts));
      row(mode, variant, vopts, vr);
    }
  }
  const t2iResult = results.textToImage as Extract<ModeResult, { mode: 'textToImage' }>;
  const i2tResult = results.imageToText as Extract<ModeResult, { mode: 'imageToText' }>;
  const uncResult = results.unconditional as Extract<ModeResult, { mode: 'unconditional' }>;
  const t2i = t2iResult.samples;
  const t2iReads = t2iResult.reads;
  const i2t = i2tResult.samples;
  const unc = uncResult.samples;
  const uncReads = uncResult.reads;
  const captions = truthCaptions(truth, n);
  const textToImageScore = { ...t2iResult.accuracy, ms: t2iResult.ms };
  const imageToTextScore = { ...i2tResult.accuracy, ms: i2tResult.ms };
  const unconditionalScore = { ...uncResult.metrics, ms: uncResult.ms };

  // Where the errors are.
  const captionAttributes = (samples: readonly Sample[]): Attributes => ({
    digit: Int32Array.from(samples, (s) => s.meaning?.digit ?? -1),
    fg: Int32Array.from(samples, (s) => s.meaning?.fg ?? -1),
    bg: Int32Array.from(samples, (s) => s.meaning?.bg ?? -1),
  });
  const errors: Record<ModeName, ErrorSummary> = {
    textToImage: errorSummary(truth, t2iReads, n),
    imageToText: errorSummary(truth, captionAttributes(i2t), n),
    unconditional: errorSummary(captionAttributes(unc), uncReads, n),
  };

  // The compositional test.
  let compositional: EvalReport['compositional'] = null;
  const comp = inputs.compositional;
  if (comp !== undefined && comp.items.count > 0) {
    const m = Math.min(n, comp.items.count);
    const compCtx: ModeContext = {
      ...ctx,
      truth: sliceAttributes(comp.items, m),
      codes: new Int32Array(0),
      n: m,
    };
    const [r] = timed(`text -> image on ${m} test captions with held-out colour pairs`, () =>
      scoreMode(compCtx, 'textToImage', modeOptionsFor(settings, 'textToImage')),
    );
    if (r.mode === 'textToImage')
      compositional = { ...r.accuracy, heldOutPairs: comp.heldOutPairs, ms: r.ms };
  }

  const speed = measureSpeed(model, vocab, captions[0]!, settings);
  log(
    `eval: speed ${speed.cachedTokensPerSecond.toFixed(0)} tok/s cached, ` +
      `${speed.uncachedTokensPerSecond.toFixed(0)} tok/s uncached (${speed.speedup.toFixed(1)}x); ` +
      `9 images in ${speed.nineImagesMs.toFixed(0)} ms`,
  );

  const shown = Math.min(9, n);
  const report: EvalReport = {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    createdAt: new Date().toISOString(),
    backend: getBackend().name,
    settings,
    checkpoint: inputs.checkpoint,
    tokenizer: {
      ...inputs.tokenizerInfo,
      count: tok.count,
      pixelAccuracy: tok.pixelAccuracy,
      valueAccuracy: tok.valueAccuracy,
      imageAccuracy: tok.imageAccuracy,
      usedCodes: tok.usedCodes,
      codebookSize: tok.codebookSize,
      perplexity: tok.perplexity,
    },
    classifier: { ...inputs.classifierInfo, real, reconstructed },
    testNll,
    sampling,
    textToImage: textToImageScore,
    imageToText: imageToTextScore,
    unconditional: unconditionalScore,
    comparisons,
    errors,
    compositional,
    speed,
    targets: [],
    examples: {
      textToImage: captions
        .slice(0, shown)
        .map((prompt, i) => ({ prompt, imageReads: readingText(t2iReads, i) })),
      imageToText: i2t.slice(0, shown).map((s, i) => ({ truth: captions[i]!, caption: s.caption })),
      unconditional: unc.slice(0, shown).map((s, i) => ({
        caption: s.caption,
        imageReads: readingText(uncReads, i),
        order: s.order,
      })),
    },
    wallMs: 0,
  };
  report.targets = checkTargets(report);
  report.wallMs = performance.now() - started;
  return report;
}

/** Timed runs per speed measurement (the fastest counts). */
export const SPEED_REPEATS = 3;

/**
 * Sampling speed: `speedRows` full sequences from <bos> with the KV cache and without it (same
 * seed, so the same work), and 9 text -> image samples of one caption with the cache; each the
 * fastest of SPEED_REPEATS runs.
 */
export function measureSpeed(
  model: GPT,
  vocab: Vocab,
  caption: string,
  settingsIn: Partial<EvalSettings> = {},
): SpeedReport {
  const settings = validateEvalSettings(settingsIn);
  const rows = settings.speedRows;
  const prompts = Array.from({ length: rows }, () => Int32Array.from([vocab.bos]));
  // The cached/uncached comparison: plain sampling of whole sequences from <bos>; the 9 images:
  // the report's text -> image settings (guidance and reranking included).
  const t2iOptions = modeOptionsFor(settings, 'textToImage');
  const options = {
    temperature: t2iOptions.temperature,
    textTemperature: t2iOptions.textTemperature,
    topK: t2iOptions.topK,
    topP: t2iOptions.topP,
    seed: settings.seed,
  };
  generate(model, vocab, [Int32Array.from([vocab.bos])], { ...options, maxTokens: 2 }); // warm-up
  // The fastest of three runs of each: timings on a shared machine only ever come out slower.
  const fastest = (fn: () => void): number => {
    let best = Infinity;
    for (let r = 0; r < SPEED_REPEATS; r++) {
      const t0 = performance.now();
      fn();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  };
  const cachedMs = fastest(() => generate(model, vocab, prompts, options));
  const uncachedMs = fastest(() => generateUncached(model, vocab, prompts, options));
  const nineCaptions = Array.from({ length: 9 }, () => caption);
  const nineImagesMs = fastest(() => textToImage(model, vocab, nineCaptions, t2iOptions));
  const newTokensPerRow = SEQUENCE_LENGTH - 1;
  return {
    backend: getBackend().name,
    rows,
    newTokensPerRow,
    cachedMs,
    uncachedMs,
    cachedTokensPerSecond: tokensPerSecond(rows * newTokensPerRow, cachedMs),
    uncachedTokensPerSecond: tokensPerSecond(rows * newTokensPerRow, uncachedMs),
    speedup: uncachedMs / cachedMs,
    nineImagesMs,
    repeats: SPEED_REPEATS,
  };
}

// ---- writing it ------------------------------------------------------------------------------

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function accuracyRow(name: string, a: AttributeAccuracy): string {
  return `| ${name} | ${a.count} | ${pct(a.all)} | ${pct(a.digit)} | ${pct(a.fg)} | ${pct(a.bg)} |`;
}

/** The report as Markdown: settings, targets, each mode, tokenizer, NLL, speed, examples. */
export function renderReportMarkdown(
  report: EvalReport,
  figureFiles: readonly string[] = [],
): string {
  const s = report.settings;
  const c = report.checkpoint;
  const t = report.tokenizer;
  const u = report.unconditional;
  const lines: string[] = [];
  lines.push('# mmgpt evaluation report', '');
  lines.push(
    `Generated ${report.createdAt} by \`mmgpt eval\` on the \`${report.backend}\` backend ` +
      `(the measurements took ${(report.wallMs / 1000).toFixed(1)} s). Every number below, and ` +
      'every setting, is in `report.json` beside this file.',
    '',
  );
  lines.push('## Settings', '');
  lines.push('| setting | value |', '|---|---|');
  lines.push(`| checkpoint | \`${c.path}\` |`);
  lines.push(`| checkpoint SHA-256 | \`${c.sha256}\` |`);
  lines.push(
    `| checkpoint step / epoch | ${c.step} / ${c.epoch}${c.complete ? ' (complete)' : ' (unfinished run)'} |`,
  );
  lines.push(
    `| model | ${c.gptConfig.nLayer} layers, d_model ${c.gptConfig.nEmbd}, ${c.gptConfig.nHead} heads, vocab ${c.gptConfig.vocabSize} |`,
  );
  lines.push(`| tokenizer | \`${t.path}\` (SHA-256 \`${t.sha256}\`) |`);
  lines.push(`| N (test items per mode) | ${s.n} |`);
  lines.push(`| seed | ${s.seed} |`);
  lines.push(
    `| sampling preset | \`${s.samplingPreset}\`` +
      (Object.keys(s.overrides).length > 0 ? `, with ${JSON.stringify(s.overrides)}` : '') +
      ' |',
  );
  for (const mode of MODE_NAMES)
    lines.push(
      `| sampling, ${MODE_LABELS[mode]} | ${describeModeSampling(report.sampling[mode])} |`,
    );
  lines.push('');

  lines.push('## Results against the targets', '');
  lines.push('| metric | value | target | met |', '|---|---|---|---|');
  for (const check of report.targets) {
    const unit = TARGETS.find((x) => x.key === check.key)?.unit ?? 'percent';
    const value = check.value === null ? 'n/a' : formatTargetValue(check.value, unit);
    const met = check.met === null ? 'n/a' : check.met ? 'yes' : 'no';
    lines.push(`| ${check.label} | ${value} | ${check.target} | ${met} |`);
  }
  if (report.testNll !== null) {
    // The references were measured with 1024 image codes; other tokenizers are not comparable.
    const comparable = t.codebookSize === REFERENCE_NLL.codebookSize;
    const met = comparable
      ? report.testNll.natsPerDim <= REFERENCE_NLL.original
        ? 'yes'
        : 'no'
      : `n/a (${t.codebookSize} codes, not ${REFERENCE_NLL.codebookSize})`;
    lines.push(
      `| test NLL (nats/dim) | ${report.testNll.natsPerDim.toFixed(4)} | <= ${REFERENCE_NLL.original} (the original write-up's; published ${REFERENCE_NLL.publishedBest}-${REFERENCE_NLL.publishedWorst}) | ${met} |`,
    );
  }
  lines.push('');

  lines.push('## Default vs without reranking vs the original rules', '');
  lines.push(
    'Each mode on the same items and seed; "default" is the report\'s settings. The cost is the ' +
      'wall time of sampling (reranking included) on this backend.',
    '',
  );
  lines.push('| mode | sampling | settings | score | cost |', '|---|---|---|---|---|');
  for (const r of report.comparisons) {
    const score =
      pct(r.value) + (r.grammatical !== undefined ? ` (grammatical ${pct(r.grammatical)})` : '');
    lines.push(
      `| ${MODE_LABELS[r.mode]} | ${r.variant} | ${r.settings} | ${score} | ${(r.ms / 1000).toFixed(1)} s |`,
    );
  }
  lines.push(
    '',
    'Scores: text -> image, all three attributes right; image -> text, exact match; ' +
      'unconditional, image/caption agreement.',
    '',
  );
  if (report.compositional !== null) {
    const cp = report.compositional;
    lines.push('## Compositional test', '');
    lines.push(
      `The run never saw ${cp.heldOutPairs} legible (foreground, background) pairs together in training. ` +
        `Text -> image on the first ${cp.count} test captions with such a pair (default settings): ` +
        `**${pct(cp.all)}** all three right (digit ${pct(cp.digit)}, fg ${pct(cp.fg)}, bg ${pct(cp.bg)}).`,
      '',
    );
  }

  lines.push('## Text -> image', '');
  lines.push(
    `An image from each of the first ${report.textToImage.count} test captions, read by the attribute classifier.`,
    '',
  );
  lines.push(
    '| images | N | all three | digit | foreground | background |',
    '|---|---|---|---|---|---|',
  );
  lines.push(accuracyRow('generated from the caption', report.textToImage));
  lines.push(accuracyRow('real test images (classifier)', report.classifier.real));
  lines.push(accuracyRow('VQ-VAE reconstructions (ceiling)', report.classifier.reconstructed));
  lines.push('');

  const i2t = report.imageToText;
  lines.push('## Image -> text', '');
  lines.push(
    `A caption for each of the first ${i2t.count} test images (tokenised by the VQ-VAE).`,
    '',
  );
  lines.push(
    '| N | exact match | digit | foreground | background | grammatical |',
    '|---|---|---|---|---|---|',
  );
  lines.push(
    `| ${i2t.count} | ${pct(i2t.exactMatch)} | ${pct(i2t.digit)} | ${pct(i2t.fg)} | ${pct(i2t.bg)} | ${pct(i2t.grammatical)} |`,
  );
  lines.push('');

  lines.push('## Unconditional', '');
  lines.push(
    `${u.count} samples from \`<bos>\`; ${pct(u.textFirst)} chose text first. Agreement: the classifier's reading of the image equals the sample's own caption.`,
    '',
  );
  lines.push('| metric | value |', '|---|---|');
  lines.push(`| grammatical captions | ${pct(u.grammatical)} |`);
  lines.push(`| image/caption agreement (all three) | ${pct(u.agreement)} |`);
  lines.push(
    `| agreement: digit / foreground / background | ${pct(u.agreementDigit)} / ${pct(u.agreementFg)} / ${pct(u.agreementBg)} |`,
  );
  const cov = (x: { seen: number; possible: number }): string => `${x.seen}/${x.possible}`;
  lines.push(
    `| coverage by captions: digits, fg colours, bg colours, colours | ${cov(u.captionCoverage.digits)}, ${cov(u.captionCoverage.fgColours)}, ${cov(u.captionCoverage.bgColours)}, ${cov(u.captionCoverage.colours)} |`,
  );
  lines.push(
    `| coverage by images (classifier): digits, fg, bg, colours | ${cov(u.imageCoverage.digits)}, ${cov(u.imageCoverage.fgColours)}, ${cov(u.imageCoverage.bgColours)}, ${cov(u.imageCoverage.colours)} |`,
  );
  lines.push('');

  lines.push('## Where the errors are (default settings)', '');
  lines.push(
    'Digit confusions (rows: intended, columns: observed; errors only) and the most frequent ' +
      "colour confusions. Text -> image: prompt vs the classifier's reading of the image; " +
      'image -> text: truth vs the caption; unconditional: the caption vs its image.',
    '',
  );
  for (const mode of MODE_NAMES)
    lines.push(...renderErrorSummary(MODE_LABELS[mode], report.errors[mode]));

  lines.push('## Tokenizer and likelihood', '');
  lines.push('| measure | value |', '|---|---|');
  lines.push(
    `| tokenizer pixel accuracy (all 3 channels exact, ${t.count} test images) | ${pct(t.pixelAccuracy)} |`,
  );
  lines.push(
    `| tokenizer value accuracy / exact images | ${pct(t.valueAccuracy)} / ${pct(t.imageAccuracy)} |`,
  );
  lines.push(
    `| codebook usage | ${t.usedCodes}/${t.codebookSize} codes, perplexity ${t.perplexity.toFixed(1)} |`,
  );
  lines.push(`| tokenizer fingerprint | \`${t.fingerprint}\` |`);
  if (report.testNll !== null)
    lines.push(
      `| test NLL | ${report.testNll.natsPerDim.toFixed(4)} nats/dim on ${report.testNll.items} items (${report.testNll.sequences} sequences) |`,
    );
  if (c.trainingFinalTestNll !== null)
    lines.push(`| test NLL recorded by training | ${c.trainingFinalTestNll.toFixed(4)} nats/dim |`);
  const cls = report.classifier;
  lines.push(
    `| attribute classifier | \`${cls.path}\` (${cls.status}); shape convs ${(cls.config.shapeChannels0 ?? 0) > 0 ? `${cls.config.shapeChannels0} (stride 1)/` : ''}${cls.config.shapeChannels1}/${cls.config.shapeChannels2}, ${cls.config.colourChannels} colour detectors, ${cls.settings.epochs} epochs on real train images${(cls.settings.shift ?? 0) > 0 ? ` shifted by up to ${cls.settings.shift} pixels` : ''} |`,
  );
  if (cls.realTestSplit !== null)
    lines.push(
      `| classifier on the whole real test split | ${pct(cls.realTestSplit.all)} all three (${cls.realTestSplit.count} images) |`,
    );
  lines.push('');

  const sp = report.speed;
  lines.push('## Sampling speed', '');
  lines.push('| measure | value |', '|---|---|');
  lines.push(
    `| full sequences from \`<bos>\` (${sp.rows} rows x ${sp.newTokensPerRow} tokens), KV cache | ${sp.cachedTokensPerSecond.toFixed(0)} tokens/s (${sp.cachedMs.toFixed(0)} ms) |`,
  );
  lines.push(
    `| same, uncached (whole prefix every step) | ${sp.uncachedTokensPerSecond.toFixed(0)} tokens/s (${sp.uncachedMs.toFixed(0)} ms) |`,
  );
  lines.push(`| speed-up of the cache | ${sp.speedup.toFixed(1)}x |`);
  lines.push(`| 9 images from one caption | ${sp.nineImagesMs.toFixed(0)} ms |`);
  lines.push(`| backend; each time the fastest of | ${sp.backend}; ${sp.repeats} runs |`);
  lines.push('');

  lines.push('## Examples', '');
  lines.push('| text -> image prompt | the classifier reads the image as |', '|---|---|');
  for (const e of report.examples.textToImage) lines.push(`| ${e.prompt} | ${e.imageReads} |`);
  lines.push('', '| true caption | image -> text caption |', '|---|---|');
  for (const e of report.examples.imageToText) lines.push(`| ${e.truth} | ${e.caption} |`);
  lines.push('', '| unconditional caption | its image reads as | order |', '|---|---|---|');
  for (const e of report.examples.unconditional)
    lines.push(
      `| ${e.caption} | ${e.imageReads} | ${e.order === 1 ? 'text first' : e.order === 2 ? 'image first' : 'none'} |`,
    );
  lines.push('');
  if (figureFiles.length > 0) {
    lines.push('## Sample grids', '');
    for (const f of figureFiles) lines.push(`![${path.basename(f, '.png')}](${f})`, '');
  }
  return lines.join('\n');
}

/** Writes DIR/report.json and DIR/report.md (atomically); returns their paths. */
export function writeReport(
  report: EvalReport,
  dir: string,
  figureFiles: readonly string[] = [],
): { jsonPath: string; mdPath: string } {
  const jsonPath = path.join(dir, 'report.json');
  const mdPath = path.join(dir, 'report.md');
  atomicWriteFile(jsonPath, JSON.stringify(report, null, 2) + '\n');
  atomicWriteFile(mdPath, renderReportMarkdown(report, figureFiles));
  return { jsonPath, mdPath };
}
