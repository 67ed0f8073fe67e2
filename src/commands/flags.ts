// The flags of a command: how a command declares them (CommandSpec), the error a wrong command
// line raises (UsageError, with the nearest known flag suggested), and Flags, whose accessors
// validate values: integers and numbers with their ranges, choices from a list (an old name
// taking its new one, with a notice), comma-separated lists, and flags that do not apply
// (refuseUnless). args.ts parses a command line into Flags.

/**
 * Names that changed, old -> new: a choice flag given an old name takes the new one with a
 * one-line notice, for one release ("seed" now means only the random seed).
 */
const RENAMED_CHOICES: Readonly<Record<string, string>> = {
  seed: 'original',
  'seed-full': 'original-full',
  'seed-full36k': 'original-full36k',
  'seed-perceptual': 'original-perceptual',
  'seed-searched': 'original-searched',
  'seed-searched-reader': 'original-searched-reader',
};

export interface FlagSpec {
  type: 'boolean' | 'string';
  /** One-letter alias (only `-h` for --help is used). */
  short?: string;
  /** A string flag that may also be given bare (its value is then ''). */
  optionalValue?: boolean;
}

export interface CommandSpec {
  /** The command's name, e.g. 'sample'. */
  name: string;
  /** The --help text: usage and every flag. Error messages end with it. */
  help: string;
  /** Every flag the command takes, by long name without the dashes. */
  flags: Record<string, FlagSpec>;
}

/**
 * An error in the command line (mmgpt exits with status 2): what was wrong, then, for a flag
 * that is unknown, repeated, valueless or out of place, the command's --help text.
 */
export class UsageError extends Error {
  constructor(problem: string, spec?: CommandSpec) {
    super(spec === undefined ? problem : `${problem}\n\n${spec.help}`);
    this.name = 'UsageError';
  }
}

export const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const INTEGER = /^[+-]?\d+$/;

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known flag nearest to an unknown one, if it is close (a typo, a plural, a prefix). */
export function nearestFlag(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const prefix =
      Math.min(k.length, name.length) >= 3 && (k.startsWith(name) || name.startsWith(k));
    const d = prefix ? 1 : distance(name, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/** The declared flag of this name (never an inherited property such as 'constructor'). */
export function declared(spec: CommandSpec, name: string): FlagSpec | undefined {
  return Object.prototype.hasOwnProperty.call(spec.flags, name) ? spec.flags[name] : undefined;
}

/** Parsed flags with validating accessors; every error names the flag and what is accepted. */
export class Flags {
  constructor(
    readonly spec: CommandSpec,
    readonly values: Readonly<Record<string, string | boolean | undefined>>,
  ) {}

  get help(): boolean {
    return this.values.help === true;
  }

  has(name: string): boolean {
    this.known(name);
    return this.values[name] !== undefined;
  }

  boolean(name: string): boolean {
    this.known(name);
    return this.values[name] === true;
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    this.known(name);
    const v = this.values[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw new Error(`flag --${name} is not a string flag`);
    if (v.trim() === '' && !this.spec.flags[name]!.optionalValue)
      throw new UsageError(`--${name} needs a non-empty value`, this.spec);
    return v;
  }

  /** A required string flag. */
  required(name: string, what: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`--${name} is required: ${what}`, this.spec);
    return v;
  }

  /**
   * One of `choices`, or of `unlisted`: accepted too, but never named in an error (the
   * experiment presets).
   */
  choice<T extends string>(
    name: string,
    choices: readonly T[],
    fallback: T,
    unlisted?: readonly T[],
  ): T;
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined;
  choice<T extends string>(
    name: string,
    choices: readonly T[],
    fallback?: T,
    unlisted: readonly T[] = [],
  ): T | undefined {
    let v = this.string(name);
    if (v === undefined) return fallback;
    const accepted = [...choices, ...unlisted];
    const renamed = RENAMED_CHOICES[v];
    if (!accepted.includes(v as T) && renamed !== undefined && accepted.includes(renamed as T)) {
      console.warn(
        `mmgpt: '${v}' is now called '${renamed}' (--${name} ${renamed}); the old name goes in the next release`,
      );
      v = renamed;
    }
    if (!accepted.includes(v as T))
      throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${v}'`);
    return v as T;
  }

  /** An integer in [min, max] (inclusive). */
  int(name: string, range: { min: number; max?: number }, fallback: number): number;
  int(name: string, range: { min: number; max?: number }): number | undefined;
  int(name: string, range: { min: number; max?: number }, fallback?: number): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!INTEGER.test(raw.trim()) || !inRange(value, range) || !Number.isSafeInteger(value))
      throw new UsageError(`--${name} must be ${describeRange('an integer', range)}, got '${raw}'`);
    return value;
  }

  /** A finite number in the range; `exclusiveMin` makes min itself refused. */
  number(name: string, range: NumberRange, fallback: number): number;
  number(name: string, range: NumberRange): number | undefined;
  number(name: string, range: NumberRange, fallback?: number): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!NUMBER.test(raw.trim()) || !Number.isFinite(value) || !inRange(value, range))
      throw new UsageError(`--${name} must be ${describeRange('a number', range)}, got '${raw}'`);
    return value;
  }

  /** Comma-separated integers, each in the range. */
  intList(name: string, range: { min: number; max?: number }, fallback: number[]): number[] {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const parts = raw.split(',').map((s) => s.trim());
    const values = parts.map(Number);
    if (parts.some((p, i) => !INTEGER.test(p) || !inRange(values[i]!, range)))
      throw new UsageError(
        `--${name} takes comma-separated ${describeRange('integers', range).replace('an integers', 'integers')} (e.g. 32,256), got '${raw}'`,
      );
    return values;
  }

  /** Comma-separated names, each one of `choices`. */
  choiceList<T extends string>(name: string, choices: readonly T[]): T[] | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const names = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const n of names)
      if (!choices.includes(n as T))
        throw new UsageError(`--${name}: unknown value '${n}'; choose from ${choices.join(', ')}`);
    if (names.length === 0)
      throw new UsageError(`--${name} needs at least one of ${choices.join(', ')}`);
    return names as T[];
  }

  /**
   * Refuses `names` that were given when they do not apply: `applies` false and `why` says when
   * they do (e.g. "applies only with --profile").
   */
  refuseUnless(applies: boolean, names: readonly string[], why: (flag: string) => string): void {
    if (applies) return;
    for (const name of names) {
      if (this.has(name)) {
        const near = nearestFlag(
          name,
          Object.keys(this.spec.flags).filter((k) => k !== name && !names.includes(k)),
        );
        throw new UsageError(
          `--${name} ${why(name)}` + (near ? ` (did you mean --${near}?)` : ''),
          this.spec,
        );
      }
    }
  }

  private known(name: string): void {
    if (declared(this.spec, name) === undefined)
      throw new Error(`mmgpt ${this.spec.name}: flag --${name} is not declared`);
  }
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** min itself is not allowed (a number > min). */
  exclusiveMin?: boolean;
}

function inRange(value: number, range: NumberRange): boolean {
  if (range.min !== undefined && (range.exclusiveMin ? value <= range.min : value < range.min))
    return false;
  return range.max === undefined || value <= range.max;
}

export function describeRange(what: string, range: NumberRange): string {
  const { min, max, exclusiveMin } = range;
  if (min !== undefined && max !== undefined)
    return exclusiveMin ? `${what} in (${min}, ${max}]` : `${what} from ${min} to ${max}`;
  if (min !== undefined) return `${what} ${exclusiveMin ? '>' : '>='} ${min}`;
  if (max !== undefined) return `${what} <= ${max}`;
  return what;
}
