// The evaluation end to end on a tiny random run (js backend): every section is filled with
// numbers in range, it is reproducible from its settings, settings are validated, and
// report.json / report.md are written with every setting and the checkpoint hash.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { makeSequenceSource } from '../../src/data/sequences';
import { AttributeClassifier, CLASSIFIER_TRAIN_DEFAULTS } from '../../src/eval/classifier';
import { Rng } from '../../src/nn/rng';
import { loadRun, runFacts } from '../../src/eval/run';
import {
  EVAL_DEFAULTS,
  renderReportMarkdown,
  validateEvalSettings,
  writeReport,
} from '../../src/eval/report';
import { runEvaluation, type EvaluationInputs } from '../../src/eval/evaluation';
import { syntheticSet, writeTinyRun } from './helpers';

setBackend('js');

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-report-'));
const run = loadRun(writeTinyRun(tmp()));
const testSet = syntheticSet(12, 3);
const classifierConfig = {
  shapeChannels0: 0,
  shapeChannels1: 2,
  shapeChannels2: 4,
  shapeHidden: 8,
  colourChannels: 4,
  colourHidden: 8,
  colours: 40,
};
const classifier = new AttributeClassifier(classifierConfig, new Rng(0));
const codes = run.tokenizer.encode(testSet.images, 8);
const nllSource = makeSequenceSource(
  run.vocab.captionTokensBatch(
    testSet.digit.slice(0, 8),
    testSet.fg.slice(0, 8),
    testSet.bg.slice(0, 8),
  ),
  codes,
  run.vocab,
);

function inputs(settings: EvaluationInputs['settings']): EvaluationInputs {
  return {
    model: run.model,
    vocab: run.vocab,
    tokenizer: run.tokenizer,
    classifier,
    test: testSet,
    nllSource,
    ...runFacts(run),
    classifierInfo: {
      path: '/nowhere/classifier.safetensors',
      status: 'trained',
      config: classifierConfig,
      settings: CLASSIFIER_TRAIN_DEFAULTS,
      realTestSplit: null,
    },
    settings,
  };
}

const settings = {
  n: 5,
  seed: 3,
  overrides: {
    temperature: 0.8,
    textTemperature: 0.8,
    topK: 20,
    topP: 0.9,
    guidance: 2,
    grammar: 'none' as const,
    rerank: 2,
  },
  speedRows: 2,
};
const report = runEvaluation(inputs(settings));

test('every section of the report is filled, with numbers in range', () => {
  assert.deepEqual(report.settings, { ...EVAL_DEFAULTS, ...settings });
  assert.equal(report.textToImage.count, 5);
  assert.equal(report.imageToText.count, 5);
  assert.equal(report.unconditional.count, 5);
  assert.equal(report.classifier.real.count, 5);
  assert.equal(report.classifier.reconstructed.count, 5);
  assert.equal(report.tokenizer.count, 5);
  assert.equal(report.tokenizer.codebookSize, run.tokenizer.config.codebookSize);
  const shares = [
    report.textToImage.all,
    report.textToImage.digit,
    report.imageToText.exactMatch,
    report.imageToText.grammatical,
    report.unconditional.grammatical,
    report.unconditional.agreement,
    report.unconditional.textFirst,
    report.tokenizer.pixelAccuracy,
  ];
  for (const s of shares) assert.ok(s >= 0 && s <= 1, `share ${s}`);
  assert.equal(report.testNll?.items, 8);
  assert.equal(report.testNll?.sequences, 16);
  // A random model over ~84 tokens: NLL near ln(84) = 4.4.
  assert.ok(report.testNll!.natsPerDim > 3 && report.testNll!.natsPerDim < 6);
  assert.equal(report.speed.rows, 2);
  assert.equal(report.speed.newTokensPerRow, 57);
  assert.ok(report.speed.cachedTokensPerSecond > 0 && report.speed.uncachedTokensPerSecond > 0);
  assert.ok(report.speed.nineImagesMs > 0);
  assert.equal(report.targets.length, 7);
  // Each mode by default, without reranking and under the original rules.
  assert.deepEqual(
    report.comparisons.map((r) => `${r.mode}/${r.variant}`),
    ['textToImage', 'imageToText', 'unconditional'].flatMap((m) => [
      `${m}/default`,
      `${m}/without reranking`,
      `${m}/original rules`,
    ]),
  );
  for (const r of report.comparisons) assert.ok(r.value >= 0 && r.value <= 1 && r.ms > 0);
  // Unconditional draws the caption first by default, so the caption is a condition to guide by.
  assert.equal(report.sampling.unconditional.guidance, 2);
  assert.equal(report.sampling.imageToText.guidance, 2);
  for (const mode of ['textToImage', 'imageToText', 'unconditional'] as const) {
    const e = report.errors[mode];
    assert.equal(e.count, 5);
    const digitErrors = e.digits.flat().reduce((a, b) => a + b, 0);
    assert.ok(e.wrong >= e.unreadable && e.wrong <= 5 && digitErrors <= e.wrong);
  }
  assert.equal(report.compositional, null);
  assert.ok(report.targets.every((t) => t.value !== null && typeof t.met === 'boolean'));
  assert.equal(report.examples.textToImage.length, 5);
  assert.equal(report.examples.imageToText[0]!.caption.split(' ').length, 6);
  assert.equal(report.checkpoint.trainingFinalTestNll, 3.5);
});

/** The report with every measured time (and the targets on times) taken out. */
function withoutTimings(r: object): unknown {
  const strip = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map((v) => strip(v));
    if (x === null || typeof x !== 'object') return x;
    const o = x as Record<string, unknown>;
    if ('key' in o && /^speed\./.test(String(o.key))) return null; // a target on a time
    return Object.fromEntries(
      Object.entries(o)
        .filter(([k]) => !/(^ms|Ms|PerSecond|^speedup)$/.test(k))
        .map(([k, v]) => [k, strip(v)]),
    );
  };
  return strip(r);
}

test('the report is reproducible from its settings; another seed samples differently', () => {
  const again = runEvaluation(inputs(settings));
  assert.deepEqual(again.examples, report.examples);
  assert.deepEqual(
    { t: again.textToImage.all, i: again.imageToText, u: again.unconditional.agreement },
    {
      t: report.textToImage.all,
      i: { ...report.imageToText, ms: again.imageToText.ms },
      u: report.unconditional.agreement,
    },
  );
  assert.equal(again.testNll!.natsPerDim, report.testNll!.natsPerDim);
  // Nothing but the measured timings differs: no clock time in report.json or report.md.
  assert.deepEqual(withoutTimings(again), withoutTimings(report));
  const dir = tmp();
  writeReport(report, dir);
  assert.equal(
    'createdAt' in JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')),
    false,
  );
  assert.doesNotMatch(
    fs.readFileSync(path.join(dir, 'report.md'), 'utf8'),
    /\d{4}-\d\d-\d\dT\d\d:/,
  );
  const other = runEvaluation(inputs({ ...settings, seed: 4, n: 3, speedRows: 1 }));
  assert.notDeepEqual(other.examples.unconditional, report.examples.unconditional.slice(0, 3));
});

test('impossible settings are refused with what is accepted', () => {
  assert.throws(() => validateEvalSettings({ n: 0 }), /n must be a positive integer/);
  assert.throws(() => validateEvalSettings({ overrides: { temperature: -1 } }), /temperature/);
  assert.throws(
    () => validateEvalSettings({ overrides: { topP: 1.5 } }),
    /topP must be in \(0, 1\]/,
  );
  assert.throws(() => validateEvalSettings({ seed: -2 }), /seed/);
  assert.throws(
    () => validateEvalSettings({ overrides: { grammar: 'strict' as never } }),
    /grammar must be one of none, words, palette/,
  );
  assert.throws(() => validateEvalSettings({ overrides: { rerank: 0 } }), /rerank must be/);
  assert.throws(
    () => validateEvalSettings({ samplingPreset: 'greedy' as never }),
    /sampling preset must be one of default, original/,
  );
});

test('report.json and report.md hold every setting and the checkpoint hash', () => {
  const dir = tmp();
  const { jsonPath, mdPath } = writeReport(report, dir, ['samples_text2image.png']);
  const json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  assert.equal(json.format, 'mmgpt-eval-report');
  assert.deepEqual(json.settings, report.settings);
  assert.equal(json.checkpoint.sha256, run.checkpointSha256);
  assert.match(run.checkpointSha256, /^[0-9a-f]{64}$/);
  assert.equal(json.tokenizer.sha256, run.tokenizerSha256);
  const md = fs.readFileSync(mdPath, 'utf8');
  assert.equal(md, renderReportMarkdown(report, ['samples_text2image.png']));
  for (const needle of [
    run.checkpointSha256,
    '| seed | 3 |',
    '| sampling, text -> image | T 0.8, top-k 20, top-p 0.9, guidance 2, rerank 2 |',
    '| sampling, unconditional | caption first, T 0.8, top-k 20, top-p 0.9, guidance 2, rerank 2 |',
    '| N (test items per mode) | 5 |',
    '| text -> image | original rules | T 1 |',
    'Where the errors are',
    '>= 98.0%',
    'image/caption agreement',
    'pixel accuracy',
    'codebook usage',
    '![samples_text2image](samples_text2image.png)',
  ])
    assert.ok(md.includes(needle), `report.md lacks ${needle}`);
  // The classifier row names its stride-1 conv and its shifted training images when it has them.
  const plain = {
    ...report,
    classifier: { ...report.classifier, settings: { ...report.classifier.settings, shift: 0 } },
  };
  assert.match(renderReportMarkdown(plain), /shape convs 2\/4, .* epochs on real train images \|/);
  const shipped = {
    ...report,
    classifier: {
      ...report.classifier,
      config: { ...report.classifier.config, shapeChannels0: 32 },
      settings: { ...report.classifier.settings, shift: 2 },
    },
  };
  assert.match(
    renderReportMarkdown(shipped),
    /shape convs 32 \(stride 1\)\/2\/4, .* epochs on real train images shifted by up to 2 pixels \|/,
  );
});
