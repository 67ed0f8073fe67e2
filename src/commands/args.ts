// The command-line layer of every `mmgpt` command, on Node's util.parseArgs (strict).
//
// A command declares its flags once (CommandSpec: name, type, the --help text) and reads them
// through Flags (flags.ts), whose accessors validate values: integers and numbers with their
// ranges, choices from a list, comma-separated lists. Refused, each with a message that names the
// flag and ends with the command's --help text: unknown flags (with the nearest known one
// suggested), a flag given twice, a missing value (`--out --json` is a missing value, not an
// output folder called "--json"), a value given to a boolean flag, stray positional arguments,
// and flags that do not apply to the chosen mode (Flags.refuseUnless).
// Notable choices:
// - parseArgs reports only the first problem and in its own words, so the tokens are first read
//   non-strictly (tokens: true) and checked here; the checked tokens are then parsed again with
//   strict: true, which therefore never fails, and whose values are the ones used.
// - A value that starts with '-' is taken when it is a number (`--guidance -1`); any other needs
//   the inline form `--flag=-value`.
// - A flag with an optional value (bench's `--save [LABEL]`) reads '' when given bare.

import { parseArgs } from 'util';
import { BACKEND_NAMES, setBackend } from '../engine/registry';
import { Flags, NUMBER, UsageError, declared, nearestFlag } from './flags';
import type { CommandSpec, FlagSpec } from './flags';

export {
  Flags,
  UsageError,
  describeRange,
  nearestFlag,
  type CommandSpec,
  type FlagSpec,
} from './flags';

/** The --help flag every command takes. */
export const HELP_FLAG: Record<string, FlagSpec> = { help: { type: 'boolean', short: 'h' } };

/** The values of --backend. */
export const BACKEND_CHOICES = BACKEND_NAMES;

/** The --backend flag of the commands that compute. */
export const BACKEND_FLAG: Record<string, FlagSpec> = { backend: { type: 'string' } };

/**
 * A command's flags: parses `argv` for `spec` (throwing UsageError naming the first problem);
 * with --help, prints the command's help and returns null (the command then does nothing).
 */
export function commandFlags(spec: CommandSpec, argv: readonly string[]): Flags | null {
  const flags = parseCommandLine(spec, argv);
  if (!flags.boolean('help')) return flags;
  console.log(spec.help);
  return null;
}

/** Sets the backend --backend names, if it is given. */
export function useBackendFlag(flags: Flags): void {
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
}

/** Parses `argv` for `spec`; throws UsageError naming the first problem. */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): Flags {
  const options = Object.fromEntries(
    Object.entries(spec.flags).map(([name, f]) => [
      name,
      { type: f.type, ...(f.short ? { short: f.short } : {}) },
    ]),
  );
  // A bare flag with an optional value reads ''.
  const args = argv.map((arg, i) => {
    const flag = arg.startsWith('--') ? declared(spec, arg.slice(2)) : undefined;
    const next = argv[i + 1];
    const bare = next === undefined || (next.startsWith('-') && !NUMBER.test(next));
    return flag?.optionalValue && bare ? `${arg}=` : arg;
  });
  const { tokens } = parseArgs({
    args,
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const known = Object.keys(spec.flags);
  const seen = new Set<string>();
  const normalised: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      throw new UsageError(
        `unexpected argument '${token.value}': every value follows its flag (e.g. --out DIR)`,
        spec,
      );
    }
    if (token.kind === 'option-terminator') throw new UsageError(`unexpected argument '--'`, spec);
    const flag = declared(spec, token.name);
    if (flag === undefined) {
      const near = nearestFlag(token.name, known);
      throw new UsageError(
        `unknown flag ${token.rawName}` + (near ? ` (did you mean --${near}?)` : ''),
        spec,
      );
    }
    if (seen.has(token.name)) throw new UsageError(`--${token.name} is given twice`, spec);
    seen.add(token.name);
    if (flag.type === 'boolean') {
      if (token.value !== undefined)
        throw new UsageError(`--${token.name} takes no value (got '${token.value}')`, spec);
      normalised.push(`--${token.name}`);
      continue;
    }
    const value = token.value;
    // A following argument that is a flag is not this flag's value (negative numbers are).
    const swallowedFlag =
      value !== undefined && !token.inlineValue && value.startsWith('-') && !NUMBER.test(value);
    if (value === undefined || swallowedFlag)
      throw new UsageError(
        `--${token.name} needs a value` +
          (swallowedFlag
            ? ` (got the flag '${value}'; write --${token.name}=-VALUE for a value starting with '-')`
            : ''),
        spec,
      );
    normalised.push(`--${token.name}=${value}`);
  }
  const { values } = parseArgs({
    args: normalised,
    options,
    strict: true,
    allowPositionals: false,
  });
  return new Flags(spec, values as Record<string, string | boolean | undefined>);
}
