// The `mmgpt` command line: parses the subcommand and hands its arguments to a library function.
// Each command reads its flags through src/commands/args.ts; a command-line error exits with
// status 2, any other error with 1.

import { DEMO_COMMAND, demoCommand } from './commands/demo';
import { EXPORT_COMMAND, exportCommand } from './commands/export';
import { PIPELINE_COMMAND, pipelineCommand } from './commands/pipeline';
import { DATA_COMMAND, dataCommand } from './commands/data';
import { TRAIN_COMMAND, trainCommand } from './commands/train';
import { PRESET_NAMES } from './pipeline/presets';
import { BENCH_COMMAND, benchCommand } from './commands/bench';
import { EVAL_COMMAND, evalCommand } from './commands/eval';
import { FIGURES_COMMAND, SAMPLE_COMMAND, sampleCommand, figuresCommand } from './commands/sample';
import { SITE_COMMAND, siteCommand } from './commands/site';
import { UsageError } from './commands/args';
import type { CommandSpec } from './commands/args';

type Command = { run: (argv: string[]) => Promise<void>; summary: string; spec: CommandSpec };

export const COMMANDS: Record<string, Command> = {
  pipeline: {
    run: pipelineCommand,
    summary: 'the main job: train a preset, then the sample grids and the evaluation report',
    spec: PIPELINE_COMMAND,
  },
  data: {
    run: dataCommand,
    summary: 'build (or reuse) coloured MNIST v2; --export DIR for other tools',
    spec: DATA_COMMAND,
  },
  train: {
    run: trainCommand,
    summary: `train the tokenizer and the GPT for a preset (${PRESET_NAMES.join(', ')})`,
    spec: TRAIN_COMMAND,
  },
  sample: {
    run: sampleCommand,
    summary: 'text->image, image->text or unconditional samples as PNGs + samples.json',
    spec: SAMPLE_COMMAND,
  },
  figures: {
    run: figuresCommand,
    summary:
      'the sample grids of the original write-up (9 text->image, 9 image->text, 9 unconditional)',
    spec: FIGURES_COMMAND,
  },
  eval: {
    run: evalCommand,
    summary: 'measure a checkpoint: attribute accuracy, caption exact match, agreement, NLL, speed',
    spec: EVAL_COMMAND,
  },
  export: {
    run: exportCommand,
    summary: 'the transformer in the GPT-2 layout (+ tokenizer, vocab, test tokens, test NLL)',
    spec: EXPORT_COMMAND,
  },
  site: {
    run: siteCommand,
    summary: 'a static web page that runs the model in the browser (--serve for a local look)',
    spec: SITE_COMMAND,
  },
  bench: {
    run: benchCommand,
    summary: 'training-step speed of each backend vs PyTorch and TensorFlow.js; --profile by op',
    spec: BENCH_COMMAND,
  },
  demo: {
    run: demoCommand,
    summary: 'a tiny GPT learns a toy sequence (engine smoke test)',
    spec: DEMO_COMMAND,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: mmgpt <command> [options]   (mmgpt <command> --help for its options)\n\ncommands:\n${lines.join('\n')}\n\nenvironment: MMGPT_BACKEND=js|cpu|cuda|wasm selects the kernel backend (default: fastest available)`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(`mmgpt: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    console.error(`mmgpt ${name}: ${(e as Error).message}`);
    if (process.env.MMGPT_DEBUG) console.error((e as Error).stack);
    return e instanceof UsageError ? 2 : 1;
  }
}
