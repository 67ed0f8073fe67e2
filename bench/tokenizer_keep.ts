// How often a tokenizer keeps the digit and both colours: the attribute classifier reads the
// VQ-VAE reconstructions of the validation split (5,000 training items no new run trains on; the
// split to choose a tokenizer on) and of the test split (for reporting), beside the real images.
// The original weights' full9600 tokenizer trained on the validation items, so its validation
// numbers are optimistic.
//
// Usage: node dist/bench/tokenizer_keep.js [--n 5000] [--search C,S[,R[,W]][;...]] [--reader FILE]
//          [--splits validation,test] TOKENIZER.safetensors [...]
// Each tokenizer gets a row for its nearest codes and, if its config has a code search, one for
// that; --search adds rows for each tokenizer encoding with the code search (src/vqvae/search.ts):
// C candidates per cell, S sweeps, R the reach (absent: every cell), W the weight of a reader term
// (absent: none): the tokenizer's own reader, or the attribute classifier in --reader FILE (e.g. a
// perceptual recipe's perceptual-classifier.safetensors); each row also gives the encoding time per image (a searched
// test split is read from the token cache when there, and then the time is the cache's).
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
import { AttributeClassifier, loadClassifier } from '../src/eval/classifier';
import { attributeAccuracy } from '../src/eval/metrics';
import { ensureJudge } from '../src/pipeline/evaluate';
import { loadVqVae, evaluateVqVae } from '../src/vqvae/train';
import { tokenise } from '../src/pipeline/tokens';
import type { CodeSearch } from '../src/vqvae/search';

function main(): void {
  const { values, positionals } = parseArgs({
    options: {
      n: { type: 'string', default: '5000' },
      search: { type: 'string', default: '' },
      reader: { type: 'string' },
      splits: { type: 'string', default: 'validation,test' },
    },
    allowPositionals: true,
    strict: true,
  });
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--n must be a positive integer, got ${values.n}`);
  if (positionals.length === 0) throw new Error('name at least one tokenizer .safetensors file');
  /** A --search item: the reader term's weight apart (its reader is chosen per tokenizer). */
  type Listed = { search: Omit<CodeSearch, 'reader'>; readerWeight?: number };
  const searches: (Listed | undefined)[] = [undefined];
  for (const item of values.search.split(';').filter((x) => x !== '')) {
    const [candidates, sweeps, reach, weight, ...rest] = item.split(',').map(Number);
    if (!Number.isInteger(candidates) || !Number.isInteger(sweeps) || rest.length > 0)
      throw new Error(
        `--search: expected C,S or C,S,R or C,S,R,W (candidates, sweeps, reach, reader weight), got '${item}'`,
      );
    const search: CodeSearch = { candidates: candidates!, sweeps: sweeps! };
    if (reach !== undefined) search.reach = reach;
    searches.push(weight === undefined ? { search } : { search, readerWeight: weight });
  }
  const readerModel = values.reader ? loadClassifier(values.reader).model : undefined;
  const wanted = values.splits.split(',');
  for (const name of wanted)
    if (name !== 'validation' && name !== 'test')
      throw new Error(`--splits: expected validation and/or test, got '${name}'`);
  const log = (l: string) => console.error(l);
  const data = loadColouredMnist({ log });
  const classifier = ensureJudge(data, log);
  const validation = partitionTrain(data.train, {
    validationItems: VALIDATION_ITEMS,
    heldOutPairs: 0,
  }).validation;
  const splits = (
    [
      ['validation', validation],
      ['test', data.test],
    ] as [string, ColouredSplit][]
  ).filter(([name]) => wanted.includes(name));
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(
    '| tokenizer | encoding | split | N | pixels exact | keeps all 3 | digit | fg | bg | as the real image | ms/image |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
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
      `| real images | | ${name} | ${count} | | ${pct(real.all)} | ${pct(real.digit)} | ${pct(real.fg)} | ${pct(real.bg)} | | |`,
    );
    for (const file of positionals) {
      const loaded = loadVqVae(file);
      // The nearest codes, the file's own code search if it has one, then each --search.
      const own = loaded.config.codeSearch;
      for (const listed of own ? [undefined, { own }, ...searches.slice(1)] : searches) {
        let search: CodeSearch | undefined;
        let reader: AttributeClassifier | undefined;
        if (listed !== undefined && 'own' in listed) search = listed.own;
        else if (listed !== undefined) {
          search = { ...listed.search };
          if (listed.readerWeight !== undefined) {
            reader = readerModel ?? loaded.reader ?? undefined;
            if (reader === undefined)
              throw new Error(`${file} carries no reader: name one with --reader FILE`);
            search.reader = { weight: listed.readerWeight, classifier: reader.config };
          }
        }
        const tokenizer = loaded.withCodeSearch(search, reader);
        const t0 = performance.now();
        // A searching tokenizer's test codes go through the pipelines' token cache (data/tokens/):
        // they are slow to make, and a GPT trained through the tokenizer reads the same file.
        const codes =
          search && split === data.test ? tokenise(tokenizer, split, count, log) : undefined;
        const evaluation = evaluateVqVae(tokenizer, { images, count }, { codes });
        const msPerImage = (performance.now() - t0) / count;
        const recon = tokenizer.decode(evaluation.codes, count);
        const onRecon = classifier.model.classify(recon, count);
        const kept = attributeAccuracy(onRecon, truth, count);
        const asReal = attributeAccuracy(onRecon, onReal, count);
        const encoding = search
          ? `search ${search.candidates} x ${search.sweeps}` +
            (search.reach === undefined ? '' : `, reach ${search.reach}`) +
            (search.reader === undefined ? '' : `, reader ${search.reader.weight}`)
          : 'nearest';
        console.log(
          `| ${path.relative(process.cwd(), file)} | ${encoding} | ${name} | ${count} | ${pct(evaluation.pixelAccuracy)} | ${pct(kept.all)} | ${pct(kept.digit)} | ${pct(kept.fg)} | ${pct(kept.bg)} | ${pct(asReal.all)} | ${msPerImage.toFixed(1)} |`,
        );
        tokenizer.dispose();
      }
      loaded.dispose();
    }
  }
}

main();
