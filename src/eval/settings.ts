// The settings of an evaluation: how many test items, the sampling choice (preset, settings over
// it, seed, batch size), whether each mode is also scored without reranking and under the
// original rules, and the rows of the speed measurement; validated at construction.

import {
  SAMPLING_CHOICE_DEFAULTS,
  SAMPLING_PRESET_NAMES,
  modeOptions,
  resolveModeSampling,
  type ModeSampling,
  type SamplingChoice,
  type SamplingOverrides,
  type SamplingPresetName,
} from '../sampling/presets';
import { SAMPLING_MODES, type SamplingMode } from '../sampling/settings';

export interface EvalSettings extends SamplingChoice {
  /** Test items per mode (and unconditional samples). */
  n: number;
  /** Also score each mode without reranking and under the original rules (the comparison table). */
  compare: boolean;
  /**
   * Rows of the cached/uncached speed measurement (default 64; the speed-up grows with the rows:
   * fixed per-step costs).
   */
  speedRows: number;
}

/** The defaults, in the order report.json lists them. */
export const EVAL_DEFAULTS: EvalSettings = {
  n: 1000,
  seed: SAMPLING_CHOICE_DEFAULTS.seed,
  samplingPreset: SAMPLING_CHOICE_DEFAULTS.samplingPreset,
  overrides: {},
  compare: true,
  batchSize: SAMPLING_CHOICE_DEFAULTS.batchSize,
  speedRows: 64,
};

/** Fills defaults and rejects impossible settings with a message saying what is accepted. */
export function validateEvalSettings(settings: Partial<EvalSettings> = {}): EvalSettings {
  const s = { ...EVAL_DEFAULTS, ...settings, overrides: { ...(settings.overrides ?? {}) } };
  for (const key of ['n', 'batchSize', 'speedRows'] as const) {
    if (!Number.isInteger(s[key]) || s[key] < 1)
      throw new Error(`${key} must be a positive integer, got ${s[key]}`);
  }
  if (!Number.isSafeInteger(s.seed) || s.seed < 0)
    throw new Error(`seed must be a non-negative integer, got ${s.seed}`);
  if (!SAMPLING_PRESET_NAMES.includes(s.samplingPreset))
    throw new Error(
      `sampling preset must be one of ${SAMPLING_PRESET_NAMES.join(', ')}, got '${s.samplingPreset}'`,
    );
  for (const mode of SAMPLING_MODES) resolveModeSampling(s.samplingPreset, mode, s.overrides);
  return s;
}

/** The sampler's options of `mode` under the settings, or under another preset and overrides. */
export function modeOptionsFor(
  settings: EvalSettings,
  mode: SamplingMode,
  overrides: SamplingOverrides = settings.overrides,
  preset: SamplingPresetName = settings.samplingPreset,
): ModeSampling & { seed: number; batchSize: number } {
  return modeOptions({ ...settings, overrides, samplingPreset: preset }, mode);
}
