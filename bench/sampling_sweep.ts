// The sampling sweep that chose the defaults: each mode under a grid of settings (temperature of
// image codes and of words, top-k, guidance, grammar, reranking K and its score), scored on the
// validation split (5,000 training items no new run trains on), never on the test split.
// Prints one Markdown table per mode (the README's sweep table) and, with --json, every number.
//
// Usage: node dist/bench/sampling_sweep.js [--checkpoint PATH] [--split validation|test]
//        [--n 200] [--seed 0] [--modes textToImage,imageToText,unconditional] [--json FILE]
//        [--backend cpu] [--rows 'TEXT;...']  (only the rows whose label contains one of TEXT; labels hold commas)
// The grid is SWEEP below; each row's cost is its sampling wall time (reranking included).

import * as fs from 'fs';
import { parseArgs } from 'util';
import { setBackend, getBackend } from '../src/engine/registry';
import { loadColouredMnist } from '../src/data/coloured';
import { partitionTrain, VALIDATION_ITEMS } from '../src/data/holdout';
import { loadRun } from '../src/eval/run';
import { resolveCheckpoint } from '../src/pipeline/figures';
import { ensureJudge } from '../src/pipeline/evaluate';
import { MODE_LABELS, MODE_NAMES, headline, scoreMode, type ModeName } from '../src/eval/modes';
import type { ModeOptions } from '../src/sampling/modes';

/** The grid: a label and the settings of each row, per mode. */
const SWEEP: Record<ModeName, [string, ModeOptions][]> = {
  textToImage: [
    ['original rules (T 1)', {}],
    ['T 0.7', { temperature: 0.7 }],
    ['guidance 2', { guidance: 2 }],
    ['guidance 2, greedy', { guidance: 2, temperature: 0 }],
    ['rerank 4', { rerank: 4 }],
    ['rerank 8', { rerank: 8 }],
    ['guidance 1.5, rerank 4', { guidance: 1.5, rerank: 4 }],
    ['guidance 2, rerank 4', { guidance: 2, rerank: 4 }],
    ['guidance 2, top-k 64, rerank 4', { guidance: 2, topK: 64, rerank: 4 }],
    ['guidance 3, rerank 4', { guidance: 3, rerank: 4 }],
    ['guidance 1.5, rerank 8', { guidance: 1.5, rerank: 8 }],
    ['guidance 1.5, rerank 16', { guidance: 1.5, rerank: 16 }],
    ['guidance 2, T 0.8, rerank 8', { guidance: 2, temperature: 0.8, rerank: 8 }],
    ['guidance 2, T 0.5, rerank 4', { guidance: 2, temperature: 0.5, rerank: 4 }],
    ['guidance 2, T 0.3, rerank 4', { guidance: 2, temperature: 0.3, rerank: 4 }],
    ['guidance 1.5, T 0.5, rerank 4', { guidance: 1.5, temperature: 0.5, rerank: 4 }],
    ['guidance 2, top-k 4, rerank 4', { guidance: 2, topK: 4, rerank: 4 }],
    ['guidance 1.5, T 0.3, rerank 4', { guidance: 1.5, temperature: 0.3, rerank: 4 }],
    ['guidance 1.5, T 0.5, rerank 8', { guidance: 1.5, temperature: 0.5, rerank: 8 }],
    ['guidance 1.25, T 0.5, rerank 4', { guidance: 1.25, temperature: 0.5, rerank: 4 }],
    [
      'guidance 1.5, T 0.5, rerank 4, digit search',
      { guidance: 1.5, temperature: 0.5, rerank: 4, digitSearch: true },
    ],
    [
      'guidance 1.5, T 0.5, rerank 8, digit search',
      { guidance: 1.5, temperature: 0.5, rerank: 8, digitSearch: true },
    ],
    [
      'guidance 1.5, T 0.8, rerank 8, digit search',
      { guidance: 1.5, temperature: 0.8, rerank: 8, digitSearch: true },
    ],
    [
      'guidance 1.5, T 1, rerank 8, digit search',
      { guidance: 1.5, temperature: 1, rerank: 8, digitSearch: true },
    ],
  ],
  imageToText: [
    ['original rules (T 1)', {}],
    ['grammar words', { grammar: 'words' }],
    ['greedy, grammar words', { temperature: 0, grammar: 'words' }],
    ['rerank 4 (both)', { rerank: 4 }],
    ['rerank 8 (both)', { rerank: 8 }],
    ['rerank 8 (caption only)', { rerank: 8, imageToTextScore: 'caption' }],
    ['rerank 8 (image only)', { rerank: 8, imageToTextScore: 'image' }],
    ['grammar words, rerank 8 (both)', { grammar: 'words', rerank: 8 }],
    ['grammar palette, rerank 8 (both)', { grammar: 'palette', rerank: 8 }],
    ['grammar words, word T 1.5, rerank 8', { grammar: 'words', textTemperature: 1.5, rerank: 8 }],
    ['rerank 4 (image), digit search', { rerank: 4, imageToTextScore: 'image', digitSearch: true }],
    ['rerank 8 (image), digit search', { rerank: 8, imageToTextScore: 'image', digitSearch: true }],
    ['rerank 8 (both), digit search', { rerank: 8, digitSearch: true }],
    [
      'rerank 8 (both), digit and colour search',
      { rerank: 8, digitSearch: true, colourSearch: true },
    ],
    [
      'rerank 8 (image), digit and colour search',
      { rerank: 8, imageToTextScore: 'image', digitSearch: true, colourSearch: true },
    ],
    [
      'word T 0.7, rerank 8 (both), digit search',
      { textTemperature: 0.7, rerank: 8, digitSearch: true },
    ],
    [
      'word T 0.5, rerank 8 (both), digit search',
      { textTemperature: 0.5, rerank: 8, digitSearch: true },
    ],
    [
      'word T 1.5, rerank 8 (both), digit search',
      { textTemperature: 1.5, rerank: 8, digitSearch: true },
    ],
    ['rerank 16 (both), digit search', { rerank: 16, digitSearch: true }],
    [
      'rerank 8 (both), digit search, shift views',
      { rerank: 8, digitSearch: true, shiftViews: true },
    ],
    [
      'rerank 8 (both), digit and colour search, shift views',
      { rerank: 8, digitSearch: true, colourSearch: true, shiftViews: true },
    ],
    ...[
      [8, false, 0, 1, 3],
      [8, true, 0, 1, 3],
      [4, true, 0, 1, 3],
      [8, true, 0, 1, 2],
      [4, true, 0, 1, 2],
    ].map(([k, legible, fg, bg, v]): [string, ModeOptions] => [
      `rerank ${k} (both), colour search (${legible ? 'legible, ' : ''}foreground top ${fg}, background top ${bg}), shift views (top ${v})`,
      {
        rerank: k as number,
        colourSearch: true,
        legibleSearch: legible as boolean,
        foregroundShortlist: fg as number,
        backgroundShortlist: bg as number,
        shiftViews: true,
        viewShortlist: v as number,
      },
    ]),
  ],
  unconditional: [
    ['original rules (T 1)', {}],
    ['grammar words', { grammar: 'words' }],
    ['rerank 4', { rerank: 4 }],
    ['rerank 8', { rerank: 8 }],
    ['rerank 16', { rerank: 16 }],
    ['image T 0.8, rerank 8', { temperature: 0.8, textTemperature: 1, rerank: 8 }],
    ['grammar words, rerank 8', { grammar: 'words', rerank: 8 }],
    ['image T 0.5, rerank 8', { temperature: 0.5, textTemperature: 1, rerank: 8 }],
    ['image T 0.3, rerank 8', { temperature: 0.3, textTemperature: 1, rerank: 8 }],
    ['image T 0.5, rerank 16', { temperature: 0.5, textTemperature: 1, rerank: 16 }],
    [
      'grammar words, image T 0.8, rerank 16',
      { grammar: 'words', temperature: 0.8, textTemperature: 1, rerank: 16 },
    ],
    [
      'image T 0.8, rerank 8, digit search',
      { temperature: 0.8, textTemperature: 1, rerank: 8, digitSearch: true },
    ],
    [
      'image T 0.5, rerank 8, digit search',
      { temperature: 0.5, textTemperature: 1, rerank: 8, digitSearch: true },
    ],
    [
      'caption first, image T 0.8, rerank 8',
      { captionFirst: true, temperature: 0.8, textTemperature: 1, rerank: 8 },
    ],
    [
      'caption first, image T 0.5, guidance 1.5, rerank 4',
      { captionFirst: true, temperature: 0.5, textTemperature: 1, guidance: 1.5, rerank: 4 },
    ],
    [
      'caption first, image T 0.5, guidance 1.5, rerank 8',
      { captionFirst: true, temperature: 0.5, textTemperature: 1, guidance: 1.5, rerank: 8 },
    ],
    [
      'caption first, grammar words, image T 0.5, guidance 1.5, rerank 4',
      {
        captionFirst: true,
        grammar: 'words',
        temperature: 0.5,
        textTemperature: 1,
        guidance: 1.5,
        rerank: 4,
      },
    ],
    [
      'caption first, grammar palette, image T 0.5, guidance 1.5, rerank 4',
      {
        captionFirst: true,
        grammar: 'palette',
        temperature: 0.5,
        textTemperature: 1,
        guidance: 1.5,
        rerank: 4,
      },
    ],
    [
      'caption first, grammar legible, image T 0.5, guidance 1.5, rerank 4',
      {
        captionFirst: true,
        grammar: 'legible',
        temperature: 0.5,
        textTemperature: 1,
        guidance: 1.5,
        rerank: 4,
      },
    ],
    [
      'caption first, grammar palette, image T 0.5, guidance 1.5, rerank 8',
      {
        captionFirst: true,
        grammar: 'palette',
        temperature: 0.5,
        textTemperature: 1,
        guidance: 1.5,
        rerank: 8,
      },
    ],
  ],
};

function main(): void {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string' },
      split: { type: 'string', default: 'validation' },
      n: { type: 'string', default: '200' },
      seed: { type: 'string', default: '0' },
      modes: { type: 'string', default: MODE_NAMES.join(',') },
      rows: { type: 'string' },
      json: { type: 'string' },
      backend: { type: 'string' },
    },
    strict: true,
  });
  if (values.backend !== undefined) setBackend(values.backend);
  const n = Number(values.n);
  const seed = Number(values.seed);
  if (!(Number.isInteger(n) && n >= 1))
    throw new Error(`--n must be a positive integer, got ${values.n}`);
  if (!(Number.isInteger(seed) && seed >= 0)) throw new Error(`--seed must be an integer >= 0`);
  if (values.split !== 'validation' && values.split !== 'test')
    throw new Error(`--split must be validation or test, got ${values.split}`);
  const modes = values.modes!.split(',') as ModeName[];
  for (const m of modes)
    if (!MODE_NAMES.includes(m))
      throw new Error(`--modes: unknown mode '${m}' (known: ${MODE_NAMES.join(', ')})`);

  const checkpoint = resolveCheckpoint(values.checkpoint);
  const run = loadRun(checkpoint);
  const data = loadColouredMnist({ log: () => undefined });
  const classifier = ensureJudge(data, (l) => console.error(l));
  const held = Number(run.meta.trainConfig.validationItems ?? 0);
  const items =
    values.split === 'test'
      ? data.test
      : partitionTrain(data.train, { validationItems: VALIDATION_ITEMS, heldOutPairs: 0 })
          .validation;
  const count = Math.min(n, items.count);
  console.log(
    `# sampling sweep: ${checkpoint}, ${values.split} split (${count} items), seed ${seed}, ${getBackend().name} backend`,
  );
  if (values.split === 'validation' && held < VALIDATION_ITEMS)
    console.log(
      `(note: this checkpoint was trained with validationItems ${held}: the validation items were in its training set)`,
    );
  const ctx = {
    model: run.model,
    vocab: run.vocab,
    tokenizer: run.tokenizer,
    classifier: classifier.model,
    truth: { digit: items.digit, fg: items.fg, bg: items.bg },
    codes: run.tokenizer.encode(items.images, count),
    images: items.images,
    n: count,
  };
  const rows: Record<string, unknown>[] = [];
  for (const mode of modes) {
    const metric =
      mode === 'textToImage' ? 'all 3 right' : mode === 'imageToText' ? 'exact match' : 'agreement';
    console.log(
      `\n## ${MODE_LABELS[mode]}\n\n| settings | ${metric} | detail | ms |\n|---|---|---|---|`,
    );
    const only = values.rows?.split(';');
    for (const [label, options] of SWEEP[mode]) {
      if (only !== undefined && !only.some((o) => label.includes(o))) continue;
      const r = scoreMode(ctx, mode, { ...options, seed });
      const detail =
        r.mode === 'textToImage'
          ? `digit ${(100 * r.accuracy.digit).toFixed(1)}, fg ${(100 * r.accuracy.fg).toFixed(1)}, bg ${(100 * r.accuracy.bg).toFixed(1)}`
          : r.mode === 'imageToText'
            ? `digit ${(100 * r.accuracy.digit).toFixed(1)}, fg ${(100 * r.accuracy.fg).toFixed(1)}, bg ${(100 * r.accuracy.bg).toFixed(1)}`
            : `grammatical ${(100 * r.metrics.grammatical).toFixed(1)}, colours seen ${r.metrics.captionCoverage.colours.seen}`;
      console.log(
        `| ${label} | ${(100 * headline(r)).toFixed(1)}% | ${detail} | ${r.ms.toFixed(0)} |`,
      );
      rows.push({ mode, label, options, value: headline(r), ms: r.ms });
    }
  }
  if (values.json !== undefined)
    fs.writeFileSync(
      values.json,
      JSON.stringify({ checkpoint, split: values.split, n: count, seed, rows }, null, 2) + '\n',
    );
}

main();
