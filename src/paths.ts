// Where mmgpt keeps its files: the project root and the folders under it (data caches, runs,
// shipped weights, figures). The one place that finds the root, so every module agrees on it;
// each folder can be moved with an MMGPT_* variable (docs/environment-variables.md).
// Below every other module of src/: it imports only Node's path and fs.

import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_NAME = 'mmgpt';

/**
 * The nearest folder at or above `start` holding mmgpt's package.json (its `name` is "mmgpt"),
 * or null when there is none.
 */
export function findProjectRoot(start: string = __dirname): string | null {
  let dir = path.resolve(start);
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === PACKAGE_NAME)
          return dir;
      } catch {
        // an unreadable package.json is not ours; keep looking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The project root; throws, naming where it looked, when this file is outside mmgpt's package. */
export function projectRoot(): string {
  const root = findProjectRoot();
  if (root === null)
    throw new Error(`cannot find mmgpt's package.json in any folder above ${__dirname}`);
  return root;
}

/** $NAME when it is set and not empty, else <project>/fallback. */
function folder(variable: string, fallback: string): string {
  const value = process.env[variable];
  return value !== undefined && value !== '' ? value : path.join(projectRoot(), fallback);
}

/** Training runs and their checkpoints: $MMGPT_RUNS_DIR, else <project>/runs. */
export function runsDir(): string {
  return folder('MMGPT_RUNS_DIR', 'runs');
}

/** Shipped weights: $MMGPT_WEIGHTS_DIR, else <project>/weights. */
export function weightsDir(): string {
  return folder('MMGPT_WEIGHTS_DIR', 'weights');
}

/** Figures and reports: $MMGPT_FIGURES_DIR, else <project>/figures. */
export function figuresDir(): string {
  return folder('MMGPT_FIGURES_DIR', 'figures');
}

/** Data caches (coloured MNIST, token caches): <project>/data. */
export function dataDir(): string {
  return path.join(projectRoot(), 'data');
}
