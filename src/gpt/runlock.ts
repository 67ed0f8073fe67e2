// One writer per run directory: a lock file `<runDir>/.lock` holding the writer's pid, host and
// start time, taken by trainPipeline (`mmgpt train`, `mmgpt pipeline`) and by trainGpt (the
// notebooks), released when training ends or the process exits.
//
// Notable choices:
// - The lock file is written whole to a temp file and hard-linked into place: link() fails with
//   EEXIST when the lock exists, so taking it is atomic and a reader never sees a half-written one.
// - A second writer is refused with a message naming the holder (pid, host, command, since when).
// - A stale lock (same host, its pid no longer running: a killed run) is taken over with a
//   warning. A lock from another host (a shared file system) is never taken over: only the user
//   can know whether that process is gone, so the message says which file to delete.
// - Within one process a directory is locked once; a nested caller (trainPipeline -> trainGpt)
//   passes its lock along instead of taking it again.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeDirectory, writeError } from '../nn/safetensors';

export const LOCK_FILE = '.lock';

/** What the lock file holds. */
interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
  /** The holder's command line, for the message a second writer sees. */
  command: string;
}

/** A held lock on a run directory; `release` is idempotent. */
export interface RunLock {
  dir: string;
  file: string;
  release: () => void;
}

/** Directories this process holds, resolved. */
const heldHere = new Set<string>();

function describe(holder: LockHolder): string {
  return `pid ${holder.pid} on host ${holder.host} (since ${holder.since}: ${holder.command})`;
}

function readHolder(file: string): LockHolder | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return {
      pid: parsed.pid,
      host: parsed.host,
      since: String(parsed.since ?? '?'),
      command: String(parsed.command ?? '?'),
    };
  } catch {
    return null;
  }
}

/** True when a process with this pid runs on this host (EPERM: it runs, as another user). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes the lock file atomically; false when one exists already. */
function tryCreate(file: string, holder: LockHolder): boolean {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(holder) + '\n');
  } catch (err) {
    throw writeError(file, err, 'cannot write the run lock');
  }
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw writeError(file, err, 'cannot write the run lock');
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Takes the lock on `dir` (creating the directory), or throws naming the process that holds it.
 * A stale lock (same host, pid gone) is taken over; `warn` says so.
 */
export function acquireRunLock(dir: string, warn: (line: string) => void): RunLock {
  const resolved = path.resolve(dir);
  const file = path.join(resolved, LOCK_FILE);
  if (heldHere.has(resolved))
    throw new Error(
      `run directory ${dir} is already being written by this process (pid ${process.pid}); ` +
        `one writer per run directory`,
    );
  makeDirectory(dir);
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  // Two attempts: the second after removing a stale lock (another process may win that race).
  for (let attempt = 0; attempt < 2; attempt++) {
    if (tryCreate(file, me)) {
      heldHere.add(resolved);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        heldHere.delete(resolved);
        process.off('exit', release);
        const holder = readHolder(file);
        if (holder && holder.pid === me.pid && holder.host === me.host)
          fs.rmSync(file, { force: true });
      };
      process.on('exit', release);
      return { dir: resolved, file, release };
    }
    const holder = readHolder(file);
    if (holder === null) {
      throw new Error(
        `run directory ${dir} has a lock file ${file} that cannot be read; if no other mmgpt ` +
          `process writes ${dir}, delete ${file} and start again`,
      );
    }
    const sameHost = holder.host === me.host;
    if (!sameHost || processAlive(holder.pid)) {
      throw new Error(
        `run directory ${dir} is being written by ${describe(holder)}; one writer per run ` +
          `directory: wait for it to finish or stop it, or choose another run directory` +
          (sameHost ? '' : ` (if that process is gone, delete ${file})`),
      );
    }
    warn(
      `warning: taking over the stale lock ${file} of ${describe(holder)}: that process no longer runs`,
    );
    fs.rmSync(file, { force: true });
  }
  const holder = readHolder(file);
  throw new Error(
    `run directory ${dir} is being written by ${holder ? describe(holder) : 'another process'}; ` +
      `it took the stale lock first`,
  );
}
