// `mmgpt export --format gpt2 --out DIR [--checkpoint PATH]`: the transformer in the GPT-2
// layout plus the tokenizer, vocabulary, test tokens and the test NLL mmgpt computes on them.
// `mmgpt export --format weights --out DIR`: a run as shipped weights (weights/<name>/).
// Thin: parses flags and calls src/pipeline/export.ts.

import * as path from 'path';
import { exportRunAsGpt2, exportWeights } from '../pipeline/export';
import { BACKEND_FLAG, HELP_FLAG, commandFlags, useBackendFlag } from './args';
import type { CommandSpec } from './args';
import { resolveCheckpoint } from '../pipeline/figures';

export const EXPORT_COMMAND: CommandSpec = {
  name: 'export',
  help: `mmgpt export --format gpt2|weights --out DIR [--checkpoint PATH] [--backend js|cpu|cuda|wasm]
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
    ...BACKEND_FLAG,
    ...HELP_FLAG,
  },
};

export async function exportCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(EXPORT_COMMAND, argv);
  if (flags === null) return;
  const format = flags.choice('format', ['gpt2', 'weights'] as const, 'gpt2');
  const out = flags.required('out', 'the directory to write the export to');
  useBackendFlag(flags);
  const checkpointPath = resolveCheckpoint(flags.string('checkpoint'));
  if (format === 'weights') {
    const files = exportWeights(checkpointPath, out);
    console.log(`shipped ${files.join(', ')} from ${path.dirname(checkpointPath)} to ${out}`);
    return;
  }
  const { testNll, files } = exportRunAsGpt2(checkpointPath, out, (l) => console.error(l));
  console.log(`exported ${files.join(', ')} to ${out}; test NLL ${testNll.toFixed(4)} nats/dim`);
}
