// The command-line layer: what parseCommandLine refuses and how it says so, the validating
// accessors with their ranges, and a walk over every `mmgpt` command with an unknown flag and a
// misspelt one (each refused with exit status 2, naming the flag, before the command does
// anything), and every command's --help listing every flag it takes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main, COMMANDS } from '../../src/cli';
import { UsageError, nearestFlag, parseCommandLine } from '../../src/commands/args';
import type { CommandSpec } from '../../src/commands/args';
import { SAMPLING_FLAGS, samplingSettingsFromFlags } from '../../src/commands/sampling';
import { SAMPLING_SETTINGS } from '../../src/sampling/settings';

const spec: CommandSpec = {
  name: 'try',
  help: 'mmgpt try [--out DIR] [--n N] [--json] [--guidance G] [--save [LABEL]]',
  flags: {
    out: { type: 'string' },
    n: { type: 'string' },
    json: { type: 'boolean' },
    guidance: { type: 'string' },
    save: { type: 'string', optionalValue: true },
    help: { type: 'boolean', short: 'h' },
  },
};

const refused = (argv: string[], pattern: RegExp) =>
  assert.throws(
    () => parseCommandLine(spec, argv),
    (e: Error) =>
      e instanceof UsageError && pattern.test(e.message) && e.message.endsWith(spec.help),
    argv.join(' '),
  );

test('parseCommandLine refuses unknown, repeated, valueless and stray arguments', () => {
  refused(['--output', 'x'], /^unknown flag --output \(did you mean --out\?\)/);
  refused(['--bogus'], /^unknown flag --bogus\n/);
  refused(['--constructor'], /^unknown flag --constructor\n/);
  refused(['-x'], /^unknown flag -x/);
  refused(['--n', '1', '--n', '2'], /^--n is given twice/);
  refused(['--json', '--json'], /^--json is given twice/);
  refused(['--out'], /^--out needs a value/);
  refused(['--out', '--json'], /^--out needs a value \(got the flag '--json'; write --out=-VALUE/);
  refused(['--json=yes'], /^--json takes no value \(got 'yes'\)/);
  refused(['stray'], /^unexpected argument 'stray'/);
  refused(['--out', 'a', 'b'], /^unexpected argument 'b'/);
  refused(['--', '--json'], /^unexpected argument '--'/);
});

test('parseCommandLine accepts inline values, negative numbers, -h and optional values', () => {
  const f = parseCommandLine(spec, ['--out=dir', '--guidance', '-1.5', '--json', '-h']);
  assert.equal(f.string('out'), 'dir');
  assert.equal(f.number('guidance', { min: -100, max: 100 }), -1.5);
  assert.equal(f.boolean('json'), true);
  assert.equal(f.help, true);
  assert.equal(f.has('n'), false);
  assert.equal(parseCommandLine(spec, ['--save']).string('save'), '');
  assert.equal(parseCommandLine(spec, ['--save', '--json']).string('save'), '');
  assert.equal(parseCommandLine(spec, ['--save', 'h100']).string('save'), 'h100');
  assert.equal(parseCommandLine(spec, ['--out=-odd']).string('out'), '-odd');
  assert.throws(() => parseCommandLine(spec, ['--out=']).string('out'), /--out needs a non-empty/);
});

test('numbers, lists and choices are checked with their ranges', () => {
  const f = (argv: string[]) => parseCommandLine(spec, argv);
  assert.equal(f(['--n', '7']).int('n', { min: 1, max: 10 }), 7);
  assert.equal(f([]).int('n', { min: 1 }, 3), 3);
  for (const bad of ['0', '11', '2.5', 'x', '', '1e1', '0x5'])
    assert.throws(
      () => f([`--n=${bad}`]).int('n', { min: 1, max: 10 }),
      new RegExp(`--n (must be an integer from 1 to 10, got '${bad}'|needs a non-empty value)`),
    );
  assert.equal(f(['--n', '0.5']).number('n', { min: 0, max: 1, exclusiveMin: true }), 0.5);
  assert.throws(
    () => f(['--n', '0']).number('n', { min: 0, max: 1, exclusiveMin: true }),
    /--n must be a number in \(0, 1\], got '0'/,
  );
  assert.throws(() => f(['--n', 'Infinity']).number('n', {}), /--n must be a number/);
  assert.throws(() => f(['--n', '-2']).number('n', { min: 0 }), /--n must be a number >= 0/);
  assert.deepEqual(f(['--n', '8, 16']).intList('n', { min: 1 }, [1]), [8, 16]);
  assert.throws(() => f(['--n', '8,0']).intList('n', { min: 1 }, [1]), /comma-separated integers/);
  assert.equal(f(['--n', 'b']).choice('n', ['a', 'b'] as const), 'b');
  assert.throws(() => f(['--n', 'c']).choice('n', ['a', 'b'] as const), /--n must be one of a, b/);
  assert.equal(nearestFlag('backend', ['backends', 'batch']), 'backends');
  assert.equal(nearestFlag('zzz', ['backends', 'batch']), undefined);
});

/** Runs `mmgpt <argv>` in process; returns the exit status and what it printed. */
async function mmgpt(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    const status = await main(argv);
    return { status, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** A misspelt flag for each command, and what the refusal must say. */
const MISSPELT: Record<string, [string[], RegExp]> = {
  pipeline: [['--preset', 'tiny', '--resum'], /unknown flag --resum \(did you mean --resume\?\)/],
  data: [['--mnist_dir', 'x'], /unknown flag --mnist_dir \(did you mean --mnist-dir\?\)/],
  train: [['--run-dri', 'x'], /unknown flag --run-dri \(did you mean --run-dir\?\)/],
  sample: [
    ['--mode', 'unconditional', '--temprature', '0', '--out', 'x'],
    /unknown flag --temprature \(did you mean --temperature\?\)/,
  ],
  figures: [['--checkpiont', 'x'], /unknown flag --checkpiont \(did you mean --checkpoint\?\)/],
  eval: [['--top_k', '5'], /unknown flag --top_k \(did you mean --top-k\?\)/],
  export: [['--fromat', 'gpt2'], /unknown flag --fromat \(did you mean --format\?\)/],
  bench: [
    ['--backend', 'tpu'],
    /--backend applies only with --profile \(did you mean --backends\?\)/,
  ],
  demo: [['--step', '5'], /unknown flag --step \(did you mean --steps\?\)/],
  site: [['--out', 'x', '--serv'], /unknown flag --serv \(did you mean --serve\?\)/],
};

test('every command refuses an unknown flag and a misspelt one, listing its flags', async () => {
  assert.deepEqual(Object.keys(MISSPELT).sort(), Object.keys(COMMANDS).sort());
  for (const [name, command] of Object.entries(COMMANDS)) {
    const help = await mmgpt([name, '--help']);
    assert.equal(help.status, 0, name);
    assert.equal(help.out, command.spec.help, `${name} --help prints its spec's help`);
    for (const flag of Object.keys(command.spec.flags))
      if (flag !== 'help')
        assert.ok(help.out.includes(`--${flag}`), `${name} --help lists --${flag}`);

    const unknown = await mmgpt([name, '--no-such-flag']);
    assert.equal(unknown.status, 2, `${name}: ${unknown.err}`);
    assert.ok(unknown.err.startsWith(`mmgpt ${name}: unknown flag --no-such-flag\n`), unknown.err);
    assert.ok(unknown.err.endsWith(command.spec.help), `${name}: the refusal lists the flags`);

    const [argv, pattern] = MISSPELT[name]!;
    const misspelt = await mmgpt([name, ...argv]);
    assert.equal(misspelt.status, 2, `${name} ${argv.join(' ')}: ${misspelt.err}`);
    assert.match(misspelt.err, pattern, name);
    assert.ok(misspelt.err.endsWith(command.spec.help), `${name}: the refusal lists the flags`);
    assert.equal(misspelt.out, '', `${name} ${argv.join(' ')} did nothing before refusing`);
  }
});

test('values out of range and flags of another mode are refused by the commands', async () => {
  for (const [argv, pattern] of [
    [['demo', '--steps', '0'], /--steps must be an integer from 1 to 100000, got '0'/],
    [['pipeline', '--n', '-5'], /--n must be an integer from 1 to 10000, got '-5'/],
    [
      ['pipeline', '--preset', 'huge'],
      /--preset must be one of quick, best, original, original-full, tiny, got 'huge'/,
    ],
    [
      ['train', '--tokenizer-only', '--resume'],
      /--resume applies to the GPT, which --tokenizer-only does not train/,
    ],
    [['train', '--backend', 'tpu'], /--backend must be one of js, cpu, cuda, wasm, got 'tpu'/],
    [['eval', '--top-p', '1.5'], /--top-p must be a number in \(0, 1\], got '1.5'/],
    [['figures', '--temperature', '-1'], /--temperature must be a number from 0 to 100/],
    [['export', '--format', 'onnx', '--out', 'x'], /--format must be one of gpt2, weights/],
    [['data', '--palette', '--export', 'x'], /--export does not apply with --palette/],
    [['bench', '--profile', '--no-torch'], /--no-torch does not apply with --profile/],
    [['bench', '--budget-s', '0'], /--budget-s must be a number in \(0, 86400\]/],
    [['site', '--out', 'x', '--port', '80'], /--port is only for --serve/],
    [
      ['site', '--out', 'x', '--serve', '--port', '70000'],
      /--port must be an integer from 0 to 65535/,
    ],
    [
      ['sample', '--mode', 'unconditional', '--image', 'a.png', '--out', 'x'],
      /--image is only for --mode image2text/,
    ],
  ] as [string[], RegExp][]) {
    const r = await mmgpt(argv);
    assert.equal(r.status, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, pattern, argv.join(' '));
  }
});

test('sampling flags: the knobs of the settings table, each over every mode; the rest are not flags', () => {
  const samplingSpec: CommandSpec = { name: 'sample', help: 'mmgpt sample', flags: SAMPLING_FLAGS };
  const settings = (argv: string[]) =>
    samplingSettingsFromFlags(parseCommandLine(samplingSpec, argv));
  assert.deepEqual(Object.keys(SAMPLING_FLAGS), [
    'seed',
    'preset-sampling',
    'temperature',
    'top-k',
    'top-p',
    'guidance',
    'rerank',
    'batch-size',
  ]);
  assert.deepEqual(settings([]), {
    seed: 0,
    samplingPreset: 'default',
    overrides: {},
    batchSize: 128,
  });
  // One temperature for image codes and words; the others set their own setting.
  assert.deepEqual(
    settings(['--temperature', '0.7', '--top-k', '5', '--top-p', '0.9', '--guidance', '-1.5']),
    {
      seed: 0,
      samplingPreset: 'default',
      overrides: { temperature: 0.7, textTemperature: 0.7, topK: 5, topP: 0.9, guidance: -1.5 },
      batchSize: 128,
    },
  );
  assert.deepEqual(
    settings(['--rerank', '3', '--seed', '7', '--batch-size', '2', '--preset-sampling', 'original'])
      .overrides,
    { rerank: 3 },
  );
  // Each flag's range is its setting's.
  for (const [argv, pattern] of [
    [['--temperature', '101'], /--temperature must be a number from 0 to 100, got '101'/],
    [['--top-k', '2.5'], /--top-k must be an integer from 0 to 100000/],
    [['--top-p', '0'], /--top-p must be a number in \(0, 1\], got '0'/],
    [['--guidance', '-101'], /--guidance must be a number from -100 to 100/],
    [['--rerank', '0'], /--rerank must be an integer from 1 to 1024, got '0'/],
    [['--preset-sampling', 'greedy'], /--preset-sampling must be one of default, original/],
  ] as [string[], RegExp][])
    assert.throws(() => settings(argv), pattern, argv.join(' '));
  // The settings without a flag are refused as unknown flags, and the table says so.
  for (const flag of [
    'text-temperature',
    'grammar',
    'rerank-score',
    'digit-search',
    'no-colour-search',
    'shift-views',
    'caption-first',
  ])
    assert.throws(
      () => settings([`--${flag}`]),
      (e: Error) => e instanceof UsageError && e.message.startsWith(`unknown flag --${flag}`),
    );
  const flagged = Object.entries(SAMPLING_SETTINGS)
    .filter(([, s]) => s.kind === 'number' && s.flag !== undefined)
    .map(([key]) => key);
  assert.deepEqual(flagged, ['temperature', 'topK', 'topP', 'guidance', 'rerank']);
});

test('a renamed choice takes its new name, with a one-line notice', () => {
  const presets: CommandSpec = {
    name: 'try',
    help: 'mmgpt try [--preset NAME]',
    flags: { preset: { type: 'string' } },
  };
  const warned: string[] = [];
  const warn = console.warn;
  console.warn = (line: string) => warned.push(line);
  try {
    const names = ['original', 'original-full', 'best'] as const;
    assert.equal(
      parseCommandLine(presets, ['--preset', 'seed']).choice('preset', names),
      'original',
    );
    assert.equal(
      parseCommandLine(presets, ['--preset', 'seed-full']).choice('preset', names),
      'original-full',
    );
    assert.equal(parseCommandLine(presets, ['--preset', 'best']).choice('preset', names), 'best');
    assert.deepEqual(warned, [
      "mmgpt: 'seed' is now called 'original' (--preset original); the old name goes in the next release",
      "mmgpt: 'seed-full' is now called 'original-full' (--preset original-full); the old name goes in the next release",
    ]);
    // An old name whose new one is not a choice here is refused like any unknown value.
    assert.throws(
      () => parseCommandLine(presets, ['--preset', 'seed-searched']).choice('preset', names),
      /--preset must be one of original, original-full, best, got 'seed-searched'/,
    );
  } finally {
    console.warn = warn;
  }
});
