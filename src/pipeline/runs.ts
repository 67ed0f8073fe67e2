// A training run's folder (runs/<preset>/ by default) and what a run records of itself: a
// fresh run never overwrites the checkpoint of another configuration (that folder is moved
// aside, to `<runDir>-<its fingerprint>`), and its summary says where it came from (command,
// commit, machine) and how its memory grew from the first epoch to the last.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { loadSafetensors } from '../nn/safetensors';
import {
  checkpointConfiguration,
  configurationDifferences,
  configurationFingerprint,
  readCheckpointMeta,
} from '../gpt/checkpoint';
import type { RunConfiguration } from '../gpt/checkpoint';
import { projectRoot } from '../paths';

/** The configuration of the checkpoint in runDir (null: none, or unreadable). */
function savedConfiguration(runDir: string): RunConfiguration | null {
  const ckptPath = path.join(runDir, 'checkpoint.safetensors');
  if (!fs.existsSync(ckptPath)) return null;
  try {
    // The configuration is in the metadata: no need to read (or check) the weights.
    return checkpointConfiguration(readCheckpointMeta(loadSafetensors(ckptPath)));
  } catch {
    return null; // unreadable: nothing worth keeping
  }
}

/** How runDir's checkpoint differs from `requested` (empty: none there, or the same). */
export function foreignRunDifferences(runDir: string, requested: RunConfiguration): string[] {
  const saved = savedConfiguration(runDir);
  return saved === null ? [] : configurationDifferences(saved, requested);
}

/**
 * Moves runDir to `<runDir>-<its fingerprint>` when it holds a checkpoint of another
 * configuration than `requested`; returns where it went (null: left where it is).
 */
export function setAsideForeignRun(
  runDir: string,
  requested: RunConfiguration,
  log: (l: string) => void,
): string | null {
  const saved = savedConfiguration(runDir);
  if (saved === null) return null;
  const differences = configurationDifferences(saved, requested);
  if (differences.length === 0) return null;
  let aside = `${runDir}-${configurationFingerprint(saved)}`;
  if (fs.existsSync(aside)) aside += `-${Date.now()}`;
  fs.renameSync(runDir, aside);
  log(
    `${runDir} held a run of another configuration (${differences.join('; ')}); moved it to ${aside}`,
  );
  return aside;
}

/** The process RSS at the first and the last epoch end the log records (null: fewer than two). */
export function rssOverRun(testNll: { epoch: number; rssBytes?: number }[]): {
  firstEpoch: number;
  firstMiB: number;
  lastEpoch: number;
  lastMiB: number;
  /** lastMiB / firstMiB - 1 */
  change: number;
} | null {
  const measured = testNll.filter((e) => e.epoch > 0 && e.rssBytes !== undefined);
  if (measured.length < 2) return null;
  const first = measured[0]!;
  const last = measured[measured.length - 1]!;
  const firstMiB = first.rssBytes! / 2 ** 20;
  const lastMiB = last.rssBytes! / 2 ** 20;
  return {
    firstEpoch: first.epoch,
    firstMiB,
    lastEpoch: last.epoch,
    lastMiB,
    change: lastMiB / firstMiB - 1,
  };
}

/** Where a run came from: what runProvenance returns. */
export interface RunProvenance {
  command: string;
  commit: string | null;
  machine: string;
  node: string;
}

/**
 * Where a run came from: the command, the commit (with `+dirty` for local changes), the machine.
 * Taken when a run starts: commits made while it trains do not change the running process.
 */
export function runProvenance(): RunProvenance {
  let commit: string | null = null;
  try {
    const git = (args: string[]) =>
      execFileSync('git', args, { cwd: projectRoot(), encoding: 'utf8', stdio: 'pipe' }).trim();
    commit = git(['rev-parse', 'HEAD']);
    if (git(['status', '--porcelain', '--untracked-files=no']) !== '') commit += '+dirty';
  } catch {
    commit = null; // not a git checkout, or no git
  }
  const cpus = os.cpus();
  return {
    command: ['mmgpt', ...process.argv.slice(2)].join(' '),
    commit,
    machine: `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} logical cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.arch()}`,
    node: process.version,
  };
}
