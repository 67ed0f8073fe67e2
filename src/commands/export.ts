// `mmgpt export --format gpt2 --out DIR [--checkpoint PATH]`: the transformer in the GPT-2
// layout plus the tokenizer, vocabulary, test tokens and the test NLL mmgpt computes on them
// (src/gpt/export.ts says what each file holds).

import * as path from 'path';
import { setBackend } from '../engine/registry';
import { loadColouredMnist } from '../data/coloured';
import { splitSequenceSource } from '../data/sequences';
import { exportGpt2 } from '../gpt/export';
import { loadRun } from '../eval/run';
import { parseFlags, tokenise } from './train';
import { resolveCheckpoint } from './sample';

const HELP = `mmgpt export --format gpt2 --out DIR [--checkpoint PATH] [--backend js|cpu|cuda]
  Writes DIR/config.json, model.safetensors (GPT-2 names and layouts), vqvae.safetensors,
  vocab.json, test_tokens.safetensors (order1, order2: int32 [10000, 58]) and metrics.json
  (test_nll on exactly those tokens). Default checkpoint: the newest complete run, else weights/.`;

export async function exportCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, {
    format: 'string',
    out: 'string',
    checkpoint: 'string',
    backend: 'string',
    help: 'boolean',
  });
  if (flags.help) {
    console.log(HELP);
    return;
  }
  if (flags.format !== undefined && flags.format !== 'gpt2')
    throw new Error(`--format ${flags.format} is not supported (accepted: gpt2)`);
  if (typeof flags.out !== 'string') throw new Error(`--out DIR is required\n${HELP}`);
  if (typeof flags.backend === 'string') setBackend(flags.backend);
  const checkpointPath = resolveCheckpoint(
    typeof flags.checkpoint === 'string' ? flags.checkpoint : undefined,
  );
  const run = loadRun(checkpointPath);
  const data = loadColouredMnist({ log: (l) => console.error(l) });
  const codes = tokenise(run.tokenizer, data.test, 0, (l) => console.error(l));
  const test = splitSequenceSource(data.test, codes, run.vocab);
  const { testNll, files } = exportGpt2({
    model: run.model,
    vocab: run.vocab,
    test,
    outDir: flags.out,
    vqvaePath: run.tokenizerPath,
    provenance: {
      checkpoint: path.relative(process.cwd(), checkpointPath),
      checkpoint_sha256: run.checkpointSha256,
      tokenizer_sha256: run.tokenizerSha256,
    },
  });
  console.log(
    `exported ${files.join(', ')} to ${flags.out}; test NLL ${testNll.toFixed(4)} nats/dim`,
  );
}
