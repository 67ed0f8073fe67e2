// Shared helpers for the data tests: a scratch directory under data/ (git-ignored) per process.

import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../src/paths';

/** A fresh directory data/.test-<name>-<pid>; remove it with fs.rmSync when done. */
export function scratchDir(name: string): string {
  const dir = path.join(projectRoot(), 'data', `.test-${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
