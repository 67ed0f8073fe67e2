// Does a larger GPT pay on this machine? Trains the `best` recipe at several model sizes for the
// same short schedule (warm-up + cosine over E epochs, through the `full` tokenizer, validation
// and 40 colour pairs held out) and scores each on the validation split (5,000 training items no
// run trains on), never on the test split. Each size's run lives in runs/size-<name>-e<E>/ and
// resumes from its checkpoint when the bench is run again.
//
// Usage: node dist/bench/model_size.js [--epochs 2] [--sizes base,l6d256] [--steps N]
//   --steps N: time N steps per size and stop (no training to the end): the cost column only.
// Prints a Markdown table: size, parameters, ms/step, epochs, validation NLL, wall time.

import { parseArgs } from 'util';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CHECKPOINT_FILE, GPT_PRESETS, trainGpt } from '../src/gpt/train';
import type { GptPreset } from '../src/gpt/train';
import { preparePipelineData } from '../src/pipeline/train';
import { tokenise } from '../src/pipeline/tokens';
import { runsDir } from '../src/paths';
import { splitSequenceSource } from '../src/data/sequences';
import { vqVaeFingerprint } from '../src/vqvae/train';
import { setBackend, getBackend } from '../src/engine/registry';

/** Model sizes: overrides of the `best` preset's model. */
export const SIZES: Record<string, Partial<GptPreset['model']>> = {
  base: {},
  l6d192: { nLayer: 6, nEmbd: 192, nHead: 6 },
  l6d256: { nLayer: 6, nEmbd: 256, nHead: 8 },
  l8d256: { nLayer: 8, nEmbd: 256, nHead: 8 },
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      epochs: { type: 'string', default: '2' },
      sizes: { type: 'string', default: 'base,l6d256' },
      steps: { type: 'string', default: '0' },
      backend: { type: 'string', default: 'cpu' },
    },
    strict: true,
  });
  const epochs = Number(values.epochs);
  const steps = Number(values.steps);
  if (!Number.isInteger(epochs) || epochs < 1)
    throw new Error(`--epochs must be a positive integer, got ${values.epochs}`);
  if (!Number.isInteger(steps) || steps < 0)
    throw new Error(`--steps must be a non-negative integer, got ${values.steps}`);
  const names = values.sizes.split(',');
  for (const n of names)
    if (!SIZES[n]) throw new Error(`unknown size '${n}' (known: ${Object.keys(SIZES).join(', ')})`);
  setBackend(values.backend);
  const log = (l: string) => console.error(l);
  const data = preparePipelineData('best', log);
  const validationCodes = tokenise(data.tokenizer, data.validationSplit, 0, log, 'validation');
  const validation = splitSequenceSource(data.validationSplit, validationCodes, data.vocab);
  const rows: string[] = [];
  for (const name of names) {
    const base = GPT_PRESETS.best!;
    const preset: GptPreset = {
      model: { ...base.model, ...SIZES[name] },
      train: { ...base.train, epochs },
    };
    const runDir = path.join(runsDir(), `size-${name}-e${epochs}`);
    const result = await trainGpt({
      runDir,
      preset,
      vocab: data.vocab,
      train: data.train,
      test: validation, // every "test" NLL of this run is the validation split's
      tokenizerHash: vqVaeFingerprint(data.tokenizer),
      resume: fs.existsSync(path.join(runDir, CHECKPOINT_FILE)),
      log,
      stopAfterSteps: steps > 0 ? steps : undefined,
    });
    const params = result.model.parameters().reduce((s, p) => s + p.size, 0);
    const trainSteps = result.log.trainNll.length;
    const msPerStep = result.log.trainMs / Math.max(1, trainSteps);
    const last = result.log.testNll[result.log.testNll.length - 1]!;
    const m = preset.model;
    rows.push(
      `| ${name} | ${m.nLayer} x ${m.nEmbd} (${m.nHead} heads) | ${(params / 1e6).toFixed(2)} M | ` +
        `${msPerStep.toFixed(0)} | ${last.epoch}/${epochs}${result.complete ? '' : ' (stopped)'} | ` +
        `${last.epoch > 0 ? last.nll.toFixed(4) : '-'} | ${(result.log.trainMs / 60000).toFixed(1)} min |`,
    );
  }
  console.log(
    `Model sizes on the \`${getBackend().name}\` backend, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ` +
      `${os.cpus().length} cores; the best recipe, ${epochs} epochs each, validation split ` +
      `(${data.validationSplit.count} items).`,
  );
  console.log('');
  console.log(
    '| size | layers x d_model | parameters | ms/step | epochs | validation NLL | training time |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
