// The `mmgpt` command line: parses the subcommand and hands its arguments to a library function.

import { demoCommand } from './commands/demo';
import { exportCommand } from './commands/export';
import { pipelineCommand } from './commands/pipeline';
import { dataCommand } from './commands/data';
import { trainCommand } from './commands/train';
import { benchCommand } from './commands/bench';
import { evalCommand } from './commands/eval';
import { sampleCommand, figuresCommand } from './commands/sample';

type Command = { run: (argv: string[]) => Promise<void>; summary: string };

const commands: Record<string, Command> = {
  pipeline: {
    run: pipelineCommand,
    summary: 'the main job: train a preset, then the sample grids and the evaluation report',
  },
  data: {
    run: dataCommand,
    summary: 'build (or reuse) coloured MNIST v2; --export DIR for other tools',
  },
  train: {
    run: trainCommand,
    summary: 'train the tokenizer and the GPT for a preset (quick, seed, best, tiny)',
  },
  sample: {
    run: sampleCommand,
    summary: 'text->image, image->text or unconditional samples as PNGs + samples.json',
  },
  figures: {
    run: figuresCommand,
    summary: "the seed's sample grids (9 text->image, 9 image->text, 9 unconditional)",
  },
  eval: {
    run: evalCommand,
    summary: 'measure a checkpoint: attribute accuracy, caption exact match, agreement, NLL, speed',
  },
  export: {
    run: exportCommand,
    summary: 'the transformer in the GPT-2 layout (+ tokenizer, vocab, test tokens, test NLL)',
  },
  bench: {
    run: benchCommand,
    summary: 'training-step speed of each backend vs PyTorch and TensorFlow.js; --profile by op',
  },
  demo: { run: demoCommand, summary: 'a tiny GPT learns a toy sequence (engine smoke test)' },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: mmgpt <command> [options]   (mmgpt <command> --help for its options)\n\ncommands:\n${lines.join('\n')}\n\nenvironment: MMGPT_BACKEND=js|cpu|cuda selects the kernel backend (default: fastest available)`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = commands[name];
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
    return 1;
  }
}
