// How often a tokenizer keeps the digit and both colours: the attribute classifier reads the
// VQ-VAE reconstructions of the validation split (5,000 training items no new run trains on; the
// split to choose a tokenizer on) and of the test split (for reporting), beside the real images.
// The `seed` weights' full9600 tokenizer trained on the validation items, so its validation
// numbers are optimistic.
//
// Usage: node dist/bench/tokenizer_keep.js [--n 5000] TOKENIZER.safetensors [...]
// Prints a Markdown table: tokenizer, split, N, pixels exact, all three kept (the classifier reads
// the reconstruction right), digit, fg, bg, and "as the real image": the classifier reads the
// reconstruction as it reads the real image, all three (what the tokenizer itself loses, apart
// from the classifier's own errors on real images).

import { parseArgs } from 'util';
import * as path from 'path';
import { loadColouredMnist } from '../src/data/coloured';
import type { ColouredSplit } from '../src/data/coloured';
import { IMAGE_VALUES } from '../src/data/coloured';
import { VALIDATION_ITEMS, partitionTrain } from '../src/data/holdout';
import { ensureClassifier } from '../src/eval/classifier';
import { attributeAccuracy } from '../src/eval/metrics';
import { defaultClassifierPath, shippedClassifierPath } from '../src/commands/eval';
import { loadVqVae, evaluateVqVae } from '../src/vqvae/train';

function main(): void {
  const { values, positionals } = parseArgs({
    options: { n: { type: 'string', default: '5000' } },
    allowPositionals: true,
    strict: true,
  });
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--n must be a positive integer, got ${values.n}`);
  if (positionals.length === 0) throw new Error('name at least one tokenizer .safetensors file');
  const log = (l: string) => console.error(l);
  const data = loadColouredMnist({ log });
  const classifier = ensureClassifier({
    path: defaultClassifierPath(),
    shipped: shippedClassifierPath(),
    train: data.train,
    test: data.test,
    dataSeed: data.seed,
    log,
  });
  const validation = partitionTrain(data.train, {
    validationItems: VALIDATION_ITEMS,
    heldOutPairs: 0,
  }).validation;
  const splits: [string, ColouredSplit][] = [
    ['validation', validation],
    ['test', data.test],
  ];
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(
    '| tokenizer | split | N | pixels exact | keeps all 3 | digit | fg | bg | as the real image |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [name, split] of splits) {
    const count = Math.min(n, split.count);
    const images = split.images.subarray(0, count * IMAGE_VALUES);
    const truth = {
      digit: split.digit.subarray(0, count),
      fg: split.fg.subarray(0, count),
      bg: split.bg.subarray(0, count),
    };
    const onReal = classifier.model.classify(images, count);
    const real = attributeAccuracy(onReal, truth, count);
    console.log(
      `| real images | ${name} | ${count} | | ${pct(real.all)} | ${pct(real.digit)} | ${pct(real.fg)} | ${pct(real.bg)} | |`,
    );
    for (const file of positionals) {
      const tokenizer = loadVqVae(file);
      const evaluation = evaluateVqVae(tokenizer, { images, count });
      const recon = tokenizer.decode(evaluation.codes, count);
      const onRecon = classifier.model.classify(recon, count);
      const kept = attributeAccuracy(onRecon, truth, count);
      const asReal = attributeAccuracy(onRecon, onReal, count);
      console.log(
        `| ${path.relative(process.cwd(), file)} | ${name} | ${count} | ${pct(evaluation.pixelAccuracy)} | ${pct(kept.all)} | ${pct(kept.digit)} | ${pct(kept.fg)} | ${pct(kept.bg)} | ${pct(asReal.all)} |`,
      );
    }
  }
}

main();
