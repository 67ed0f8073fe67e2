// The evaluation report: what it holds (EvalReport, measured by evaluation.ts) and how it is
// written: report.json (every number and every setting) and report.md (the same, readable, each
// number beside its target), one renderer per section. Nothing in either depends on the wall
// clock but the measured timings, so two runs on one machine differ only in those.

import * as path from 'path';
import { atomicWriteFile } from '../nn/safetensors';
import type { ClassifierConfig, ClassifierTrainSettings } from './classifier';
import type { GptConfig } from '../gpt/model';
import type { VqVaeEvaluation } from '../vqvae/evaluate';
import { describeModeSampling, type ModeSampling } from '../sampling/presets';
import { MODE_LABELS, MODE_NAMES, type ModeName } from './modes';
import { renderErrorSummary, type ErrorSummary } from './confusions';
import {
  TARGETS,
  formatTargetValue,
  type AttributeAccuracy,
  type CaptionAccuracy,
  type TargetCheck,
  type UnconditionalMetrics,
} from './metrics';
import type { EvalSettings } from './settings';

export { EVAL_DEFAULTS, validateEvalSettings, type EvalSettings } from './settings';

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

/** The tokenizer's file and its reconstruction scores on the first `count` test images. */
export interface TokenizerReport extends TokenizerInfo, Omit<VqVaeEvaluation, 'codes'> {}

export interface EvalReport {
  format: typeof REPORT_FORMAT;
  version: number;
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
  /** Each mode by default, without reranking and under the original rules (when they differ). */
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

// ---- writing it ------------------------------------------------------------------------------

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function accuracyRow(name: string, a: AttributeAccuracy): string {
  return `| ${name} | ${a.count} | ${pct(a.all)} | ${pct(a.digit)} | ${pct(a.fg)} | ${pct(a.bg)} |`;
}

/** The title and where the report comes from. */
function renderIntro(report: EvalReport): string[] {
  return [
    '# mmgpt evaluation report',
    '',
    `Written by \`mmgpt eval\` on the \`${report.backend}\` backend ` +
      `(the measurements took ${(report.wallMs / 1000).toFixed(1)} s). Every number below, and ` +
      'every setting, is in `report.json` beside this file.',
    '',
  ];
}

/** The checkpoint, the tokenizer and every sampling setting. */
function renderSettings(report: EvalReport): string[] {
  const s = report.settings;
  const c = report.checkpoint;
  const t = report.tokenizer;
  const g = c.gptConfig;
  const overrides =
    Object.keys(s.overrides).length > 0 ? `, with ${JSON.stringify(s.overrides)}` : '';
  return [
    '## Settings',
    '',
    '| setting | value |',
    '|---|---|',
    `| checkpoint | \`${c.path}\` |`,
    `| checkpoint SHA-256 | \`${c.sha256}\` |`,
    `| checkpoint step / epoch | ${c.step} / ${c.epoch}${c.complete ? ' (complete)' : ' (unfinished run)'} |`,
    `| model | ${g.nLayer} layers, d_model ${g.nEmbd}, ${g.nHead} heads, vocab ${g.vocabSize} |`,
    `| tokenizer | \`${t.path}\` (SHA-256 \`${t.sha256}\`) |`,
    `| N (test items per mode) | ${s.n} |`,
    `| seed | ${s.seed} |`,
    `| sampling preset | \`${s.samplingPreset}\`${overrides} |`,
    ...MODE_NAMES.map(
      (mode) =>
        `| sampling, ${MODE_LABELS[mode]} | ${describeModeSampling(report.sampling[mode])} |`,
    ),
    '',
  ];
}

/** Each target with its value, and the test NLL beside the original write-up's. */
function renderTargets(report: EvalReport): string[] {
  const lines = [
    '## Results against the targets',
    '',
    '| metric | value | target | met |',
    '|---|---|---|---|',
  ];
  for (const check of report.targets) {
    const unit = TARGETS.find((x) => x.key === check.key)?.unit ?? 'percent';
    const value = check.value === null ? 'n/a' : formatTargetValue(check.value, unit);
    const met = check.met === null ? 'n/a' : check.met ? 'yes' : 'no';
    lines.push(`| ${check.label} | ${value} | ${check.target} | ${met} |`);
  }
  if (report.testNll !== null) {
    // The references were measured with 1024 image codes; other tokenizers are not comparable.
    const codes = report.tokenizer.codebookSize;
    const met =
      codes !== REFERENCE_NLL.codebookSize
        ? `n/a (${codes} codes, not ${REFERENCE_NLL.codebookSize})`
        : report.testNll.natsPerDim <= REFERENCE_NLL.original
          ? 'yes'
          : 'no';
    lines.push(
      `| test NLL (nats/dim) | ${report.testNll.natsPerDim.toFixed(4)} | <= ${REFERENCE_NLL.original} (the original write-up's; published ${REFERENCE_NLL.publishedBest}-${REFERENCE_NLL.publishedWorst}) | ${met} |`,
    );
  }
  lines.push('');
  return lines;
}

/** Each mode by default, without reranking and under the original rules. */
function renderComparisons(report: EvalReport): string[] {
  const lines = [
    '## Default vs without reranking vs the original rules',
    '',
    'Each mode on the same items and seed; "default" is the report\'s settings. The cost is the ' +
      'wall time of sampling (reranking included) on this backend.',
    '',
    '| mode | sampling | settings | score | cost |',
    '|---|---|---|---|---|',
  ];
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
  return lines;
}

/** Text -> image on the held-out colour pairs (none: no section). */
function renderCompositional(report: EvalReport): string[] {
  const cp = report.compositional;
  if (cp === null) return [];
  return [
    '## Compositional test',
    '',
    `The run never saw ${cp.heldOutPairs} legible (foreground, background) pairs together in training. ` +
      `Text -> image on the first ${cp.count} test captions with such a pair (default settings): ` +
      `**${pct(cp.all)}** all three right (digit ${pct(cp.digit)}, fg ${pct(cp.fg)}, bg ${pct(cp.bg)}).`,
    '',
  ];
}

/** The three modes' scores. */
function renderModes(report: EvalReport): string[] {
  const i2t = report.imageToText;
  const u = report.unconditional;
  const cov = (x: { seen: number; possible: number }): string => `${x.seen}/${x.possible}`;
  const coverage = (c: typeof u.captionCoverage): string =>
    `${cov(c.digits)}, ${cov(c.fgColours)}, ${cov(c.bgColours)}, ${cov(c.colours)}`;
  return [
    '## Text -> image',
    '',
    `An image from each of the first ${report.textToImage.count} test captions, read by the attribute classifier.`,
    '',
    '| images | N | all three | digit | foreground | background |',
    '|---|---|---|---|---|---|',
    accuracyRow('generated from the caption', report.textToImage),
    accuracyRow('real test images (classifier)', report.classifier.real),
    accuracyRow('VQ-VAE reconstructions (ceiling)', report.classifier.reconstructed),
    '',
    '## Image -> text',
    '',
    `A caption for each of the first ${i2t.count} test images (tokenised by the VQ-VAE).`,
    '',
    '| N | exact match | digit | foreground | background | grammatical |',
    '|---|---|---|---|---|---|',
    `| ${i2t.count} | ${pct(i2t.exactMatch)} | ${pct(i2t.digit)} | ${pct(i2t.fg)} | ${pct(i2t.bg)} | ${pct(i2t.grammatical)} |`,
    '',
    '## Unconditional',
    '',
    `${u.count} samples from \`<bos>\`; ${pct(u.textFirst)} chose text first. Agreement: the classifier's reading of the image equals the sample's own caption.`,
    '',
    '| metric | value |',
    '|---|---|',
    `| grammatical captions | ${pct(u.grammatical)} |`,
    `| image/caption agreement (all three) | ${pct(u.agreement)} |`,
    `| agreement: digit / foreground / background | ${pct(u.agreementDigit)} / ${pct(u.agreementFg)} / ${pct(u.agreementBg)} |`,
    `| coverage by captions: digits, fg colours, bg colours, colours | ${coverage(u.captionCoverage)} |`,
    `| coverage by images (classifier): digits, fg, bg, colours | ${coverage(u.imageCoverage)} |`,
    '',
  ];
}

/** The confusions of each mode. */
function renderErrors(report: EvalReport): string[] {
  return [
    '## Where the errors are (default settings)',
    '',
    'Digit confusions (rows: intended, columns: observed; errors only) and the most frequent ' +
      "colour confusions. Text -> image: prompt vs the classifier's reading of the image; " +
      'image -> text: truth vs the caption; unconditional: the caption vs its image.',
    '',
    ...MODE_NAMES.flatMap((mode) => renderErrorSummary(MODE_LABELS[mode], report.errors[mode])),
  ];
}

/** The attribute classifier's row: where it is, its shape and how it was trained. */
function classifierRow(cls: EvalReport['classifier']): string {
  const stride1 =
    (cls.config.shapeChannels0 ?? 0) > 0 ? `${cls.config.shapeChannels0} (stride 1)/` : '';
  const shifted =
    (cls.settings.shift ?? 0) > 0 ? ` shifted by up to ${cls.settings.shift} pixels` : '';
  return (
    `| attribute classifier | \`${cls.path}\` (${cls.status}); shape convs ${stride1}` +
    `${cls.config.shapeChannels1}/${cls.config.shapeChannels2}, ${cls.config.colourChannels} colour detectors, ` +
    `${cls.settings.epochs} epochs on real train images${shifted} |`
  );
}

/** The tokenizer, the test NLL and the classifier. */
function renderTokenizer(report: EvalReport): string[] {
  const t = report.tokenizer;
  const nll = report.testNll;
  const trained = report.checkpoint.trainingFinalTestNll;
  const cls = report.classifier;
  return [
    '## Tokenizer and likelihood',
    '',
    '| measure | value |',
    '|---|---|',
    `| tokenizer pixel accuracy (all 3 channels exact, ${t.count} test images) | ${pct(t.pixelAccuracy)} |`,
    `| tokenizer value accuracy / exact images | ${pct(t.valueAccuracy)} / ${pct(t.imageAccuracy)} |`,
    `| codebook usage | ${t.usedCodes}/${t.codebookSize} codes, perplexity ${t.perplexity.toFixed(1)} |`,
    `| tokenizer fingerprint | \`${t.fingerprint}\` |`,
    ...(nll === null
      ? []
      : [
          `| test NLL | ${nll.natsPerDim.toFixed(4)} nats/dim on ${nll.items} items (${nll.sequences} sequences) |`,
        ]),
    ...(trained === null
      ? []
      : [`| test NLL recorded by training | ${trained.toFixed(4)} nats/dim |`]),
    classifierRow(cls),
    ...(cls.realTestSplit === null
      ? []
      : [
          `| classifier on the whole real test split | ${pct(cls.realTestSplit.all)} all three (${cls.realTestSplit.count} images) |`,
        ]),
    '',
  ];
}

/** The sampling speed. */
function renderSpeed(report: EvalReport): string[] {
  const sp = report.speed;
  return [
    '## Sampling speed',
    '',
    '| measure | value |',
    '|---|---|',
    `| full sequences from \`<bos>\` (${sp.rows} rows x ${sp.newTokensPerRow} tokens), KV cache | ${sp.cachedTokensPerSecond.toFixed(0)} tokens/s (${sp.cachedMs.toFixed(0)} ms) |`,
    `| same, uncached (whole prefix every step) | ${sp.uncachedTokensPerSecond.toFixed(0)} tokens/s (${sp.uncachedMs.toFixed(0)} ms) |`,
    `| speed-up of the cache | ${sp.speedup.toFixed(1)}x |`,
    `| 9 images from one caption | ${sp.nineImagesMs.toFixed(0)} ms |`,
    `| backend; each time the fastest of | ${sp.backend}; ${sp.repeats} runs |`,
    '',
  ];
}

/** The first samples of each mode, and the sample grids. */
function renderExamples(report: EvalReport, figureFiles: readonly string[]): string[] {
  const order = (o: number | null): string =>
    o === 1 ? 'text first' : o === 2 ? 'image first' : 'none';
  const e = report.examples;
  const lines = [
    '## Examples',
    '',
    '| text -> image prompt | the classifier reads the image as |',
    '|---|---|',
    ...e.textToImage.map((x) => `| ${x.prompt} | ${x.imageReads} |`),
    '',
    '| true caption | image -> text caption |',
    '|---|---|',
    ...e.imageToText.map((x) => `| ${x.truth} | ${x.caption} |`),
    '',
    '| unconditional caption | its image reads as | order |',
    '|---|---|---|',
    ...e.unconditional.map((x) => `| ${x.caption} | ${x.imageReads} | ${order(x.order)} |`),
    '',
  ];
  if (figureFiles.length > 0) {
    lines.push('## Sample grids', '');
    for (const f of figureFiles) lines.push(`![${path.basename(f, '.png')}](${f})`, '');
  }
  return lines;
}

/** The report as Markdown: settings, targets, each mode, tokenizer, NLL, speed, examples. */
export function renderReportMarkdown(
  report: EvalReport,
  figureFiles: readonly string[] = [],
): string {
  return [
    ...renderIntro(report),
    ...renderSettings(report),
    ...renderTargets(report),
    ...renderComparisons(report),
    ...renderCompositional(report),
    ...renderModes(report),
    ...renderErrors(report),
    ...renderTokenizer(report),
    ...renderSpeed(report),
    ...renderExamples(report, figureFiles),
  ].join('\n');
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
