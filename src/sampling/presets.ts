// Named sampling settings, per mode, resolved in one place: SAMPLING_PRESETS as the table of
// settings.ts gives them, explicit settings over a preset (each replaces the preset's value in
// every mode it applies to), the validation, and the one-line description the report and the
// figures print.

import {
  SAMPLING_MODES,
  SAMPLING_PRESET_NAMES,
  SAMPLING_SETTINGS,
  SETTING_NAMES,
  presetValue,
  settingError,
  type ModeSampling,
  type SamplingMode,
  type SamplingPresetName,
} from './settings';

export type { ModeSampling, SamplingMode, SamplingPresetName } from './settings';
export { SAMPLING_PRESET_NAMES } from './settings';

export type SamplingPreset = Record<SamplingMode, ModeSampling>;

/** Every setting of `mode` under `preset`, in table order. */
function presetSettings(preset: SamplingPresetName, mode: SamplingMode): ModeSampling {
  return Object.fromEntries(
    SETTING_NAMES.map((key) => [key, presetValue(key, preset, mode)]),
  ) as unknown as ModeSampling;
}

export const SAMPLING_PRESETS: Readonly<Record<SamplingPresetName, SamplingPreset>> =
  Object.fromEntries(
    SAMPLING_PRESET_NAMES.map((preset) => [
      preset,
      Object.fromEntries(SAMPLING_MODES.map((mode) => [mode, presetSettings(preset, mode)])),
    ]),
  ) as Record<SamplingPresetName, SamplingPreset>;

/** Settings given explicitly (flags); each replaces the preset's value in every mode. */
export type SamplingOverrides = Partial<ModeSampling>;

/** Checks one mode's settings, naming the setting and what is accepted. */
export function validateModeSampling(s: ModeSampling): ModeSampling {
  for (const key of SETTING_NAMES) {
    const error = settingError(key, s[key]);
    if (error !== null) throw new Error(error);
  }
  return s;
}

/**
 * The settings of `mode` under a preset and explicit overrides; a setting that does not apply in
 * the mode takes its `otherwise` value (unconditional: no guidance unless the caption is drawn
 * first; captionFirst only there).
 */
export function resolveModeSampling(
  preset: SamplingPresetName,
  mode: SamplingMode,
  overrides: SamplingOverrides = {},
): ModeSampling {
  const base = SAMPLING_PRESETS[preset];
  if (base === undefined)
    throw new Error(
      `unknown sampling preset '${preset}' (known: ${SAMPLING_PRESET_NAMES.join(', ')})`,
    );
  const defined = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  ) as SamplingOverrides;
  const s: ModeSampling = { ...base[mode], ...defined };
  const values = s as unknown as Record<keyof ModeSampling, unknown>;
  for (const key of SETTING_NAMES) {
    const only = SAMPLING_SETTINGS[key].only;
    if (only !== undefined && !only.when(mode, s)) values[key] = only.otherwise;
  }
  return validateModeSampling(s);
}

/** A one-line description, e.g. "T 1 (words 1), guidance 2, rerank 4". */
export function describeModeSampling(s: ModeSampling): string {
  const parts: string[] = [];
  for (const key of SETTING_NAMES) {
    const setting = SAMPLING_SETTINGS[key];
    const words = (setting.describe as (value: unknown, s: ModeSampling) => string | null)(
      s[key],
      s,
    );
    if (words === null) continue;
    if (setting.leads === true) parts.unshift(words);
    else parts.push(words);
  }
  return parts.join(', ');
}

// ---- what a caller chooses -------------------------------------------------------------------

/** A sampling preset, the settings given over it, the seed and the batch size. */
export interface SamplingChoice {
  /** Named per-mode settings (SAMPLING_PRESETS). */
  samplingPreset: SamplingPresetName;
  /** Settings given explicitly; each replaces the preset's value in every mode it applies to. */
  overrides: SamplingOverrides;
  /** Seed of every sampling stream. */
  seed: number;
  /** Rows per batched generation (samples do not depend on it). */
  batchSize: number;
}

export const SAMPLING_CHOICE_DEFAULTS: Readonly<SamplingChoice> = {
  samplingPreset: 'default',
  overrides: {},
  seed: 0,
  // 128 rows: the same samples as 64 (bit for bit), for about a fifth less CPU time in the
  // KV-cached decode of the conditional modes (docs/sampling.md).
  batchSize: 128,
};

/** The sampler's options for `mode` under a choice: its settings, the seed and batch size. */
export function modeOptions(
  choice: SamplingChoice,
  mode: SamplingMode,
): ModeSampling & { seed: number; batchSize: number } {
  return {
    ...resolveModeSampling(choice.samplingPreset, mode, choice.overrides),
    seed: choice.seed,
    batchSize: choice.batchSize,
  };
}
