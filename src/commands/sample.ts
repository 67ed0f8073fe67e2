// `mmgpt sample` (samples of one mode written as PNGs + samples.json) and `mmgpt figures` (the
// nine-sample grids in figures/): parse the flags, call src/pipeline/figures.ts, print.
//
// Every argument of `mmgpt sample` is checked before the checkpoint is loaded, so a bad prompt
// (unknown word, wrong word count, colour not in the palette: parseCaption's messages) or a bad
// image (wrong size, levels that do not quantise: readLevelsPng's messages) fails at once with a
// message that says what is accepted.

import * as path from 'path';
import { setBackend } from '../engine/registry';
import { captionText, parseCaption } from '../data/vocab';
import { readLevelsPng } from '../viz/png';
import {
  FIGURE_FILES,
  SAMPLE_MODES,
  drawSamples,
  resolveCheckpoint,
  writeFigures,
  writeSamples,
  type SampleMode,
  type SampleRequest,
} from '../pipeline/figures';
import { loadRun } from '../eval/run';
import { SAMPLING_FLAGS, SAMPLING_HELP, samplingSettingsFromFlags } from './sampling';
import {
  BACKEND_CHOICES,
  BACKEND_FLAG,
  HELP_FLAG,
  commandFlags,
  parseCommandLine,
  useBackendFlag,
} from './args';
import type { CommandSpec, Flags } from './args';

// Moved to src/pipeline/figures.ts; still importable from here by commands/export.ts, bench/ and
// notebook 05.

// ---- mmgpt sample ----------------------------------------------------------------------------

export interface SampleArgs extends SampleRequest {
  checkpoint: string | null;
  out: string;
  backend: string | null;
}

export const SAMPLE_COMMAND: CommandSpec = {
  name: 'sample',
  help: `mmgpt sample --mode text2image|image2text|unconditional
             [--prompt "dark green eight on bright cyan" | --image FILE.png]
             [--n N] [sampling flags] [--checkpoint PATH]
             [--backend js|cpu|cuda|wasm] --out DIR
  text2image needs --prompt (a 6-word caption "<shade> <colour> <digit> on <shade> <colour>");
  image2text needs --image (a 28x28 PNG of coloured-MNIST levels 0, 85, 170, 255, or an exact
  upscale); unconditional needs neither. Writes DIR/sample_000.png ..., DIR/grid.png and
  DIR/samples.json. --guidance (1 = off) applies to text2image and image2text.
  --n N               samples, 1 to 10000 (default 9)
${SAMPLING_HELP}`,
  flags: {
    mode: { type: 'string' },
    prompt: { type: 'string' },
    image: { type: 'string' },
    n: { type: 'string' },
    checkpoint: { type: 'string' },
    out: { type: 'string' },
    ...BACKEND_FLAG,
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

/** The prompt of text2image (normalised) and the image of image2text, read and checked. */
function promptAndImage(
  flags: Flags,
  mode: SampleMode,
): Pick<SampleRequest, 'prompt' | 'imagePath' | 'image'> {
  if (mode === 'text2image') {
    const text = flags.string('prompt');
    if (text === undefined)
      throw new Error(
        '--mode text2image needs --prompt "<shade> <colour> <digit> on <shade> <colour>", ' +
          'e.g. --prompt "dark green eight on bright cyan"',
      );
    const c = parseCaption(text); // throws listing the accepted words
    return { prompt: captionText(c.digit, c.fg, c.bg), imagePath: null, image: null };
  }
  if (mode === 'image2text') {
    const imagePath = flags.string('image');
    if (imagePath === undefined)
      throw new Error('--mode image2text needs --image FILE.png (a 28x28 coloured-MNIST image)');
    // Throws on a wrong size or off-level colours.
    return { prompt: null, imagePath, image: readLevelsPng(imagePath) };
  }
  return { prompt: null, imagePath: null, image: null };
}

/** Reads and checks every argument of `mmgpt sample` (prompt and image included). */
export function sampleArgs(argv: string[]): SampleArgs | 'help' {
  const flags = parseCommandLine(SAMPLE_COMMAND, argv);
  if (flags.help) return 'help';
  const mode = flags.choice('mode', SAMPLE_MODES);
  if (mode === undefined) throw new Error(`--mode is required: one of ${SAMPLE_MODES.join(', ')}`);
  const n = flags.int('n', { min: 1, max: 10_000 }, 9);
  const settings = samplingSettingsFromFlags(flags);
  const out = flags.required('out', 'the directory for the PNGs and samples.json');
  const onlyFor = (m: SampleMode) => () => `is only for --mode ${m} (this is --mode ${mode})`;
  flags.refuseUnless(mode === 'text2image', ['prompt'], onlyFor('text2image'));
  flags.refuseUnless(mode === 'image2text', ['image'], onlyFor('image2text'));
  flags.refuseUnless(
    mode !== 'unconditional' || settings.overrides.guidance === undefined,
    ['guidance'],
    () => 'needs a condition: use it with --mode text2image or image2text, not unconditional',
  );
  return {
    ...settings,
    mode,
    n,
    ...promptAndImage(flags, mode),
    checkpoint: flags.string('checkpoint') ?? null,
    out,
    backend: flags.choice('backend', BACKEND_CHOICES) ?? null,
  };
}

export async function sampleCommand(argv: string[]): Promise<void> {
  const args = sampleArgs(argv);
  if (args === 'help') {
    console.log(SAMPLE_COMMAND.help);
    return;
  }
  if (args.backend !== null) setBackend(args.backend);
  const run = loadRun(resolveCheckpoint(args.checkpoint ?? undefined));
  const t0 = performance.now();
  const samples = drawSamples(run, args);
  const ms = performance.now() - t0;
  const json = writeSamples(run, args, samples, args.out);
  for (const s of json.samples) console.log(`${s.image}: ${s.caption}`);
  console.log(
    `sample: ${samples.length} ${args.mode} samples in ${ms.toFixed(0)} ms from ` +
      `${path.relative(process.cwd(), run.checkpointPath) || run.checkpointPath}; wrote ` +
      `${path.join(args.out, 'samples.json')}`,
  );
}

// ---- mmgpt figures ---------------------------------------------------------------------------

export const FIGURES_COMMAND: CommandSpec = {
  name: 'figures',
  help: `mmgpt figures [--checkpoint PATH] [sampling flags] [--backend js|cpu|cuda|wasm] [--out DIR]
  Draws the nine-sample grids into DIR (default figures/): ${Object.values(FIGURE_FILES).join(', ')}.
${SAMPLING_HELP}`,
  flags: {
    checkpoint: { type: 'string' },
    ...BACKEND_FLAG,
    out: { type: 'string' },
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

export async function figuresCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(FIGURES_COMMAND, argv);
  if (flags === null) return;
  const sampling = samplingSettingsFromFlags(flags);
  useBackendFlag(flags);
  const { files } = await writeFigures({
    checkpoint: flags.string('checkpoint'),
    outDir: flags.string('out'),
    sampling,
    log: (line) => console.log(line),
  });
  for (const file of files)
    console.log(`figures: wrote ${path.relative(process.cwd(), file) || file}`);
}
