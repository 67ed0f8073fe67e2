// Shared helpers for the data tests: a scratch directory under data/ (git-ignored) per process,
// and MNIST's label counts.

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

/** Images of each digit 0..9 in MNIST's training split (60,000 in all). */
export const MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
/** Images of each digit 0..9 in MNIST's test split (10,000 in all). */
export const MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
