// `mmgpt demo`: the engine end to end in seconds: a tiny GPT learns a toy sequence task
// (continue an arithmetic progression mod 16) and then completes prompts greedily.
// Thin: parses flags and calls runDemo (src/pipeline/demo.ts).

import { runDemo } from '../pipeline/demo';
import { HELP_FLAG, commandFlags } from './args';
import type { CommandSpec } from './args';

export const DEMO_COMMAND: CommandSpec = {
  name: 'demo',
  help: `mmgpt demo [--steps N]
  A tiny GPT learns to continue arithmetic progressions mod 16 (engine smoke test).
  --steps N   training steps, 1 to 100000 (default 300)`,
  flags: { steps: { type: 'string' }, ...HELP_FLAG },
};

export async function demoCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(DEMO_COMMAND, argv);
  if (flags === null) return;
  runDemo(flags.int('steps', { min: 1, max: 100_000 }, 300), (l) => console.log(l));
}
