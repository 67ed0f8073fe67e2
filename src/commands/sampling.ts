// The sampling flags that `mmgpt sample`, `mmgpt figures` and `mmgpt eval` share: the knobs of
// the settings table that have a flag (src/sampling/settings.ts: temperature, top-k, top-p,
// guidance, rerank), with the preset, the seed and the batch size. Their --help lines come from
// the table too. A flag not given leaves each mode's preset value; one that is given applies to
// every mode. The other settings are set by the preset (or through the library's options).

import {
  SAMPLING_CHOICE_DEFAULTS,
  SAMPLING_PRESETS,
  describeModeSampling,
  type SamplingChoice,
  type SamplingOverrides,
} from '../sampling/presets';
import {
  SAMPLING_MODES,
  SAMPLING_PRESET_HELP,
  SAMPLING_PRESET_NAMES,
  SAMPLING_SETTINGS,
  SETTING_NAMES,
  type ModeSampling,
  type NumberSetting,
} from '../sampling/settings';
import { MODE_LABELS } from '../eval/modes';
import { describeRange, type FlagSpec, type Flags } from './args';

/** The table's settings that have a flag, with their key. */
const FLAGGED = SETTING_NAMES.flatMap((key) => {
  const setting = SAMPLING_SETTINGS[key];
  return setting.kind === 'number' && setting.flag !== undefined
    ? [{ key, setting, flag: setting.flag }]
    : [];
});

/** The sampling flags shared by eval, sample and figures. */
export const SAMPLING_FLAGS: Record<string, FlagSpec> = {
  seed: { type: 'string' },
  'preset-sampling': { type: 'string' },
  ...Object.fromEntries(FLAGGED.map(({ flag }) => [flag.name, { type: 'string' }])),
  'batch-size': { type: 'string' },
};

/** A number setting's value from its flag, checked against its range (undefined: not given). */
function readSetting(flags: Flags, setting: NumberSetting, name: string): number | undefined {
  const { min, max, exclusiveMin, integer } = setting.range;
  return integer ? flags.int(name, { min, max }) : flags.number(name, { min, max, exclusiveMin });
}

/**
 * Sampling settings from flags, validated (each message names the flag and its range). A flag
 * that is not given leaves each mode's preset value; one that is given applies to every mode.
 */
export function samplingSettingsFromFlags(flags: Flags): SamplingChoice {
  const d = SAMPLING_CHOICE_DEFAULTS;
  const overrides: SamplingOverrides = {};
  const values = overrides as Partial<Record<keyof ModeSampling, number>>;
  for (const { key, setting, flag } of FLAGGED) {
    const value = readSetting(flags, setting, flag.name);
    if (value === undefined) continue;
    values[key] = value;
    for (const also of flag.alsoSets ?? []) values[also] = value;
  }
  return {
    seed: flags.int('seed', { min: 0 }, d.seed),
    samplingPreset: flags.choice('preset-sampling', SAMPLING_PRESET_NAMES, d.samplingPreset),
    overrides,
    batchSize: flags.int('batch-size', { min: 1, max: 100_000 }, d.batchSize),
  };
}

/** Help text after `lead` (at column 22), wrapped at `width`; a NO_BREAK space never breaks. */
function helpLine(lead: string, text: string, width = 100): string {
  const indent = ' '.repeat(22);
  const lines: string[] = [];
  let line = lead.length + 2 > indent.length ? `${lead}  ` : lead.padEnd(indent.length);
  for (const word of text.split(' ')) {
    if (line.length + word.length > width && line.trim() !== '') {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${word} `;
  }
  lines.push(line.trimEnd());
  return lines.join('\n').replaceAll(NO_BREAK, ' ');
}

const NO_BREAK = '\u00a0';
const unbroken = (text: string): string => text.replaceAll(' ', NO_BREAK);

/** What each preset sets in each mode, from the table: one line per mode where they differ. */
function presetLines(): string[] {
  return SAMPLING_PRESET_NAMES.flatMap((preset) => {
    const described = SAMPLING_MODES.map((mode) =>
      describeModeSampling(SAMPLING_PRESETS[preset][mode]),
    );
    const title = `${preset}: ${SAMPLING_PRESET_HELP[preset]}`;
    if (described.every((d) => d === described[0]))
      return [helpLine('', `${title}, ${described[0]} in every mode`)];
    return [
      helpLine('', title),
      ...SAMPLING_MODES.map((mode, i) =>
        helpLine('', `  ${unbroken(MODE_LABELS[mode].padEnd(15))}${described[i]}`, 120),
      ),
    ];
  });
}

/** The --help line of a flagged setting: what it is, then its range and what 0 or 1 means. */
function settingHelp(setting: NumberSetting, flag: NonNullable<NumberSetting['flag']>): string {
  const { min, max, exclusiveMin, integer } = setting.range;
  const range = describeRange(integer ? 'an integer' : 'a number', { min, max, exclusiveMin });
  const note = setting.note !== undefined ? ` (${setting.note})` : '';
  return helpLine(
    `  --${flag.name} ${flag.value}`,
    `${flag.help ?? setting.help}: ${unbroken(range + note)}`,
  );
}

/** The --help lines of the sampling flags. */
export const SAMPLING_HELP = [
  '  Sampling: a preset sets every mode; a flag given replaces its setting in every mode.',
  helpLine(
    '  --preset-sampling P',
    `${SAMPLING_PRESET_NAMES.join(' or ')} (default ${SAMPLING_CHOICE_DEFAULTS.samplingPreset})`,
  ),
  ...presetLines(),
  helpLine(
    '  --seed S',
    `the sampling seed, an integer >= 0 (default ${SAMPLING_CHOICE_DEFAULTS.seed})`,
  ),
  ...FLAGGED.map(({ setting, flag }) => settingHelp(setting, flag)),
  helpLine(
    '  --batch-size B',
    `rows sampled at once, 1 to 100000 (default ${SAMPLING_CHOICE_DEFAULTS.batchSize})`,
  ),
].join('\n');
