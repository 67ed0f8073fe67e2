// `mmgpt export --format gpt2 --out DIR [--checkpoint PATH]`: the transformer in the GPT-2
// layout plus the tokenizer, vocabulary, test tokens and the test NLL mmgpt computes on them
// (src/gpt/export.ts says what each file holds).
// `mmgpt export --format weights --out DIR`: a run as shipped weights (weights/<name>/): the
// checkpoint without its optimiser state, the tokenizer, and the run's log and summary.

import * as fs from 'fs';
import * as path from 'path';
import { setBackend } from '../engine/registry';
import { loadColouredMnist } from '../data/coloured';
import { splitSequenceSource } from '../data/sequences';
import { exportGpt2 } from '../gpt/export';
import { loadRun, TOKENIZER_FILE } from '../eval/run';
import { loadCheckpoint, saveCheckpoint } from '../gpt/checkpoint';
import { CHECKPOINT_FILE, LOG_FILE } from '../gpt/train';
import { tokenise } from './train';
import { BACKEND_CHOICES, HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';
import { resolveCheckpoint } from './sample';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';

export const EXPORT_COMMAND: CommandSpec = {
  name: 'export',
  help: `mmgpt export --format gpt2|weights --out DIR [--checkpoint PATH] [--backend js|cpu|cuda]
  gpt2 (default): writes DIR/config.json, model.safetensors (GPT-2 names and layouts),
    vqvae.safetensors, vocab.json, test_tokens.safetensors (order1, order2: int32 [10000, 58])
    and metrics.json (test_nll on exactly those tokens).
  weights: writes DIR/checkpoint.safetensors (the weights and run metadata, without the
    optimiser state), vqvae.safetensors, and the run's log.json and summary.json where present:
    what weights/original/ ships. The checkpoint must be complete.
  Default checkpoint: the newest complete run, else weights/.`,
  flags: {
    format: { type: 'string' },
    out: { type: 'string' },
    checkpoint: { type: 'string' },
    backend: { type: 'string' },
    ...HELP_FLAG,
  },
};

/** Summary file a finished run leaves beside its log. */
const SUMMARY_FILE = 'summary.json';

/**
 * Copies a finished run into `outDir` as shipped weights: the checkpoint without optimiser
 * state, its tokenizer, log and summary. Returns the files written.
 */
export function exportWeights(checkpointPath: string, outDir: string): string[] {
  const ckpt = loadCheckpoint(checkpointPath);
  if (!ckpt.meta.complete) {
    throw new Error(
      `${checkpointPath}: the run is not complete (step ${ckpt.meta.step}); finish it with ` +
        `mmgpt train --resume before shipping its weights`,
    );
  }
  const runDir = path.dirname(checkpointPath);
  const tokenizer = path.join(runDir, TOKENIZER_FILE);
  if (!fs.existsSync(tokenizer)) throw new Error(`${runDir} has no ${TOKENIZER_FILE}`);
  makeDirectory(outDir);
  saveCheckpoint(path.join(outDir, CHECKPOINT_FILE), { ...ckpt, optimizer: null });
  const files = [CHECKPOINT_FILE];
  for (const name of [TOKENIZER_FILE, LOG_FILE, SUMMARY_FILE]) {
    const src = path.join(runDir, name);
    if (!fs.existsSync(src)) continue;
    if (path.resolve(src) !== path.resolve(outDir, name))
      atomicWriteFile(path.join(outDir, name), fs.readFileSync(src));
    files.push(name);
  }
  return files;
}

export async function exportCommand(argv: string[]): Promise<void> {
  const flags = parseCommandLine(EXPORT_COMMAND, argv);
  if (flags.help) {
    console.log(EXPORT_COMMAND.help);
    return;
  }
  const format = flags.choice('format', ['gpt2', 'weights'] as const, 'gpt2');
  const out = flags.required('out', 'the directory to write the export to');
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
  const checkpointPath = resolveCheckpoint(flags.string('checkpoint'));
  if (format === 'weights') {
    const files = exportWeights(checkpointPath, out);
    console.log(`shipped ${files.join(', ')} from ${path.dirname(checkpointPath)} to ${out}`);
    return;
  }
  const run = loadRun(checkpointPath);
  const data = loadColouredMnist({ log: (l) => console.error(l) });
  const codes = tokenise(run.tokenizer, data.test, 0, (l) => console.error(l));
  const test = splitSequenceSource(data.test, codes, run.vocab);
  const { testNll, files } = exportGpt2({
    model: run.model,
    vocab: run.vocab,
    test,
    outDir: out,
    vqvaePath: run.tokenizerPath,
    provenance: {
      checkpoint: path.relative(process.cwd(), checkpointPath),
      checkpoint_sha256: run.checkpointSha256,
      tokenizer_sha256: run.tokenizerSha256,
    },
  });
  console.log(`exported ${files.join(', ')} to ${out}; test NLL ${testNll.toFixed(4)} nats/dim`);
}
